"""The layer tree a user browses: nested models included, addressed "outer/inner"."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import keras

# The built-in activations the methods look for, by the name Keras resolves them from.
_ACTIVATIONS = ("relu", "softmax", "sigmoid")

# (layer, number of spatial dimensions of the model input) -> can a method target it?
LayerPredicate = Callable[[keras.layers.Layer, int], bool]


@dataclass
class LayerNode:
    """One row of the tree."""

    path: str
    name: str
    kind: str
    output_shape: tuple[int | None, ...] | None
    parameters: int
    activation: str | None
    depth: int
    # method name -> None when the method can target this layer, else why not.
    blocked: dict[str, str | None] = field(default_factory=dict)
    children: list[LayerNode] = field(default_factory=list)


def iter_layers(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """Every layer with its path, depth first (a nested model, then its own layers)."""
    for layer in model.layers:
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, path + "/")


def output_shape(layer: keras.layers.Layer) -> tuple[int | None, ...] | None:
    """The layer's (single) output shape in its model; None when unknown or several."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    return tuple(output.shape) if hasattr(output, "shape") else None


def input_spatial_rank(model: keras.Model) -> int:
    return len(model.inputs[0].shape) - 2


def has_spatial_output(layer: keras.layers.Layer, spatial_rank: int) -> bool:
    """True for layers whose output is a stack of maps (N, *spatial, C) like the input's."""
    if isinstance(layer, keras.layers.InputLayer):
        return False
    shape = output_shape(layer)
    return shape is not None and len(shape) == spatial_rank + 2


def _activation_name(layer: keras.layers.Layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", type(activation).__name__)


def layer_activation(layer: keras.layers.Layer) -> str | None:
    """Name of the built-in activation that ends this layer ("relu", "softmax"...), if any.

    Covers ReLU and Softmax layers, Activation layers and the `activation=` of Conv/Dense.
    A ReLU with a cap, a slope or a threshold is not a plain ReLU and gets no name.
    """
    if isinstance(layer, keras.layers.ReLU):
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return "relu" if plain else None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    function = getattr(layer, "activation", None)
    return next((n for n in _ACTIVATIONS if function is keras.activations.get(n)), None)


def output_activation(model: keras.Model) -> str:
    """How the model's last layer squashes its scores: "softmax", "sigmoid" or "linear"."""
    name = layer_activation(model.layers[-1])
    return name if name in ("softmax", "sigmoid") else "linear"


def layer_tree(model: keras.Model, methods: Mapping[str, LayerPredicate] | None = None) -> list[LayerNode]:
    """The model's layers as a tree, with which `methods` can target each one."""
    rank = input_spatial_rank(model)
    methods = methods or {}

    def nodes(container: keras.Model, prefix: str, depth: int) -> list[LayerNode]:
        result = []
        for layer in container.layers:
            path = prefix + layer.name
            blocked = {
                name: None if can_target(layer, rank) else _why_not(layer, rank)
                for name, can_target in methods.items()
            }
            node = LayerNode(
                path=path,
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=output_shape(layer),
                parameters=int(layer.count_params()) if layer.built else 0,
                activation=_activation_name(layer),
                depth=depth,
                blocked=blocked,
            )
            if isinstance(layer, keras.Model):
                node.children = nodes(layer, path + "/", depth + 1)
            result.append(node)
        return result

    return nodes(model, "", 0)


def _why_not(layer: keras.layers.Layer, rank: int) -> str:
    if isinstance(layer, keras.layers.InputLayer):
        return "the input itself has nothing to explain"
    shape = output_shape(layer)
    if shape is None:
        return "its output shape is unknown (several outputs, or never built)"
    return f"its output {shape} is not a stack of {rank}D feature maps"


def default_gradcam_layer(model: keras.Model) -> str | None:
    """The last layer with spatial maps larger than 1 voxel that is not the 1×1 'logits' conv.

    Grad-CAM is most class-specific at the last convolutional maps before the head; a
    pointwise convolution that produces the class scores (segmentation heads, all-conv
    classifiers) has no spatial context of its own, so the layer before it is taken.
    """
    rank = input_spatial_rank(model)
    chosen = None
    for path, layer in iter_layers(model):
        if isinstance(layer, keras.Model) or not has_spatial_output(layer, rank):
            continue
        shape = output_shape(layer)
        if all(size == 1 for size in shape[1:-1]) or _is_logits_conv(layer, model):
            continue
        chosen = path
    return chosen


def _is_logits_conv(layer: keras.layers.Layer, model: keras.Model) -> bool:
    kernel = getattr(layer, "kernel_size", None)
    if kernel is None or any(k != 1 for k in kernel):
        return False
    return getattr(layer, "filters", None) == model.outputs[0].shape[-1]
