"""The right-hand panel: which method, on which layer, for which class; Run, Cancel, progress.

It only collects choices and shows progress; the main window turns them into jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop import colormaps
from medvis_desktop.export import OverlayStyle

AUTOMATIC_TARGET = "Automatic (highest score)"
DECONVNET_MODES = {"feature_map": "Whole feature map", "max": "Strongest activation only"}
SEGMENTATION_REGIONS = {"all": "Whole image", "predicted": "Where the class is predicted"}
MAX_FILTERS = 4096


@dataclass(frozen=True)
class RunSettings:
    """What the user chose to run."""

    method: str
    layer: str | None
    target: int | None
    filter: int | None
    mode: str
    batch_size: int
    region: str = "all"


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
        self._started = 0.0
        self.method = QComboBox()
        self.layer = QComboBox()
        self.target = QComboBox()
        self.filter = QSpinBox()
        self.filter.setRange(-1, MAX_FILTERS - 1)
        self.filter.setSpecialValueText("all filters")
        self.filter.setValue(-1)
        self.mode = QComboBox()
        for name, label in DECONVNET_MODES.items():
            self.mode.addItem(label, name)
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
        form.addRow("Deconvolution", self.mode)
        form.addRow("Region", self.region)
        form.addRow("Batch size", self.batch_size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        method_box = QGroupBox("Explain")
        method_layout = QVBoxLayout(method_box)
        method_layout.addLayout(form)
        method_layout.addLayout(buttons)
        method_layout.addWidget(self.progress)
        method_layout.addWidget(self.message)

        self.colormap = QComboBox()
        self.colormap.addItems(colormaps.NAMES)
        self.opacity = _percent_slider(50)
        self.threshold = _percent_slider(20)
        self.show_overlay = QCheckBox("Show overlay (O)")
        self.show_overlay.setChecked(True)
        overlay_box = QGroupBox("Overlay")
        overlay_form = QFormLayout(overlay_box)
        overlay_form.addRow("Colour map", self.colormap)
        overlay_form.addRow("Opacity", self.opacity)
        overlay_form.addRow("Threshold", self.threshold)
        overlay_form.addRow(self.show_overlay)

        layout = QVBoxLayout(self)
        layout.addWidget(method_box)
        layout.addWidget(overlay_box)
        layout.addStretch(1)

        self.method.currentIndexChanged.connect(self._method_changed)
        self.layer.currentIndexChanged.connect(self._layer_changed)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.colormap.currentIndexChanged.connect(self._style_changed)
        self.opacity.valueChanged.connect(self._style_changed)
        self.threshold.valueChanged.connect(self._style_changed)
        self.show_overlay.toggled.connect(self.overlay_toggled)
        self.set_model({}, [])

    # --- filled in by the window -----------------------------------------------------------

    def set_methods(self, labels: dict[str, str]) -> None:
        """The methods on offer: name → label (from explain.METHODS)."""
        self.method.blockSignals(True)
        self.method.clear()
        for name, label in labels.items():
            self.method.addItem(label, name)
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
            mode=self.mode.currentData(),
            batch_size=self.batch_size.value(),
            region=self.region.currentData() if self.region.isEnabled() else "all",
        )

    @property
    def style(self) -> OverlayStyle:
        return OverlayStyle(
            colormap=self.colormap.currentText(),
            opacity=self.opacity.value() / 100,
            threshold=self.threshold.value() / 100,
        )

    def set_style(self, style: OverlayStyle) -> None:
        self.colormap.setCurrentText(style.colormap)
        self.opacity.setValue(round(style.opacity * 100))
        self.threshold.setValue(round(style.threshold * 100))

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
        unit = "slices" if total > 1 else "step"
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
            self.progress.setFormat("%v / %m slices, stopped")

    # --- internals -------------------------------------------------------------------------

    def _method_changed(self) -> None:
        self._fill_layers()
        method = self.method.currentData()
        self.mode.setEnabled(method == "deconvnet")
        self.filter.setEnabled(method in ("deconvnet", "activation_maps"))
        self.method_changed.emit(method or "")

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
        self.layer_changed.emit(self.layer.currentData() or "")

    def _style_changed(self) -> None:
        self.style_changed.emit(self.style)


def _percent_slider(value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    return slider
