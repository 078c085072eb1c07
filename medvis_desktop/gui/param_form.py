"""Controls for a method's declared parameters (explain.base.Param), built from the declaration:
the window has no code for any one method.

Sizes declared in voxels are asked for in mm, as a reader measures a study, and turned into
voxels with the study's finest spacing when the values are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

if TYPE_CHECKING:  # the explain package loads TensorFlow: the window loads it later, on purpose
    from medvis_desktop.explain.base import Param, ParamValue


LARGE = 1_000_000_000


class ParamForm(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QFormLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._params: tuple[Param, ...] = ()
        self._controls: dict[str, QWidget] = {}
        self._mm_per_voxel = 1.0

    def set_params(self, params: Sequence[Param]) -> None:
        """Replace the controls with one per parameter, at its default."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self._params = tuple(params)
        self._controls = {param.name: self._control(param) for param in self._params}
        for param in self._params:
            control = self._controls[param.name]
            control.setToolTip(param.help)
            self._layout.addRow(param.label, control)

    def set_spacing(self, mm_per_voxel: float) -> None:
        """The study's finest spacing: what a size in mm is in voxels."""
        self._mm_per_voxel = mm_per_voxel if mm_per_voxel > 0 else 1.0

    def control(self, name: str) -> QWidget:
        return self._controls[name]

    def values(self) -> dict[str, ParamValue]:
        """The chosen values, in the units the method takes (mm sizes as voxels)."""
        values: dict[str, ParamValue] = {}
        for param in self._params:
            control = self._controls[param.name]
            if isinstance(control, QCheckBox):
                values[param.name] = control.isChecked()
            elif isinstance(control, QComboBox):
                values[param.name] = control.currentData()
            elif param.unit == "voxels":
                values[param.name] = max(1, round(control.value() / self._mm_per_voxel))
            else:
                values[param.name] = control.value()
        return values

    def _control(self, param: Param) -> QWidget:
        default = param.default
        if isinstance(default, bool):
            box = QCheckBox()
            box.setChecked(default)
            box.toggled.connect(self.changed)
            return box
        if param.choices:
            combo = QComboBox()
            for choice in param.choices:
                combo.addItem(choice.replace("_", " "), choice)
            combo.setCurrentIndex(max(combo.findData(default), 0))
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if isinstance(default, int) and param.unit != "voxels":
            spin = QSpinBox()
            spin.setRange(_bound(param.minimum, -LARGE), _bound(param.maximum, LARGE))
            spin.setValue(default)
        else:
            spin = QDoubleSpinBox()
            spin.setDecimals(1 if param.unit == "voxels" else 3)
            spin.setRange(_bound(param.minimum, -LARGE), _bound(param.maximum, LARGE))
            if param.unit == "voxels":
                spin.setRange(0.1, LARGE)
                spin.setSuffix(" mm")
            spin.setValue(float(default) * (self._mm_per_voxel if param.unit == "voxels" else 1.0))
        spin.valueChanged.connect(self.changed)
        return spin


def _bound(value: float | None, otherwise: int) -> int:
    return otherwise if value is None else int(value)
