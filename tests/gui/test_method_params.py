"""The method panel builds each method's controls from its declaration, asks sizes in mm, says
what a costly method costs, and the window runs a method with the values chosen."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QSpinBox

from medvis_desktop import explain
from tests.gui.conftest import HEAD_SPACING, INPUT_SIDE, run_and_wait


@pytest.mark.parametrize("name", list(explain.METHODS))
def test_each_method_gets_one_control_per_declared_parameter(window, name):
    method = explain.METHODS[name]
    window.panel.select(method=name)
    form = window.panel.params
    for param in method.params:
        control = form.control(param.name)
        label = form.layout().labelForField(control)
        assert isinstance(label, QLabel) and label.text() == param.label
        expected = (
            QCheckBox
            if isinstance(param.default, bool)
            else QComboBox
            if param.choices
            else QDoubleSpinBox
            if isinstance(param.default, float) or param.unit == "voxels"
            else QSpinBox
        )
        assert type(control) is expected
    assert window.panel.settings().params == method.parameters()
    assert window.panel.layer.isEnabled() == method.uses_layer
    assert window.panel.filter.isEnabled() == method.uses_filter


def test_sizes_in_voxels_are_asked_in_mm(window):
    """The head CT (256² at 0.957 mm) goes to the 64² model input: one input voxel is 4 × 0.957 mm."""
    window.panel.select(method="occlusion")
    mm_per_voxel = HEAD_SPACING[1] * 256 / INPUT_SIDE
    window_box = window.panel.params.control("window")
    assert window_box.suffix() == " mm"
    assert window_box.value() == pytest.approx(16 * mm_per_voxel, abs=0.05)  # the default, 16 voxels
    window_box.setValue(30.0)
    assert window.panel.settings().params["window"] == round(30.0 / mm_per_voxel)


def test_a_costly_method_says_how_many_forward_passes_the_study_takes(window):
    window.panel.select(method="score_cam", layer="conv2")
    channels = int(window.model.get_layer("conv2").output.shape[-1])
    slices = window.volume.shape[0]
    assert window.panel.cost.text() == (
        f"About {(channels + 1) * slices:,} forward passes for the whole study ({channels + 1:,} per image)."
    )
    window.panel.select(method="grad_cam")
    assert window.panel.cost.text() == ""


def test_the_window_runs_a_method_with_the_chosen_parameters(qtbot, window):
    window.panel.select(method="integrated_gradients", target=1)
    window.panel.params.control("steps").setValue(4)
    window.panel.params.control("rule").setCurrentIndex(1)
    window.viewer.set_slice(20)
    run_and_wait(qtbot, window, method="integrated_gradients")
    explanation = window.explanation
    assert explanation.method == "integrated_gradients" and explanation.layer == ""
    assert explanation.parameters["steps"] == 4 and explanation.parameters["rule"] == "riemann_trapezoid"
    assert explanation.signed and explanation.computed.all()
    computed = explanation.maps[20]
    assert (computed < 0).any() and (computed > 0).any()
    assert np.isfinite(explanation.maps).all()
