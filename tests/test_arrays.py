"""Linear resizing checked against TensorFlow's own resize and against exact ramps."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from medvis_desktop.arrays import resize_linear


# Both axes shrinking, both growing, and one of each either way: the axes are taken in another order.
@pytest.mark.parametrize(("height", "width"), [(7, 9), (40, 22), (5, 5), (7, 40), (30, 6)])
def test_2d_matches_tensorflow_bilinear(height, width):
    image = np.random.default_rng(0).normal(size=(2, 13, 17)).astype(np.float32)
    expected = tf.image.resize(image[..., None], (height, width), method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(resize_linear(image, (height, width)), expected, atol=1e-5)


def test_3d_reproduces_a_linear_ramp_away_from_the_edges():
    z, y, x = np.meshgrid(np.arange(6), np.arange(8), np.arange(5), indexing="ij")
    ramp = (2.0 * z - 1.0 * y + 0.5 * x).astype(np.float32)
    resized = resize_linear(ramp, (12, 16, 10))
    # Output voxel i sits at input coordinate (i + 0.5) * old / new - 0.5.
    zz, yy, xx = np.meshgrid(
        (np.arange(12) + 0.5) / 2 - 0.5,
        (np.arange(16) + 0.5) / 2 - 0.5,
        (np.arange(10) + 0.5) / 2 - 0.5,
        indexing="ij",
    )
    exact = 2.0 * zz - 1.0 * yy + 0.5 * xx
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(resized[inner], exact[inner], atol=1e-5)


def test_only_the_named_axes_change():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    resized = resize_linear(array, (6,), axes=(1,))
    assert resized.shape == (2, 6, 4)
    np.testing.assert_allclose(resize_linear(array, (2, 3, 4)), array)
