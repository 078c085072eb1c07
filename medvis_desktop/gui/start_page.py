"""What the window shows before a study is open: what to do next, instead of a black view.

The recent studies and models, the built-in demo cases, the three ways to open something and
the drag-and-drop hint; every entry opens with one click.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

PATH_ROLE = Qt.ItemDataRole.UserRole


class StartPage(QWidget):
    open_path = Signal(str)
    open_demo = Signal(str)
    open_study = Signal()
    open_folder = Signal()
    open_model = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h2>medvis</h2>See why a CNN decided what it did, slice by slice.")
        title.setWordWrap(True)
        buttons = QHBoxLayout()
        for label, signal in (
            ("Open study…", self.open_study),
            ("Open DICOM folder…", self.open_folder),
            ("Open model…", self.open_model),
        ):
            button = QPushButton(label)
            button.clicked.connect(signal)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.recent = QListWidget()
        self.demos = QListWidget()
        self.recent.itemClicked.connect(self._recent_chosen)
        self.demos.itemClicked.connect(self._demo_chosen)
        self.hint = QLabel(
            "Or drop a study (a DICOM folder, NIfTI, MHA, NRRD, an image) and a Keras model "
            "(.keras, .h5) onto this window."
        )
        self.hint.setWordWrap(True)
        lists = QGridLayout()
        for column, text in enumerate(
            (
                "<b>Recent studies and models</b>",
                "<b>Demo cases</b> (a study with inserted lesions and its model)",
            )
        ):
            heading = QLabel(text)
            heading.setWordWrap(True)
            lists.addWidget(heading, 0, column)
        lists.addWidget(self.recent, 1, 0)
        lists.addWidget(self.demos, 1, 1)
        lists.setColumnStretch(0, 1)
        lists.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 30, 40, 30)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addLayout(lists, 1)
        layout.addWidget(self.hint)
        self.set_demos({})

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(f"{Path(path).name}  —  {Path(path).parent}")
            item.setData(PATH_ROLE, path)
            item.setToolTip(path)
            self.recent.addItem(item)
        if not paths:
            self.recent.addItem(QListWidgetItem("Nothing opened yet"))

    def set_demos(self, titles: dict[str, str]) -> None:
        """The demo cases, name → title; empty until TensorFlow is up."""
        self.demos.clear()
        for name, title in titles.items():
            item = QListWidgetItem(title)
            item.setData(PATH_ROLE, name)
            self.demos.addItem(item)
        if not titles:
            self.demos.addItem(QListWidgetItem("Starting TensorFlow…"))

    def _recent_chosen(self, item: QListWidgetItem) -> None:
        if item.data(PATH_ROLE):
            self.open_path.emit(item.data(PATH_ROLE))

    def _demo_chosen(self, item: QListWidgetItem) -> None:
        if item.data(PATH_ROLE):
            self.open_demo.emit(item.data(PATH_ROLE))
