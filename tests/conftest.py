"""Real medical data installed by the set-up (Debian and PyPI packages), never downloaded."""

from __future__ import annotations

import os

# Before anything imports TensorFlow (see medvis_desktop.models.runtime for why).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io
import plistlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

HEAD_CT_INV3 = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
COLIN27_T1 = Path("/usr/share/mricron/templates/ch2.nii.gz")


def _require(path: Path, package: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the set-up installs it (Debian package {package})")
    return path


@pytest.fixture(scope="session")
def head_ct_path() -> Path:
    return _require(HEAD_CT_INV3, "invesalius-examples")


@pytest.fixture(scope="session")
def colin27_path() -> Path:
    return _require(COLIN27_T1, "mricron-data")


@pytest.fixture(scope="session")
def head_ct_raw(head_ct_path: Path) -> tuple[np.ndarray, dict]:
    """The InVesalius matrix exactly as stored (rows bottom-up) and its project record."""
    with tarfile.open(head_ct_path, "r:gz") as archive:
        members = {Path(m.name).name: m for m in archive.getmembers()}
        project = plistlib.load(io.BytesIO(archive.extractfile(members["main.plist"]).read()))
        raw = archive.extractfile(members["matrix.dat"]).read()
    matrix = np.frombuffer(raw, dtype=np.int16).reshape(project["matrix"]["shape"])
    return matrix, project


@pytest.fixture(scope="session")
def head_ct_hu(head_ct_raw: tuple[np.ndarray, dict]) -> np.ndarray:
    """Real head CT in HU, rows front to back (108 × 256 × 256, int16)."""
    return np.ascontiguousarray(head_ct_raw[0][:, ::-1, :])


@pytest.fixture(scope="session")
def head_ct_block(head_ct_hu: np.ndarray) -> np.ndarray:
    """40 slices through the brain: enough anatomy, small enough to write often."""
    return head_ct_hu[40:80]


def tiny_classifier(side: int):
    """conv1-relu-pool1-conv2-gap-dense(softmax), 2 classes, seeded: the small classifier the
    runner, CLI and GUI tests explain."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    inputs = keras.Input((side, side, 1), name="image")
    h = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(2, activation="softmax", name="dense")(h)
    return keras.Model(inputs, outputs, name="tiny")


NEAR_MM = 5.0  # the pointing-game tolerance of the demo evaluation


def near(mask: np.ndarray, spacing_yx: tuple[float, float], mm: float = NEAR_MM) -> np.ndarray:
    """Pixels within `mm` of the mask (a disc dilation, in millimetres)."""
    result = mask.copy()
    reach_y, reach_x = (int(mm // s) for s in spacing_yx)
    for dy in range(-reach_y, reach_y + 1):
        for dx in range(-reach_x, reach_x + 1):
            if (dy * spacing_yx[0]) ** 2 + (dx * spacing_yx[1]) ** 2 <= mm**2:
                result |= np.roll(mask, (dy, dx), axis=(0, 1))
    return result
