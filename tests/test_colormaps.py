"""Colour maps: the diverging cool-warm map agrees with its author's published table."""

from __future__ import annotations

import numpy as np
import pytest

from medvis_desktop import colormaps

# K. Moreland, "Diverging Color Maps for Scientific Visualization" (ISVC 2009), the table
# CoolWarmFloat33.csv published with it (kennethmoreland.com/color-maps): position, R, G, B.
MORELAND_COOL_WARM_33 = np.array([
    [0.00000, 0.229805700, 0.298717966, 0.753683153],
    [0.03125, 0.266233880, 0.353094838, 0.801466763],
    [0.06250, 0.303868910, 0.406535296, 0.844958670],
    [0.09375, 0.342804478, 0.458757618, 0.883725899],
    [0.12500, 0.383013340, 0.509419040, 0.917387822],
    [0.15625, 0.424369608, 0.558148092, 0.945619588],
    [0.18750, 0.466667080, 0.604562568, 0.968154911],
    [0.21875, 0.509635204, 0.648280772, 0.984788140],
    [0.25000, 0.552953156, 0.688929332, 0.995375608],
    [0.28125, 0.596262162, 0.726149107, 0.999836203],
    [0.31250, 0.639176211, 0.759599947, 0.998151185],
    [0.34375, 0.681291281, 0.788964712, 0.990363227],
    [0.37500, 0.722193294, 0.813952739, 0.976574709],
    [0.40625, 0.761464949, 0.834302879, 0.956945269],
    [0.43750, 0.798691636, 0.849786142, 0.931688648],
    [0.46875, 0.833466556, 0.860207984, 0.901068838],
    [0.50000, 0.865395197, 0.865410210, 0.865395561],
    [0.53125, 0.897787179, 0.848937047, 0.820880546],
    [0.56250, 0.924127593, 0.827384882, 0.774508472],
    [0.59375, 0.944468518, 0.800927443, 0.726736146],
    [0.62500, 0.958852946, 0.769767752, 0.678007945],
    [0.65625, 0.967328030, 0.734132809, 0.628751763],
    [0.68750, 0.969954137, 0.694266682, 0.579375448],
    [0.71875, 0.966811177, 0.650421156, 0.530263762],
    [0.75000, 0.958003065, 0.602842431, 0.481775914],
    [0.78125, 0.943660866, 0.551750968, 0.434243684],
    [0.81250, 0.923944917, 0.497308560, 0.387970225],
    [0.84375, 0.899046170, 0.439559467, 0.343229596],
    [0.87500, 0.869186849, 0.378313092, 0.300267182],
    [0.90625, 0.834620542, 0.312874446, 0.259301199],
    [0.93750, 0.795631745, 0.241283790, 0.220525627],
    [0.96875, 0.752534934, 0.157246067, 0.184115123],
    [1.00000, 0.705673158, 0.015556160, 0.150232812],
])  # fmt: skip


def test_cool_warm_is_morelands_published_table():
    positions, published = MORELAND_COOL_WARM_33[:, 0], MORELAND_COOL_WARM_33[:, 1:]
    np.testing.assert_allclose(colormaps.cool_warm(positions), published, atol=0.5 / 255)


def test_cool_warm_table_runs_from_blue_through_grey_to_red():
    table = colormaps.lookup_table(colormaps.DIVERGING).astype(int)
    assert table.shape == (256, 3)
    assert tuple(table[0]) == (59, 76, 192) and tuple(table[-1]) == (180, 4, 38)  # the paper's ends
    assert np.ptp(table[127]) <= 1 and np.ptp(table[128]) <= 1 and 215 < table[127, 0] < 225  # neutral
    assert (table[:128, 2] > table[:128, 0]).all() and (table[128:, 0] > table[128:, 2]).all()


def test_sequential_choices_leave_the_diverging_map_out_and_unknown_names_are_refused():
    assert colormaps.DIVERGING not in colormaps.NAMES
    with pytest.raises(ValueError, match="available: turbo, jet, inferno, coolwarm"):
        colormaps.lookup_table("viridis")
