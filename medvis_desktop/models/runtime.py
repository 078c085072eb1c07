"""TensorFlow start-up: done once, on the main thread, before any model is touched.

oneDNN stays off (a GradientTape through a Keras-2 Xception crashed the process with it on,
see DESIGN.md), and GPUs grow their memory on demand so that a workstation's other programs
(the PACS viewer, a second model) keep theirs.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """Where the methods run, as the status bar shows it."""

    kind: str  # "GPU" or "CPU"
    name: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """TensorFlow's C++ side prints start-up notes (no CUDA driver, ...) straight to file
    descriptor 2, before its log level applies; a terminal user should not see them."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow(*, quiet: bool = False) -> Device:
    """Import TensorFlow (with the settings medvis_desktop/__init__.py made before anything
    could import it); returns the device computations will use."""
    with _native_stderr_silenced() if quiet else contextlib.nullcontext():
        return device()


@functools.cache
def device() -> Device:
    """The device TensorFlow computes on, found once (provenance records name it: a GPU's
    results may differ from a CPU's in the last bits)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # RuntimeError: the GPU was initialised by an earlier call, with growth set then.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return Device("GPU", str(details.get("device_name", gpus[0].name)))
    return Device("CPU", f"{os.cpu_count()} cores")
