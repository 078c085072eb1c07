"""A series larger than the memory budget (issue 14): refused before anything is allocated,
saying how many slices would fit, and opened as a range of slices instead."""

from __future__ import annotations

import numpy as np
import pytest

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
from tests.imaging.dicom_factory import write_series

SLICES = 12
FITTING = 5


@pytest.fixture(scope="module")
def series(tmp_path_factory, head_ct_block):
    folder = tmp_path_factory.mktemp("series")
    write_series(head_ct_block[:SLICES], folder)  # shuffled file names, as real exports come
    return folder


@pytest.fixture(scope="module")
def whole(series):
    return imaging.load(series)


def budget_for(whole: imaging.Volume, slices: int) -> int:
    """Room for `slices` slices of the study and a little more, not for one more slice."""
    return slices * whole.voxels[0].nbytes + whole.voxels[0].nbytes // 2


@pytest.mark.parametrize("read", [imaging.load, imaging.load_isolated])
def test_a_series_over_the_budget_says_how_many_slices_fit(series, whole, read):
    with pytest.raises(imaging.TooLargeError) as caught:
        read(series, memory_budget=budget_for(whole, FITTING))
    message = str(caught.value)
    assert "\n" not in message and series.name in message
    assert f"{FITTING} of its {SLICES} slices fit" in message
    assert (caught.value.slices, caught.value.fitting) == (SLICES, FITTING)


@pytest.mark.parametrize("read", [imaging.load, imaging.load_isolated])
def test_a_range_of_slices_opens_within_the_budget_where_the_whole_series_lies(series, whole, read):
    first, stop = 4, 4 + FITTING
    part = read(series, memory_budget=budget_for(whole, FITTING), slices=(first, stop))
    np.testing.assert_array_equal(part.voxels, whole.voxels[first:stop])
    # The range's first voxel is where the whole study has voxel (first, 0, 0), in patient mm.
    np.testing.assert_allclose(part.origin, whole.index_to_patient((first, 0, 0)), atol=1e-6)
    np.testing.assert_allclose(part.spacing, whole.spacing)
    assert f"Slices {first + 1} to {stop} of {SLICES} opened" in part.warnings


@pytest.mark.parametrize("slices", [(-1, 3), (3, 3), (8, SLICES + 1)])
def test_a_range_outside_the_series_is_refused(series, slices):
    with pytest.raises(LoadError, match=f"the series has 1 to {SLICES}"):
        imaging.load(series, slices=slices)


def test_a_range_of_slices_is_for_dicom_series_only(tmp_path, whole):
    path = tmp_path / "study.nii.gz"
    imaging.save(whole, path)
    with pytest.raises(LoadError, match="from a DICOM series only"):
        imaging.load(path, slices=(0, 2))
