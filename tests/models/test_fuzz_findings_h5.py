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


HANG_OR_CRASH = [
    (3992, "took longer than"),  # bilateral_shared.h5, 256 bytes copied over others: HDF5 looped
    (5270, "crashed reading it (SIGSEGV)"),  # sequential_2d.h5, 8 bytes flipped: HDF5 segfaulted
]


@pytest.mark.parametrize(("case", "reason"), HANG_OR_CRASH)
def test_an_h5_file_that_hangs_or_crashes_the_hdf5_library_is_refused(tmp_path, case, reason):
    """Seed 31 (10,000 inputs): the whole file is read in a capped child process first."""
    from tests.fuzz.harness import make_case
    from tests.fuzz.seeds import build_seeds

    seeds = build_seeds(tmp_path / "seeds", ("h5",))
    path = make_case("h5", case, 31, seeds["h5"], tmp_path).path
    with pytest.raises(LoadError) as caught:
        loading.read_model_file(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path.name}:") and reason in message
