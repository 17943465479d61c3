"""The layers on the other Keras backends: tests/test_layers_any_backend.py in a JAX and
in a PyTorch process."""

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE = "tests/test_layers_any_backend.py"
# The Keras backends tested besides TensorFlow, each with the package it needs.
BACKENDS = {"jax": "jax", "torch": "torch"}
# Importing the layers, and running them: neither may import TensorFlow.
IMPORT_CHECK = """
import sys
import numpy as np
import keras
from utils.layers import GroupNormalization, WeightStandardizedConv2D
from utils.mixtures import GNPlusParallel
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
x = np.ones((2, 4, 4, 8), np.float32)
GNPlusParallel(groups=2)(GroupNormalization(groups=2)(WeightStandardizedConv2D(8, 3)(x)), training=True)
print(sorted(name for name in sys.modules if name.split(".")[0] == "tensorflow"))
"""


def run_under(backend, arguments):
    """Runs `python arguments...` from the project root with KERAS_BACKEND=backend; a
    test failure, not a skip, when the backend's package is missing: a skipped backend
    would hide it."""
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.fail(
            f"{BACKENDS[backend]} is not installed, so the layers cannot be tested on the {backend} backend: "
            "install the test requirements (requirements-test.txt; `make test` installs them)."
        )
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_backend_agnostic_layer_tests_pass(backend, tmp_path):
    report = tmp_path / "report.xml"
    result = run_under(
        backend, ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", MODULE]
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{MODULE} failed under KERAS_BACKEND={backend}:\n{output[-6000:]}"
    )
    # Every test of the module ran and passed: none skipped (a module skipped whole
    # would pass too).
    suite = ElementTree.parse(report).getroot().find("testsuite")
    summary = re.search(r"(\d+) passed", output)
    passed = int(summary.group(1)) if summary else 0
    assert passed > 0 and passed == int(suite.get("tests")), (
        f"not every test ran:\n{output[-3000:]}"
    )
    assert int(suite.get("skipped")) == 0, output[-3000:]
    backends = {
        prop.get("value") for prop in suite.iter("property") if prop.get("name") == "keras_backend"
    }
    assert backends == {backend}, (
        f"Keras ran on {backends or 'an unreported backend'}, not on {backend}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_layers_import_and_run_without_tensorflow(backend):
    result = run_under(backend, ["-c", IMPORT_CHECK, backend])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", (
        f"TensorFlow was imported: {result.stdout}"
    )
