"""Address layers by path and replay a model's layer graph on real tensors.

Keras 3 cannot build `keras.Model(model.inputs, inner.output)` for a layer inside a nested
model, and the methods must change how a few layers run (Grad-CAM drops the output softmax,
the deconvnet swaps every ReLU) without touching the user's model. So we walk the graph
ourselves: Functional models node by node in depth order (as Keras itself does), Sequential
models layer by layer, nested models recursively, and let the method decide how each layer
is called. The result is a function inputs -> (target layer's activation, model outputs).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from medvis_desktop.explain import conv_gradient, pool_gradient
from medvis_desktop.explain.base import ExplainError, model_input_shape
from medvis_desktop.models.layers import LayerPredicate, iter_layers, output_shape

# How one layer runs during a replay: (layer, args, kwargs, at_output) -> the layer's outputs.
# at_output is True when what the layer returns is (part of) the outer model's output.
LayerCall = Callable[[keras.layers.Layer, tuple, dict, bool], Any]


def plain_call(layer: keras.layers.Layer, args: tuple, kwargs: dict, at_output: bool) -> Any:
    """Run the layer as the model would (inference mode); a convolution whose input gradient
    is faster as a forward convolution runs so (conv_gradient.py), and a 3D max pooling with
    its faster gradient (pool_gradient.py)."""
    if conv_gradient.applies(layer):
        return call_with_activation(layer, layer.activation, args, kwargs)
    if pool_gradient.applies(layer):
        return pool_gradient.max_pool(layer, args[0])
    return layer(*args, **kwargs)


@dataclass(frozen=True, eq=False)
class LayerPath:
    """A layer and the nested models leading to it, addressed as "outer/inner"."""

    name: str
    chain: tuple[keras.layers.Layer, ...]  # outermost nested model first, the layer last

    @property
    def layer(self) -> keras.layers.Layer:
        return self.chain[-1]


def resolve(model: keras.Model, name: str) -> LayerPath:
    """Find "outer/inner" in the model, with an error that lists what is there instead."""
    container: keras.layers.Layer = model
    chain: list[keras.layers.Layer] = []
    for part in name.split("/"):
        if not isinstance(container, keras.Model):
            raise ExplainError(
                f"Layer '{'/'.join(c.name for c in chain)}' is not a nested model, so "
                f"'{name}' does not exist: only nested models have layers below them."
            )
        found = [layer for layer in container.layers if layer.name == part]
        if not found:
            names = ", ".join(layer.name for layer in container.layers)
            raise ExplainError(
                f"No layer '{part}' in model '{container.name}' (looking for '{name}'). "
                f"Its layers are: {names}. Address a layer inside a nested model as "
                "'outer/inner'."
            )
        container = found[0]
        chain.append(container)
    return LayerPath(name, tuple(chain))


def layers_for(model: keras.Model, can_target: LayerPredicate) -> list[str]:
    """Paths of the layers a method can target, in model order."""
    rank = len(model_input_shape(model)) - 2
    return [name for name, layer in iter_layers(model) if can_target(layer, rank)]


def resolve_target(model: keras.Model, name: str, can_target: LayerPredicate, what: str) -> LayerPath:
    """Resolve `name` and check that the method `what` can use that layer."""
    path = resolve(model, name)
    rank = len(model_input_shape(model)) - 2
    if not can_target(path.layer, rank):
        raise ExplainError(
            f"{what} cannot use layer '{name}' (output shape {output_shape(path.layer)}): "
            f"it needs a layer whose output is a stack of {rank}D maps (N, *spatial, "
            f"channels). Layers that qualify: {', '.join(layers_for(model, can_target)) or 'none'}."
        )
    return path


class _StandIn:
    """Stands in for a layer during one run of its `call`, with another activation (and the
    convolution of conv_gradient.py where it applies)."""

    def __init__(self, layer: keras.layers.Layer, activation: Callable) -> None:
        self._medvis_layer = layer
        self.activation = activation
        if conv_gradient.applies(layer):
            self.convolution_op = functools.partial(conv_gradient.convolution, layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._medvis_layer, name)


def call_with_activation(layer: keras.layers.Layer, activation: Callable, args: tuple, kwargs: dict) -> Any:
    """Run `layer` as if it had been built with `activation` instead of its own one.

    The layer is not modified (other threads may be using the model): its class's `call`
    runs on a stand-in that answers every attribute from the layer except `activation`.
    """
    if isinstance(layer, keras.layers.ReLU | keras.layers.Softmax):
        return activation(args[0])
    return type(layer).call(_StandIn(layer, activation), *args, **kwargs)


class _Replay:
    """One walk through a model; remembers the target activation when it goes past it."""

    def __init__(self, target: LayerPath | None, call: LayerCall, stop_at_target: bool) -> None:
        self.target = target
        self.call = call
        self.stop_at_target = stop_at_target
        self.activation: tf.Tensor | None = None
        self.done = False

    def model(self, model: keras.Model, inputs: list, index: int | None, at_output: bool):
        """Outputs of `model` (a list) on `inputs`; `index` is where we are in the target chain,
        None when the target is not inside this model. None once stopped at the target."""
        if not _replayable(model):
            raise ExplainError(
                f"Model '{model.name}' is a subclassed keras.Model: it has no layer graph to "
                "follow. Rebuild it as a functional or Sequential model to explain it."
            )
        if isinstance(model, keras.Sequential):
            return self._sequential(model, inputs, index, at_output)
        return self._functional(model, inputs, index, at_output)

    def _sequential(self, model: keras.Sequential, inputs: list, index: int | None, at_output: bool):
        (x,) = inputs
        last = len(model.layers) - 1
        for i, layer in enumerate(model.layers):
            x = self._layer(layer, (x,), {}, index, at_output and i == last)
            if self.done:
                return None
        return [x]

    def _functional(self, model: keras.Model, inputs: list, index: int | None, at_output: bool):
        tensors = {id(k): v for k, v in zip(model.inputs, inputs, strict=True)}
        output_ids = {id(t) for t in model.outputs}
        nodes_by_depth = model._nodes_by_depth
        for depth in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[depth]:
                if node.is_input or node.operation is None:
                    continue
                if any(id(t) not in tensors for t in node.input_tensors):
                    continue  # a branch that does not start from these inputs
                args, kwargs = node.arguments.fill_in(tensors)
                is_output = at_output and any(id(t) in output_ids for t in node.outputs)
                outputs = self._layer(node.operation, args, kwargs, index, is_output)
                if self.done:
                    return None
                flat = keras.tree.flatten(outputs)
                for symbolic, real in zip(node.outputs, flat, strict=True):
                    tensors[id(symbolic)] = real
        return [tensors[id(t)] for t in model.outputs]

    def _layer(self, layer, args: tuple, kwargs: dict, index: int | None, at_output: bool):
        chain = self.target.chain if self.target is not None else ()
        on_chain = index is not None and layer is chain[index]
        is_target = on_chain and index == len(chain) - 1
        if isinstance(layer, keras.Model) and (on_chain or _replayable(layer)):
            inner = index + 1 if on_chain and not is_target else None
            outputs = self.model(layer, keras.tree.flatten(args), inner, at_output)
            if self.done:
                return None
            outputs = outputs[0] if len(outputs) == 1 else outputs
        else:
            outputs = self.call(layer, args, kwargs, at_output)
        if is_target and self.activation is None:  # a shared layer: its first use counts
            self.activation = outputs
            self.done = self.stop_at_target
        return outputs


def _replayable(model: keras.Model) -> bool:
    """Sequential, or functional (a graph of nodes); not a subclassed model."""
    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def replay(
    model: keras.Model,
    inputs: tf.Tensor,
    target: LayerPath | None,
    *,
    call: LayerCall = plain_call,
    stop_at_target: bool = False,
) -> tuple[tf.Tensor, list[tf.Tensor] | None]:
    """Run `model` on `inputs` layer by layer: (target layer's activation, model outputs).

    With stop_at_target the walk ends at the target layer and the outputs are None. Without
    a target (None) the activation returned is the inputs. Nested models are walked too, so
    `call` sees every leaf layer of the whole model.
    """
    walk = _Replay(target, call, stop_at_target)
    outputs = walk.model(model, [inputs], None if target is None else 0, at_output=True)
    if target is None:
        return inputs, outputs
    if walk.activation is None:
        raise ExplainError(
            f"Layer '{target.name}' is not on the path from the input of model '{model.name}' to its outputs."
        )
    return walk.activation, outputs


_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_compiled_lock = threading.Lock()


def compiled(
    model: keras.Model,
    key: tuple,
    make: Callable[[Callable[[], keras.Model]], Callable],
) -> Callable:
    """The tf.function for (model, key), made once, so slice after slice reuses one trace.

    `make` gets a weak reference to the model: the cache must not keep models alive.
    """
    with _compiled_lock:
        functions = _compiled.setdefault(model, {})
        if key not in functions:
            functions[key] = tf.function(make(weakref.ref(model)), reduce_retracing=True)
        return functions[key]
