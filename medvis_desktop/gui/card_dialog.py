"""Edit a model card: how slices become this model's input, and what its outputs are called."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from medvis_desktop.models.card import INPUT_MODES, INTENSITY_KINDS, Intensity, ModelCard

VALUE_LIMIT = 1e6


class CardDialog(QDialog):
    """Starts from a card (the file's or the default one) and the reasons it is shown."""

    def __init__(self, card: ModelCard, reasons: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model card")
        self._card = card
        self.input_mode = QComboBox()
        self.input_mode.addItems(INPUT_MODES)
        self.input_mode.setCurrentText(card.input_mode)
        self.kind = QComboBox()
        self.kind.addItems(INTENSITY_KINDS)
        self.kind.setCurrentText(card.intensity.kind)
        self.center = _number(card.intensity.center)
        self.width = _number(card.intensity.width)
        self.class_names = QPlainTextEdit("\n".join(card.class_names))
        self.class_names.setPlaceholderText("one class name per line, in output order")
        self.note = QLabel("\n".join(f"• {reason}" for reason in reasons))
        self.note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Input shape", QLabel(str(card.input_shape)))
        form.addRow("Input mode", self.input_mode)
        form.addRow("Intensity", self.kind)
        form.addRow("Window centre", self.center)
        form.addRow("Window width", self.width)
        form.addRow("Class names", self.class_names)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def card(self) -> ModelCard:
        """The card as edited (checked against the model by the caller)."""
        names = [line.strip() for line in self.class_names.toPlainText().splitlines() if line.strip()]
        intensity = Intensity(
            kind=self.kind.currentText(),
            center=self.center.value(),
            width=self.width.value(),
            scale=self._card.intensity.scale,
            offset=self._card.intensity.offset,
        )
        return replace(
            self._card, input_mode=self.input_mode.currentText(), intensity=intensity, class_names=names
        )


def _number(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(-VALUE_LIMIT, VALUE_LIMIT)
    box.setDecimals(1)
    box.setValue(value)
    return box
