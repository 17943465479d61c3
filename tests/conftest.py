import os

# Quiet TensorFlow's C++ start-up logs and keep the suite on the CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402  (after the environment settings above)
import pytest  # noqa: E402

# The normal suite runs on TensorFlow. tests/test_layers_any_backend.py also runs under
# another backend (KERAS_BACKEND=jax, from tests/test_backends.py): no TensorFlow setup then.
if keras.backend.backend() == "tensorflow":
    from utils import training

    # Before any test runs a TensorFlow operation: the tests that train in this process
    # use the threads of every training (utils.training.TRAINING_THREADS).
    training.use_training_threads()


@pytest.fixture(scope="session")
def synthetic_tiny_imagenet(tmp_path_factory):
    """A tiny synthetic data set in the Tiny ImageNet-200 layout: 6 classes, 12 training and
    5 validation JPEGs per class, some of them grayscale. Returns its folder (read-only use:
    copy it before changing files)."""
    from utils.data import make_synthetic_tiny_imagenet

    return make_synthetic_tiny_imagenet(
        tmp_path_factory.mktemp("synthetic"),
        classes=6,
        images_per_class=12,
        val_per_class=5,
        seed=0,
    )


@pytest.fixture
def mixed_policy(request):
    """Keras's global dtype policy set to `request.param` for one test, float32 after it."""
    import keras

    keras.mixed_precision.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def smoke_data_dir(tmp_path_factory):
    """The data folder of the smoke profile's synthetic set (made on first use)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def smoke_grid(tmp_path_factory, smoke_data_dir):
    """The whole smoke study (24 configs, 20 trainings) through the command line, in one
    process: (exit status, output, results folder). Shared by the tests that compare
    another way of training the grid with it."""
    import contextlib
    import io

    from utils import cli

    results = tmp_path_factory.mktemp("results")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = cli.main(
            [
                "--profile",
                "smoke",
                "--experiment",
                "study",
                "--results",
                str(results),
                "--data",
                str(smoke_data_dir),
                "--verbose",
                "0",
                "--workers",
                "1",
            ]
        )
    return status, output.getvalue(), results
