import os

# Quiet TensorFlow's C++ start-up logs and keep the suite on the CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402  (after the environment settings above)

from utils import training  # noqa: E402

# Before any test runs a TensorFlow operation: the tests that train in this process use
# the threads of every training (utils.training.TRAINING_THREADS).
training.use_training_threads()


@pytest.fixture(scope="session")
def synthetic_tiny_imagenet(tmp_path_factory):
    """A tiny synthetic data set in the Tiny ImageNet-200 layout: 6 classes, 12 training and
    5 validation JPEGs per class, some of them grayscale. Returns its folder (read-only use:
    copy it before changing files)."""
    from utils.data import make_synthetic_tiny_imagenet

    return make_synthetic_tiny_imagenet(
        tmp_path_factory.mktemp("synthetic"), classes=6, images_per_class=12, val_per_class=5, seed=0
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
