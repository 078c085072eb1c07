"""Pointing game and energy inside the reference, 2D and 3D, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from medvis_desktop.metrics.base import MetricError
from medvis_desktop.metrics.localisation import TOLERANCE_MM, energy_inside, pointing_game

RANKS = [2, 3]


def grid(rank: int, count: int = 1) -> tuple[int, ...]:
    return (count, *(12,) * rank)


def point(rank: int, *where: int) -> tuple[int, ...]:
    """A voxel of sample 0: `where` padded with 6 on the leading axes (the middle slice in 3D)."""
    return (0, *(6,) * (rank - len(where)), *where)


@pytest.mark.parametrize("rank", RANKS)
def test_a_perfect_map_hits_and_keeps_all_its_energy_inside(rank):
    rng = np.random.default_rng(0)
    reference = np.zeros(grid(rank, 2), bool)
    reference[(slice(None), *(slice(4, 7),) * rank)] = True
    assert pointing_game(reference, reference, (1.0,) * rank).tolist() == [1.0, 1.0]
    assert energy_inside(reference, reference).tolist() == [1.0, 1.0]
    # a map peaking inside the lesion, with positive mass all over the image
    maps = rng.uniform(0, 1, reference.shape)
    maps[point(rank, 5, 5)] = 2.0
    assert pointing_game(maps[:1], reference[:1], (1.0,) * rank, tolerance_mm=0.0).tolist() == [1.0]


# (peak (y, x) on the middle slice, tolerance mm, hit?) for one reference voxel at (2, 2) with
# spacing (2.0, 0.5) mm in-plane (3.0 mm between slices in 3D): distances by hand.
ANISOTROPIC = [
    ((2, 10), 5.0, True),  # 8 columns x 0.5 mm = 4 mm
    ((2, 10), 3.9, False),
    ((5, 2), 5.0, False),  # 3 rows x 2 mm = 6 mm
    ((5, 2), 6.0, True),
    ((4, 8), 5.0, True),  # sqrt((2 x 2)² + (6 x 0.5)²) = 5 mm exactly: within
    ((4, 8), 4.99, False),
    ((2, 2), 0.0, True),  # the reference voxel itself
    ((2, 3), 0.0, False),  # its neighbour, 0.5 mm away
]


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize(("peak", "tolerance", "hit"), ANISOTROPIC)
def test_the_tolerance_is_a_distance_in_mm_along_each_axis(rank, peak, tolerance, hit):
    reference = np.zeros(grid(rank), bool)
    reference[point(rank, 2, 2)] = True
    maps = np.zeros(grid(rank))
    maps[point(rank, *peak)] = 1.0
    spacing = (3.0, 2.0, 0.5)[-rank:]
    assert pointing_game(maps, reference, spacing, tolerance_mm=tolerance).tolist() == [float(hit)]


def test_slices_apart_count_in_3d():
    """The reference two slices (2 x 3 mm) below the peak: 6 mm."""
    reference = np.zeros(grid(3), bool)
    reference[0, 4, 6, 6] = True
    maps = np.zeros(grid(3))
    maps[0, 6, 6, 6] = 1.0
    for tolerance, hit in ((6.0, 1.0), (5.9, 0.0)):
        assert pointing_game(maps, reference, (3.0, 1.0, 1.0), tolerance_mm=tolerance).tolist() == [hit]


def test_the_default_tolerance_is_5_mm():
    assert TOLERANCE_MM == 5.0
    reference = np.zeros(grid(2, 2), bool)
    reference[:, 0, 0] = True
    maps = np.zeros(grid(2, 2))
    maps[0, 0, 5] = 1.0  # 5 mm away at 1 mm per pixel
    maps[1, 0, 6] = 1.0  # 6 mm away
    assert pointing_game(maps, reference, (1.0, 1.0)).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("rank", RANKS)
def test_any_of_tied_maxima_may_hit_and_a_constant_map_misses(rank):
    reference = np.zeros(grid(rank, 3), bool)
    reference[(slice(None), *(slice(0, 2),) * rank)] = True
    maps = np.zeros(grid(rank, 3))
    maps[(0, *(11,) * rank)] = 1.0  # far from the reference...
    maps[(0, *(1,) * rank)] = 1.0  # ...and tied inside it
    maps[(1, *(11,) * rank)] = 1.0  # only far away
    maps[2] = 0.5  # constant: no maximum to point with
    assert pointing_game(maps, reference, (1.0,) * rank).tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("rank", RANKS)
def test_samples_without_a_reference_are_not_counted(rank):
    reference = np.zeros(grid(rank, 2), bool)
    reference[point(rank, 3, 3)] = True
    maps = np.zeros(grid(rank, 2))
    maps[point(rank, 3, 3)] = 1.0
    maps[(1, *(3,) * rank)] = 1.0
    hits = pointing_game(maps, reference, (1.0,) * rank)
    assert hits[0] == 1.0 and np.isnan(hits[1])
    energy = energy_inside(maps, reference)
    assert energy[0] == 1.0 and np.isnan(energy[1])
    assert np.nanmean(hits) == 1.0


@pytest.mark.parametrize("rank", RANKS)
def test_energy_inside_is_the_share_of_the_positive_mass(rank):
    reference = np.zeros(grid(rank, 2), bool)
    reference[(slice(None), *(slice(0, 3),) * rank)] = True
    maps = np.zeros(grid(rank, 2))
    maps[(0, *(0,) * rank)] = 3.0  # inside
    maps[(0, *(2,) * rank)] = 1.0  # inside
    maps[(0, *(1,) * (rank - 1), 0)] = -1.0  # inside, negative: not energy
    maps[(0, *(9,) * rank)] = 2.0  # outside
    maps[(0, *(10,) * rank)] = -5.0  # outside, negative
    maps[1] = -1.0  # no positive mass at all
    energy = energy_inside(maps, reference)
    assert energy[0] == pytest.approx((3 + 1) / (3 + 1 + 2))
    assert np.isnan(energy[1])


@pytest.mark.parametrize("rank", RANKS)
def test_channels_are_averaged(rank):
    reference = np.zeros(grid(rank), bool)
    reference[point(rank, 2, 2)] = True
    maps = np.zeros((*grid(rank), 2))
    maps[(*point(rank, 9, 9), 0)] = 2.0  # one channel's peak, far away...
    maps[(*point(rank, 9, 9), 1)] = -2.0  # ...cancelled by the other channel
    maps[(*point(rank, 2, 2), 1)] = 1.0  # the mean's peak: 0.5 inside
    assert pointing_game(maps, reference, (1.0,) * rank, tolerance_mm=0.0).tolist() == [1.0]
    assert energy_inside(maps, reference).tolist() == [1.0]


BAD = [
    (np.zeros((2, 8, 8)), np.zeros((2, 8, 9), bool), "same grid"),
    (np.zeros((2, 8, 8)), np.zeros((3, 8, 8), bool), "one map per mask"),
    (np.zeros((0, 8, 8)), np.zeros((0, 8, 8), bool), "empty"),
    (np.zeros((2, 8)), np.zeros((2, 8), bool), "one mask per sample"),
    (np.full((1, 8, 8), np.nan), np.zeros((1, 8, 8), bool), "NaN"),
]


@pytest.mark.parametrize(("maps", "reference", "message"), BAD)
def test_bad_maps_or_references_are_refused_with_a_reason(maps, reference, message):
    for metric in (energy_inside, lambda m, r: pointing_game(m, r, (1.0,) * (r.ndim - 1))):
        with pytest.raises(MetricError, match=message):
            metric(maps, reference)


@pytest.mark.parametrize(
    ("spacing", "tolerance", "message"),
    [((1.0,), 5.0, "spacing"), ((1.0, 0.0), 5.0, "spacing"), ((1.0, 1.0), -1.0, "tolerance")],
)
def test_bad_spacing_or_tolerance_is_refused(spacing, tolerance, message):
    maps, reference = np.ones((1, 4, 4)), np.ones((1, 4, 4), bool)
    with pytest.raises(MetricError, match=message):
        pointing_game(maps, reference, spacing, tolerance_mm=tolerance)
