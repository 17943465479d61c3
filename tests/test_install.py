"""What each install brings: the notebooks' install holds neither the tests' packages nor
Ray, and the targets that need those install them."""

import re
from pathlib import Path

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
    match = re.search(rf"^{re.escape(target)}:(.*)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    assert match, f"no {target} target"
    return match.group(1).split()


def test_the_notebooks_install_neither_the_tests_packages_nor_ray():
    base = requirements("requirements.txt")
    assert {"tensorflow", "keras", "jupyter", "nbclient"} <= base
    assert not base & {"ray", "jax", "torch", "pytest"}
    assert requirements("requirements-cluster.txt") == {"ray"}
    assert {"ray", "jax", "pytest"} <= requirements("requirements-test.txt")
    assert requirements("requirements-torch.txt") == {"torch"}


def test_torch_alone_is_looked_up_on_pytorchs_index_and_its_requirements_are_checked():
    # An index in requirements-test.txt would be asked for every package there.
    assert "download.pytorch.org" not in (REPOSITORY / "requirements-test.txt").read_text()
    recipe = re.search(r"^\$\(TEST_STAMP\):.*\n((?:\t.*\n)+)", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    steps = recipe.group(1).splitlines()
    torch_step = next(index for index, step in enumerate(steps) if "requirements-torch.txt" in step)
    assert "--no-deps" in steps[torch_step]
    assert "pip check" in steps[torch_step + 1]


def test_each_target_installs_what_it_runs():
    assert make_prerequisites("reproduce") == ["$(STAMP)"]
    assert make_prerequisites("test") == make_prerequisites("test-fast") == ["$(TEST_STAMP)"]
    assert make_prerequisites("$(TEST_STAMP)")[0] == "$(STAMP)"
    assert make_prerequisites("$(CLUSTER_STAMP)")[0] == "$(STAMP)"
