"""The model's layers as a tree: nested models expand; what a method cannot target is greyed.

It shows a `models.layers.layer_tree` result and never touches Keras itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QMenu, QTreeWidget, QTreeWidgetItem, QWidget

if TYPE_CHECKING:  # Keras loads with it; the window shows before TensorFlow does.
    from medvis_desktop.models.layers import LayerNode

COLUMNS = ("Layer", "Type", "Output shape", "Parameters")
PATH_ROLE = Qt.ItemDataRole.UserRole
GREYED = QBrush(QColor(140, 140, 140))


class ModelTree(QTreeWidget):
    """Selecting a targetable layer emits `layer_selected`; the context menu runs a method on it."""

    layer_selected = Signal(str)
    run_requested = Signal(str, str)  # method, layer path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setColumnCount(len(COLUMNS))
        self.setAlternatingRowColors(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)
        self.itemSelectionChanged.connect(self._selection_changed)
        self._nodes: dict[str, LayerNode] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self._labels: dict[str, str] = {}
        self._method = ""

    def set_layers(self, nodes: list[LayerNode], labels: dict[str, str]) -> None:
        """Show a layer tree; `labels` names the methods (name → label) for the context menu."""
        self.clear()
        self._nodes.clear()
        self._items.clear()
        self._labels = labels
        self._add(self.invisibleRootItem(), nodes)
        self.expandToDepth(0)
        for column in range(len(COLUMNS)):
            self.resizeColumnToContents(column)
        self.set_method(self._method)

    def set_method(self, method: str) -> None:
        """Grey the layers `method` cannot target, with the reason as their tooltip."""
        self._method = method
        for path, item in self._items.items():
            reason = self._nodes[path].blocked.get(method)
            brush = GREYED if reason else QBrush()
            flags = item.flags()
            if reason:
                flags &= ~Qt.ItemFlag.ItemIsSelectable
            else:
                flags |= Qt.ItemFlag.ItemIsSelectable
            item.setFlags(flags)
            for column in range(len(COLUMNS)):
                item.setForeground(column, brush)
                item.setToolTip(
                    column, f"{self._labels.get(method, method)} cannot use it: {reason}" if reason else path
                )

    def select_layer(self, path: str | None) -> None:
        """Highlight `path` (None: nothing) without emitting `layer_selected`."""
        self.blockSignals(True)
        self.clearSelection()
        item = self._items.get(path or "")
        if item is not None:
            item.setSelected(True)
            self.scrollToItem(item)
        self.blockSignals(False)

    def _add(self, parent: QTreeWidgetItem, nodes: list[LayerNode]) -> None:
        for node in nodes:
            shape = "—" if node.output_shape is None else "(" + ", ".join(
                "N" if size is None else str(size) for size in node.output_shape
            ) + ")"  # fmt: skip
            kind = node.kind + (f" ({node.activation})" if node.activation not in (None, "linear") else "")
            item = QTreeWidgetItem(parent, [node.name, kind, shape, f"{node.parameters:,}"])
            item.setData(0, PATH_ROLE, node.path)
            item.setTextAlignment(3, Qt.AlignmentFlag.AlignRight)
            self._nodes[node.path] = node
            self._items[node.path] = item
            self._add(item, node.children)

    def _selection_changed(self) -> None:
        items = self.selectedItems()
        if items:
            self.layer_selected.emit(items[0].data(0, PATH_ROLE))

    def _context_menu(self, position: QPoint) -> None:
        item = self.itemAt(position)
        if item is None:
            return
        path = item.data(0, PATH_ROLE)
        menu = QMenu(self)
        for method, label in self._labels.items():
            reason = self._nodes[path].blocked.get(method)
            action = menu.addAction(f"{label} on {path}")
            action.setEnabled(reason is None)
            action.setToolTip(reason or "")
            action.triggered.connect(self._make_run(method, path))
        menu.setToolTipsVisible(True)
        menu.exec(self.viewport().mapToGlobal(position))

    def _make_run(self, method: str, path: str):
        return lambda: self.run_requested.emit(method, path)
