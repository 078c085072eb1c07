"""The layer tree: nested models expand, untargetable layers are greyed with the reason."""

from __future__ import annotations

import keras
import pytest
from keras import layers
from PySide6.QtCore import Qt

from medvis_desktop import explain
from medvis_desktop.gui.model_tree import PATH_ROLE, ModelTree
from medvis_desktop.models.layers import layer_tree


@pytest.fixture(scope="module")
def nested_model() -> keras.Model:
    inner_in = keras.Input((32, 32, 4))
    inner = keras.Model(
        inner_in, layers.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in), name="block"
    )
    inputs = keras.Input((32, 32, 1), name="image")
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    h = inner(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inputs, layers.Dense(3, name="logits")(h), name="outer")


@pytest.fixture
def tree(qtbot, nested_model) -> ModelTree:
    tree = ModelTree()
    qtbot.addWidget(tree)
    predicates = {name: method.can_target for name, method in explain.METHODS.items()}
    labels = {name: method.label for name, method in explain.METHODS.items()}
    tree.set_layers(layer_tree(nested_model, predicates), labels)
    tree.set_method("grad_cam")
    return tree


def items_by_path(tree: ModelTree) -> dict:
    found = {}

    def walk(item) -> None:
        for k in range(item.childCount()):
            child = item.child(k)
            found[child.data(0, PATH_ROLE)] = child
            walk(child)

    walk(tree.invisibleRootItem())
    return found


def test_nested_models_expand_and_show_type_shape_parameters(tree):
    items = items_by_path(tree)
    assert "block/inner_conv" in items
    assert items["block/inner_conv"].parent() is items["block"]
    assert items["stem"].text(1) == "Conv2D (relu)"
    assert items["stem"].text(2) == "(N, 32, 32, 4)"
    assert items["stem"].text(3) == f"{3 * 3 * 1 * 4 + 4:,}"


def test_untargetable_layers_are_greyed_with_the_reason(tree):
    items = items_by_path(tree)
    for path in ("image", "gap", "logits"):
        assert not items[path].flags() & Qt.ItemFlag.ItemIsSelectable
        assert "Grad-CAM cannot use it" in items[path].toolTip(0)
    assert "nothing to explain" in items["image"].toolTip(0)
    assert "not a stack of 2D feature maps" in items["logits"].toolTip(2)
    for path in ("stem", "block/inner_conv"):
        assert items[path].flags() & Qt.ItemFlag.ItemIsSelectable
        assert items[path].toolTip(0) == path


def test_selecting_a_layer_makes_it_the_target(qtbot, tree):
    items = items_by_path(tree)
    with qtbot.waitSignal(tree.layer_selected) as signal:
        items["block/inner_conv"].setSelected(True)
    assert signal.args == ["block/inner_conv"]
