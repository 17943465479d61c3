"""Checks and references the test files share: an independent NumPy GN and a drawn-PNG check."""

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def reference_group_norm(x, groups, axis=-1, epsilon=1e-5, gamma=None, beta=None):
    """The paper's formula, sample by sample and group by group, in float64."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1)  # -> (N, C, ...)
    channels = x.shape[1]
    per_group = channels // groups
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for g in range(groups):
            block = x[n, g * per_group : (g + 1) * per_group]
            out[n, g * per_group : (g + 1) * per_group] = (block - block.mean()) / np.sqrt(
                block.var() + epsilon
            )
    affine_shape = (1, channels) + (1,) * (x.ndim - 2)
    if gamma is not None:
        out = out * np.reshape(gamma, affine_shape)
    if beta is not None:
        out = out + np.reshape(beta, affine_shape)
    return np.moveaxis(out, 1, axis)


def assert_png(path, *, minimum_bytes=2_000):
    """`path` is a PNG file with something drawn in it."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > minimum_bytes, f"{path} is not a drawn PNG"
