"""TensorFlow start-up settings."""

from __future__ import annotations

import tensorflow as tf

from medvis_desktop.models.runtime import start_tensorflow


def test_start_reports_the_device_tensorflow_will_use():
    device = start_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    assert device.kind == ("GPU" if gpus else "CPU")
    for gpu in gpus:
        assert tf.config.experimental.get_memory_growth(gpu)
    assert str(device).startswith(device.kind + ": ")
