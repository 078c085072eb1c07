"""The right-hand panel: which method, on which layer, for which class; Run, Cancel, progress.

It only collects choices and shows progress; the main window turns them into jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.export.style import COLORMAPS, OverlayStyle
from medvis_desktop.gui.param_form import ParamForm

if TYPE_CHECKING:  # the explain package loads TensorFlow: the window loads it later, on purpose
    from medvis_desktop.explain.base import Method, ParamValue

# A method whose run costs more forward passes than this per image shows its cost before it runs.
COSTLY_PASSES = 4

AUTOMATIC_TARGET = "Automatic (highest score)"
SEGMENTATION_REGIONS = {"all": "Whole image", "predicted": "Where the class is predicted"}
MAX_FILTERS = 4096
SIGN_LABELS = {"signed": "Signed", "positive": "Positive only", "absolute": "Absolute value"}
# The colour scale policies of export.images.SCALES, in the words of the panel.
SCALE_LABELS = {
    "robust": "Whole study, 99.5th percentile",
    "max": "Whole study, maximum",
    "slice": "This slice",
    "fixed": "Fixed range",
}
# A fixed range is typed in the map's own units: raw gradients are around 1e-4, activations 1e3.
FIXED_DECIMALS = 12  # what the box keeps; it shows six significant digits
FIXED_LIMIT = 1e9
PROBLEM_COLOUR = "#c0392b"


@dataclass(frozen=True)
class RunSettings:
    """What the user chose to run."""

    method: str
    layer: str | None
    target: int | None
    filter: int | None
    batch_size: int
    region: str = "all"
    params: dict[str, ParamValue] = field(default_factory=dict)  # the method's declared ones


class MethodPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    method_changed = Signal(str)
    layer_changed = Signal(str)
    style_changed = Signal(object)  # OverlayStyle
    overlay_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._targets: dict[str, list[str]] = {}
        self._methods: dict[str, Method] = {}
        self._cost_context: tuple[tuple[int, ...], int, dict[str, int]] = ((), 0, {})
        self._started = 0.0
        self._unit = "slices"  # what progress counts: slices, or patches of a study read in patches
        self.method = QComboBox()
        self.layer = QComboBox()
        self.target = QComboBox()
        self.filter = QSpinBox()
        self.filter.setRange(-1, MAX_FILTERS - 1)
        self.filter.setSpecialValueText("all filters")
        self.filter.setValue(-1)
        self.params = ParamForm()
        self.cost = QLabel()
        self.cost.setWordWrap(True)
        self.region = QComboBox()
        for name, label in SEGMENTATION_REGIONS.items():
            self.region.addItem(label, name)
        self.region.setToolTip("Segmentation models: the region whose class score Grad-CAM explains")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 256)
        self.batch_size.setValue(8)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Layer", self.layer)
        form.addRow("Class", self.target)
        form.addRow("Filter", self.filter)
        form.addRow("Region", self.region)
        self.batch_label = QLabel("Slices per batch")  # or patches, as the study is read
        form.addRow(self.batch_label, self.batch_size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        method_box = QGroupBox("Explain")
        method_layout = QVBoxLayout(method_box)
        method_layout.addLayout(form)
        method_layout.addWidget(self.params)
        method_layout.addWidget(self.cost)
        method_layout.addLayout(buttons)
        method_layout.addWidget(self.progress)
        method_layout.addWidget(self.message)

        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.opacity = _percent_slider(50)
        self.threshold = _percent_slider(20)
        self.sign = QComboBox()
        for name, label in SIGN_LABELS.items():
            self.sign.addItem(label, name)
        self.sign.setToolTip(
            "Maps with a sign (deconvnet, pixel attributions): blue–red about zero, only the "
            "positive part, or the magnitude. Maps of one sign (CAM) keep the colour map."
        )
        self.set_signed(False)
        self.colour_scale = QComboBox()
        for name, label in SCALE_LABELS.items():
            self.colour_scale.addItem(label, name)
        self.colour_scale.setToolTip(
            "What the colours span; the threshold is a fraction of it. The 99.5th percentile keeps "
            "a few extreme voxels elsewhere in the study from washing out every other slice."
        )
        self.fixed_low = NumberBox(OverlayStyle.fixed_low)
        self.fixed_high = NumberBox(OverlayStyle.fixed_high)
        fixed = QHBoxLayout()
        fixed.addWidget(self.fixed_low)
        fixed.addWidget(QLabel("to"))
        fixed.addWidget(self.fixed_high)
        self.range_problem = QLabel()  # why a typed range is not used, in red below it
        self.range_problem.setStyleSheet(f"color: {PROBLEM_COLOUR}")
        self.range_problem.setWordWrap(True)
        self.range_problem.hide()
        self.show_overlay = QCheckBox("Show overlay (O)")
        self.show_overlay.setChecked(True)
        overlay_box = QGroupBox("Overlay")
        overlay_form = QFormLayout(overlay_box)
        overlay_form.addRow("Colour map", self.colormap)
        overlay_form.addRow("Opacity", self.opacity)
        overlay_form.addRow("Threshold", self.threshold)
        overlay_form.addRow("Signed maps", self.sign)
        overlay_form.addRow("Colour scale", self.colour_scale)
        overlay_form.addRow("Fixed range", fixed)
        overlay_form.addRow(self.range_problem)
        overlay_form.addRow(self.show_overlay)

        layout = QVBoxLayout(self)
        layout.addWidget(method_box)
        layout.addWidget(overlay_box)
        layout.addStretch(1)

        self.method.currentIndexChanged.connect(self._method_changed)
        self.layer.currentIndexChanged.connect(self._layer_changed)
        self.params.changed.connect(self._show_cost)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.colormap.currentIndexChanged.connect(self._style_changed)
        self.opacity.valueChanged.connect(self._style_changed)
        self.threshold.valueChanged.connect(self._style_changed)
        self.sign.currentIndexChanged.connect(self._style_changed)
        self.colour_scale.currentIndexChanged.connect(self._style_changed)
        self.fixed_low.valueChanged.connect(self._style_changed)
        self.fixed_high.valueChanged.connect(self._style_changed)
        self._enable_fixed()
        self.show_overlay.toggled.connect(self.overlay_toggled)
        self.set_model({}, [])

    # --- filled in by the window -----------------------------------------------------------

    def set_methods(self, methods: dict[str, Method]) -> None:
        """The methods on offer (explain.METHODS): their parameters come from their declarations."""
        self._methods = dict(methods)
        self.method.blockSignals(True)
        self.method.clear()
        for name, method in methods.items():
            self.method.addItem(method.label, name)
        self.method.blockSignals(False)
        self._method_changed()

    def set_model(
        self, targets: dict[str, list[str]], class_names: list[str], *, segmentation: bool = False
    ) -> None:
        """Layers each method can target (model order), the card's class names, and whether the
        model segments (then Grad-CAM can explain a region)."""
        self._targets = targets
        self.region.setEnabled(segmentation)
        self.region.setCurrentIndex(0)
        self.target.clear()
        self.target.addItem(AUTOMATIC_TARGET, None)
        for index, name in enumerate(class_names):
            self.target.addItem(f"{index}: {name}", index)
        self._fill_layers()
        self.run_button.setEnabled(bool(targets))

    def layer_choices(self) -> dict[str, list[str]]:
        """The layers each method can target, as set_model gave them."""
        return dict(self._targets)

    def set_study(
        self, spatial: tuple[int, ...], images: int, channels: dict[str, int], mm: float, unit: str = "slices"
    ) -> None:
        """What a method's cost depends on: the model input's spatial shape, how many images
        (slices or patches: `unit`, as progress counts them) a whole study is, each layer's
        channels; and the study's finest spacing, for sizes asked in mm."""
        self._cost_context = (spatial, images, channels)
        self._unit = unit
        self.batch_label.setText(f"{unit.capitalize()} per batch")
        self.params.set_spacing(mm)
        self._method_changed()

    def select(
        self,
        *,
        method: str | None = None,
        layer: str | None = None,
        target: int | None = None,
        region: str | None = None,
    ) -> None:
        """Choose programmatically (tree context menu, command line); None leaves it as is."""
        if region is not None:
            self.region.setCurrentIndex(max(self.region.findData(region), 0))
        if method is not None:
            self.method.setCurrentIndex(max(self.method.findData(method), 0))
        if layer is not None:
            self.layer.setCurrentIndex(max(self.layer.findData(layer), 0))
        if target is not None:
            self.target.setCurrentIndex(max(self.target.findData(target), 0))

    def settings(self) -> RunSettings:
        return RunSettings(
            method=self.method.currentData(),
            layer=self.layer.currentData(),
            target=self.target.currentData(),
            filter=None if self.filter.value() < 0 else self.filter.value(),
            batch_size=self.batch_size.value(),
            region=self.region.currentData() if self.region.isEnabled() else "all",
            params=self.params.values(),
        )

    @property
    def style(self) -> OverlayStyle:
        return OverlayStyle(
            colormap=self.colormap.currentText(),
            opacity=self.opacity.value() / 100,
            threshold=self.threshold.value() / 100,
            sign=self.sign.currentData(),
            scale=self.colour_scale.currentData(),
            fixed_low=self.fixed_low.value(),
            fixed_high=self.fixed_high.value(),
        )

    def set_style(self, style: OverlayStyle) -> None:
        self.colormap.setCurrentText(style.colormap)
        self.opacity.setValue(round(style.opacity * 100))
        self.threshold.setValue(round(style.threshold * 100))
        self.sign.setCurrentIndex(self.sign.findData(style.sign))
        self.colour_scale.setCurrentIndex(self.colour_scale.findData(style.scale))
        self.fixed_low.setValue(style.fixed_low)
        self.fixed_high.setValue(style.fixed_high)

    def set_signed(self, signed: bool) -> None:
        """Whether the result shown is signed: only then does the "Signed maps" choice apply."""
        self.sign.setEnabled(signed)

    # --- run state -------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self._started = time.monotonic()
            self.message.clear()
            self.progress.setRange(0, 0)  # busy until the first slice is in
            self.progress.setFormat("starting…")

    def show_progress(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._started
        left = elapsed / done * (total - done) if done else 0.0
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        unit = self._unit if total > 1 else "step"
        estimate = f", {left:.0f} s left" if done else ""  # nothing to go by before the first is in
        self.progress.setFormat(f"%v / %m {unit}" + (estimate if done < total else ", done"))

    def show_error(self, message: str) -> None:
        self.message.setStyleSheet("color: #d04040")
        self.message.setText(message)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")

    def show_stopped(self) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if self.progress.value() < self.progress.maximum():
            self.progress.setFormat(f"%v / %m {self._unit}, stopped")

    # --- internals -------------------------------------------------------------------------

    def _method_changed(self) -> None:
        self._fill_layers()
        name = self.method.currentData()
        method = self._methods.get(name)
        self.filter.setEnabled(method is not None and method.uses_filter)
        self.layer.setEnabled(method is None or method.uses_layer)
        self.target.setEnabled(method is None or method.uses_target)
        self.params.set_params(method.params if method else ())
        self._show_cost()
        self.method_changed.emit(name or "")

    def _show_cost(self) -> None:
        """About how many forward passes a whole study costs, when that is many per image."""
        method = self._methods.get(self.method.currentData())
        spatial, images, channels = self._cost_context
        self.cost.clear()
        if method is None or method.cost is None or not images:
            return
        layer = self.layer.currentData() or next(iter(self._targets.get(method.name, [])), None)
        passes = method.cost(self.params.values(), spatial, channels.get(layer, 0))
        if passes > COSTLY_PASSES:
            self.cost.setText(
                f"About {passes * images:,} forward passes for the whole study ({passes:,} per image)."
            )

    def _fill_layers(self) -> None:
        chosen = self.layer.currentData()
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItem("Automatic (last feature maps)", None)
        for path in self._targets.get(self.method.currentData(), []):
            self.layer.addItem(path, path)
        self.layer.setCurrentIndex(max(self.layer.findData(chosen), 0))
        self.layer.blockSignals(False)

    def _layer_changed(self) -> None:
        self._show_cost()
        self.layer_changed.emit(self.layer.currentData() or "")

    def _style_changed(self) -> None:
        """Tell the viewer the new style, unless the fixed range in use is empty or inverted:
        that is refused here, said under the boxes, and the view keeps its last good scale."""
        self._enable_fixed()
        low, high = self.fixed_low.value(), self.fixed_high.value()
        refused = self.colour_scale.currentData() == "fixed" and not low < high
        self.range_problem.setText(
            f"Not used: the range's low end ({low:.6g}) must be below its high end ({high:.6g})"
            if refused
            else ""
        )
        self.range_problem.setVisible(refused)
        if not refused:
            self.style_changed.emit(self.style)

    def _enable_fixed(self) -> None:
        """The range boxes apply to the fixed scale only."""
        fixed = self.colour_scale.currentData() == "fixed"
        self.fixed_low.setEnabled(fixed)
        self.fixed_high.setEnabled(fixed)


def _percent_slider(value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    return slider


class NumberBox(QDoubleSpinBox):
    """A value in the map's units, shown and typed as a number is written (2.5e-05, 130): maps
    span 1e-5 to 1e4. It counts once typed (Enter, or leaving the box), not at every key."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.setDecimals(FIXED_DECIMALS)
        self.setRange(-FIXED_LIMIT, FIXED_LIMIT)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)
        self.setValue(value)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        return float(text)

    def validate(self, text: str, position: int) -> tuple[QValidator.State, str, int]:
        try:
            float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, position
        return QValidator.State.Acceptable, text, position


def scrolled(panel: QWidget) -> QScrollArea:
    """The panel in a vertical scroll area: the window must fit a small screen (1280 × 720)."""
    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    beside = area.verticalScrollBar().sizeHint().width() + 2 * area.frameWidth()
    area.setMinimumWidth(panel.minimumSizeHint().width() + beside)  # never cut on the right
    return area
