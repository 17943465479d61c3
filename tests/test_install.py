"""What each install brings: the notebooks' install holds neither the tests' packages nor
Ray, and the targets that need those install them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def requirements(name):
    """The package names a requirements file pins, following its -r includes."""
    names = set()
    for line in (REPOSITORY / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirements(line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(re.split(r"[\[=<>~]", line)[0].lower())
    return names


def make_prerequisites(target):
    match = re.search(
        rf"^{re.escape(target)}:(.*)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE
    )
    assert match, f"no {target} target"
    return match.group(1).split()


def test_the_notebooks_install_neither_the_tests_packages_nor_ray():
    base = requirements("requirements.txt")
    assert {"tensorflow", "keras", "jupyter", "nbclient"} <= base
    assert not base & {"ray", "jax", "torch", "pytest"}
    assert requirements("requirements-cluster.txt") == {"ray"}
    assert {"jax", "pytest"} <= requirements("requirements-test.txt")
    assert requirements("requirements-torch.txt") == {"torch"}


def test_torch_alone_is_looked_up_on_pytorchs_index_and_its_requirements_are_checked():
    # An index in requirements-test.txt would be asked for every package there.
    assert "download.pytorch.org" not in (REPOSITORY / "requirements-test.txt").read_text()
    recipe = re.search(
        r"^\$\(TEST_STAMP\):.*\n((?:\t.*\n)+)", (REPOSITORY / "Makefile").read_text(), re.MULTILINE
    )
    steps = recipe.group(1).splitlines()
    torch_step = next(index for index, step in enumerate(steps) if "requirements-torch.txt" in step)
    assert "--no-deps" in steps[torch_step]
    assert "pip check" in steps[torch_step + 1]


def test_each_target_installs_what_it_runs():
    assert make_prerequisites("reproduce") == ["$(STAMP)"]
    assert make_prerequisites("test") == make_prerequisites("test-fast") == ["$(TEST_STAMP)"]
    assert make_prerequisites("$(TEST_STAMP)")[0] == "$(STAMP)"
    assert make_prerequisites("$(CLUSTER_STAMP)")[0] == "$(STAMP)"


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_declares_what_it_needs(tmp_path):
    """`pip install .` gives a package that runs: every subpackage and data file in the
    wheel, Keras as the layers' one requirement, the engine, cluster and tests as extras."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path / "source"
    shutil.copytree(
        REPOSITORY / "utils", source / "utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in (
        "pyproject.toml",
        "requirements.txt",
        "requirements-cluster.txt",
        "requirements-test.txt",
    ):
        shutil.copy(REPOSITORY / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        path.relative_to(REPOSITORY).as_posix()
        for path in (REPOSITORY / "utils").rglob("*")
        if path.suffix in (".py", ".md") and "__pycache__" not in path.parts
    }
    assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"
    assert "utils/experiments/__main__.py" in names and "utils/readings.md" in names
    assert not any(name.startswith(("tests/", "results/", "benchmarks/")) for name in names)
    metadata = next(
        zipfile.ZipFile(wheel).read(name).decode() for name in names if name.endswith("/METADATA")
    )
    requires = [
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    assert "keras>=3.0" in requires
    for extra, package in (
        ("engine", "tensorflow==2.21.0"),
        ("cluster", "ray==2.60.0"),
        ("test", "pytest==9.2.0"),
    ):
        assert f'{package}; extra == "{extra}"' in requires, requires


def test_the_layers_file_works_copied_alone(tmp_path):
    # Copied into a project where no `utils` package of this project can be imported.
    (tmp_path / "layers.py").write_text((REPOSITORY / "utils" / "layers.py").read_text())
    program = (
        "import sys; sys.modules['utils'] = None\n"
        "import numpy, layers\n"
        "y = layers.GroupNormalization(groups=2)(numpy.arange(16.0).reshape(1, 2, 2, 4))\n"
        "print(sorted(name for name in sys.modules if name.startswith('utils')), y.shape)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["['utils']", "(1,", "2,", "2,", "4)"]


def test_importing_the_layers_prints_nothing():
    # TensorFlow writes its oneDNN and CUDA-probe lines to the native stderr while it is
    # imported, whatever TF_CPP_MIN_LOG_LEVEL says; a user's `from utils.layers import ...`
    # must not show them.
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    imported = subprocess.run(
        [sys.executable, "-c", "import utils.layers"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == imported.stderr == ""
