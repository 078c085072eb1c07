"""Regression for the fuzz finding in the .h5 config read (tests/fuzz: h5, seed 13, case 261):
4096 zero bytes inserted into a real Keras 2 file make h5py raise RuntimeError ("attribute name
has different length than stored length"), which escaped `_read_h5_config` (only OSError was
caught)."""

from __future__ import annotations

import pytest

from medvis_desktop.errors import LoadError
from medvis_desktop.models import loading
from tests.models.conftest import fixture_path


def test_an_h5_file_with_a_damaged_attribute_is_refused_in_one_line(tmp_path):
    original = fixture_path("nested_3d").read_bytes()
    path = tmp_path / "nested_3d.h5"
    path.write_bytes(original[:851] + bytes(4096) + original[851:])
    with pytest.raises(LoadError) as caught:
        loading.read_model_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("nested_3d.h5:") and "corrupt" in message
