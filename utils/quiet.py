"""Importing TensorFlow without its C++ start-up lines.

TensorFlow 2.21 writes a few lines to the process's stderr while it is imported (oneDNN
and CUDA notices, "All log messages before absl::InitializeLog() ..."), before its own
log level (TF_CPP_MIN_LOG_LEVEL) applies. They would fill every command's output and
the saved notebooks, so the commands and notebooks import TensorFlow through
`import_tensorflow`, which sends the native stderr to /dev/null for the import only.
Python errors are unaffected: they are raised, and printed after stderr is restored.
Set TF_CPP_MIN_LOG_LEVEL to 0 or 1 to see the lines.
"""

import contextlib
import os
import sys

__all__ = ["import_keras", "import_tensorflow", "without_jax"]


@contextlib.contextmanager
def _native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Imports TensorFlow (and Keras, whose backend starts it) quietly, unless
    TF_CPP_MIN_LOG_LEVEL asks for its start-up lines; returns the tensorflow module."""
    verbose = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") in ("0", "1")
    with (
        contextlib.nullcontext()
        if verbose or "tensorflow" in sys.modules
        else _native_stderr_silenced()
    ):
        import keras  # noqa: F401
        import tensorflow
    return tensorflow


def import_keras():
    """Imports Keras quietly (with the TensorFlow backend, Keras starts TensorFlow), unless
    TF_CPP_MIN_LOG_LEVEL asks for TensorFlow's start-up lines; returns the keras module.
    Unlike `import_tensorflow`, it imports no backend that Keras is not set to use."""
    verbose = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") in ("0", "1")
    with (
        contextlib.nullcontext() if verbose or "keras" in sys.modules else _native_stderr_silenced()
    ):
        import keras
    return keras


def without_jax():
    """Makes `import jax` fail in this process, for the commands that train with
    TensorFlow alone (the grid and its workers). TensorFlow imports JAX when it is
    installed (for TFLite, and goes on without it when the import fails); with JAX
    loaded, a process's exit after SIGTERM or Ctrl-C was seen to hang. Call it before
    TensorFlow is imported, and only in a process of its own: a later `import jax`
    there raises ImportError."""
    sys.modules.setdefault("jax", None)
