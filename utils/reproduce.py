"""`make reproduce`: executes main.ipynb top to bottom.

With the study's settings (the `cpu` profile and its `results/` folder) the committed
notebook is executed in place, so its saved outputs are the study's. With any other
profile or results folder (GN_PROFILE, GN_RESULTS_DIR) the executed copy is written into
that results folder instead, and the committed notebook is left as it is.

The saved notebook holds nothing that depends on the machine that executed it: the lines
of one-time work on its caches (extracting the archive, decoding the images), printed on
a first run only, are left out, and a cell's consecutive outputs to one stream are joined
(how the kernel splits them depends on timing).

    python -m utils.reproduce            # what `make reproduce` runs
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from utils import paths

NOTEBOOK = paths.REPOSITORY_ROOT / "main.ipynb"


def executed_notebook(environ=None):
    """Where the executed main.ipynb goes: the committed notebook itself for the study's
    settings, else `<results folder>/main.ipynb`."""
    environ = os.environ if environ is None else environ
    profile = environ.get("GN_PROFILE") or paths.STUDY_PROFILE
    results = Path(
        environ.get("GN_RESULTS_DIR")
        or paths.default_results_dir(profile, _other_seeds(environ, profile))
    )
    results = results.expanduser()
    results = results if results.is_absolute() else paths.REPOSITORY_ROOT / results
    if profile == paths.STUDY_PROFILE and results.resolve() == paths.default_results_dir(profile):
        return NOTEBOOK
    return results / NOTEBOOK.name


def _other_seeds(environ, profile):
    """GN_SEEDS when it names other seeds than the profile's (utils.notebook reads it the
    same way), else None."""
    from utils import profiles

    try:
        seeds = profiles.parse_seeds(environ.get("GN_SEEDS"))
        own = tuple(profiles.profile_settings(profile)["seeds"])
    except ValueError:
        return None  # the notebook's first cell says what is wrong with it
    return seeds if seeds is not None and tuple(seeds) != own else None


def command(notebook, output, sockets):
    """The nbconvert command that executes `notebook` into `output`, its kernel talking over
    local sockets named `<sockets>-<port>` (over TCP it warns that it runs unencrypted)."""
    return [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        str(notebook),
        "--output-dir",
        str(output.parent),
        "--output",
        output.name,
        "--ExecutePreprocessor.timeout=-1",
        # No execution timestamps in the saved cells: a rerun changes only what it computes.
        "--ExecutePreprocessor.record_timing=False",
        # An absolute socket path: the kernel runs in the notebook's folder, the client here.
        "--KernelManager.transport=ipc",
        f"--KernelManager.ip={sockets}",
    ]


def execute(notebook, output):
    """Executes `notebook` top to bottom into `output`; returns nbconvert's exit status."""
    with tempfile.TemporaryDirectory() as folder:
        status = subprocess.run(
            command(notebook, output, Path(folder) / "kernel"), cwd=paths.REPOSITORY_ROOT
        ).returncode
    if status == 0:
        _save_without_machine_lines(output)
    return status


# What utils.data_sources and utils.data print while they fill the caches.
CACHE_WORK = re.compile(
    r"Extracting .* \(done once, then reused\)\.\.\.|Extracted in [\d.]+ s\.|"
    r"Decoding \d+ .*\.\.\.|\d+/\d+ - .* - .*/image"
)


def without_machine_lines(book):
    """`book` (an nbformat notebook) with its stream outputs joined per cell and stream, and
    the lines of one-time cache work left out (module docstring)."""
    for cell in book.cells:
        outputs = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text = "".join(
                    line
                    for line in output.text.splitlines(keepends=True)
                    if not CACHE_WORK.fullmatch(line.rstrip("\n"))
                )
                if (
                    outputs
                    and outputs[-1].output_type == "stream"
                    and outputs[-1].name == output.name
                ):
                    outputs[-1].text += text
                    continue
                if not text:
                    continue
                output.text = text
            outputs.append(output)
        if "outputs" in cell:
            cell.outputs = outputs
    return book


def _save_without_machine_lines(path):
    import nbformat

    book = nbformat.read(path, as_version=4)
    nbformat.write(without_machine_lines(book), path)


def main():
    output = executed_notebook()
    output.parent.mkdir(parents=True, exist_ok=True)
    if output != NOTEBOOK:
        print(
            f"Not the study's settings: the executed notebook goes to {paths.display_path(output)}.",
            flush=True,
        )
    return execute(NOTEBOOK, output)


if __name__ == "__main__":
    sys.exit(main())
