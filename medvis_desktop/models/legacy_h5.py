"""Keras 2 era .h5 models that Keras 3 will not build as they are: convert, build, load weights.

Keras 3 reads flat Keras 2 models, but not those with nested sub-models: Keras 2 counts a
sub-model's own creation (its Input → output graph) as node 0, so the outer model refers to
its first call as node 1, while a Keras 3 sub-model built from a config has no such node.
Here the config is rewritten for Keras 3 (node indices, InputLayer shapes, dtype policies,
keyword arguments Keras 3 dropped), the model is built from it, and the weights are read
from the file's `model_weights` group with h5py, layer by layer, the way Keras 2 wrote them.
"""

from __future__ import annotations

import copy
import inspect
import logging
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from medvis_desktop.errors import LoadError

log = logging.getLogger(__name__)

FUNCTIONAL = {"Functional", "Model"}  # "Model" is what Keras 2.2 wrote
NESTED_MODELS = FUNCTIONAL | {"Sequential"}
# Handled by keras.layers.Layer.__init__ through **kwargs, so absent from every signature.
_LAYER_KWARGS = {"input_shape", "input_dim"}


def convert_model_config(model_config: dict) -> dict:
    """A Keras 2 `model_config` rewritten so that Keras 3 builds the same graph."""
    model_config = copy.deepcopy(model_config)
    class_name = model_config["class_name"]
    if class_name in FUNCTIONAL:
        return {"class_name": "Functional", "config": _convert_functional(model_config["config"])}
    if class_name == "Sequential":
        config = _convert_sequential(model_config["config"], "sequential")
        return {"class_name": "Sequential", "config": config}
    raise LoadError(f"the file holds a '{class_name}', not a Functional or Sequential Keras model")


def build_model(model_config: dict, custom_objects: dict[str, Any]) -> keras.Model:
    """Build the model described by a converted config (`convert_model_config`)."""
    cls = keras.Sequential if model_config["class_name"] == "Sequential" else keras.Model
    with keras.saving.custom_object_scope(custom_objects):
        return cls.from_config(copy.deepcopy(model_config["config"]), custom_objects=custom_objects)


def load_h5_weights(model: keras.Model, weights: h5py.Group) -> None:
    """Set every layer's weights from a Keras 2 `model_weights` group, matched by layer name."""
    for layer_name in _strings(weights.attrs["layer_names"]):
        group = weights[layer_name]
        names = _strings(group.attrs["weight_names"])
        if not names:
            continue
        try:
            layer = model.get_layer(layer_name)
        except ValueError as exc:
            raise LoadError(f"the file has weights for a layer '{layer_name}' the model lacks") from exc
        values = [np.asarray(group[name]) for name in names]
        for variable, value in zip(_match_variables(layer, names), values, strict=True):
            if tuple(variable.shape) != value.shape:
                raise LoadError(
                    f"layer '{layer_name}': weight '{variable.path}' has shape {tuple(variable.shape)}"
                    f" in the model but {value.shape} in the file"
                )
            variable.assign(value)
    loaded = set(_strings(weights.attrs["layer_names"]))
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in loaded]
    if missing:
        raise LoadError(f"the file has no weights for layer(s) {', '.join(missing)}")


def load_legacy_h5(path: Path, model_config: dict, custom_objects: dict[str, Any]) -> keras.Model:
    """Convert, build and load a Keras 2 .h5 model without Keras 3's own legacy loader."""
    model = build_model(convert_model_config(model_config), custom_objects)
    with h5py.File(path, "r") as h5:
        if "model_weights" not in h5:
            raise LoadError("the file has a model config but no 'model_weights' group")
        load_h5_weights(model, h5["model_weights"])
    return model


def _convert_functional(config: dict) -> dict:
    layers = [_convert_layer(entry) for entry in config["layers"]]
    nested = {entry["name"]: entry for entry in layers if entry["class_name"] in NESTED_MODELS}
    for entry in layers:
        entry["inbound_nodes"] = [
            [_reindex(ref, nested, keras3_own_node=False) for ref in node] for node in entry["inbound_nodes"]
        ]
    config["layers"] = layers
    for key in ("input_layers", "output_layers"):
        config[key] = _map_refs(config[key], nested)
    return config


def _convert_sequential(config: dict | list, name: str) -> dict:
    if isinstance(config, list):  # early Keras 2: the layer list alone, the name only outside
        config = {"name": name, "layers": config}
    layers = [_convert_layer(entry) for entry in config["layers"]]
    first = config["layers"][0]["config"] if config["layers"] else {}
    if layers and layers[0]["class_name"] != "InputLayer" and "batch_input_shape" in first:
        # Older Keras 2 kept the input shape on the first layer; Keras 3 wants an InputLayer.
        shape = first["batch_input_shape"]
        dtype = _dtype_name(first.get("dtype", "float32"))
        input_config = {"batch_shape": shape, "dtype": dtype, "name": f"{first['name']}_input"}
        layers.insert(0, {"class_name": "InputLayer", "config": input_config})
    config["layers"] = layers
    return config


def _convert_layer(entry: dict) -> dict:
    """One layer entry: nested models recursively, plain layers cleaned of Keras 2 arguments."""
    class_name = entry["class_name"]
    if class_name in FUNCTIONAL:
        return entry | {"class_name": "Functional", "config": _convert_functional(entry["config"])}
    if class_name == "Sequential":
        config = _convert_sequential(entry["config"], entry.get("name", "sequential"))
        return entry | {"class_name": "Sequential", "config": config}
    return entry | {"config": _convert_layer_config(class_name, entry["config"])}


def _convert_layer_config(class_name: str, config: dict) -> dict:
    config = dict(config)
    batch_input_shape = config.pop("batch_input_shape", None)
    if class_name == "InputLayer" and batch_input_shape is not None:
        config["batch_shape"] = batch_input_shape
    if "dtype" in config:
        config["dtype"] = _dtype_name(config["dtype"])
    axis = config.get("axis")
    if isinstance(axis, list) and len(axis) == 1:
        config["axis"] = int(axis[0])
    accepted = _accepted_arguments(class_name)
    if accepted is not None:
        dropped = sorted(set(config) - accepted)
        if dropped:
            log.warning("%s '%s': Keras 2 argument(s) %s dropped", class_name, config.get("name"), dropped)
        config = {key: value for key, value in config.items() if key in accepted}
    return config


@cache
def _accepted_arguments(class_name: str) -> frozenset[str] | None:
    """What a built-in Keras 3 layer's constructors accept (None: not a built-in layer)."""
    cls = getattr(keras.layers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        return None
    accepted = set(_LAYER_KWARGS)
    for base in cls.__mro__:
        if isinstance(base, type) and issubclass(base, keras.layers.Layer) and "__init__" in vars(base):
            for parameter in inspect.signature(base.__init__).parameters.values():
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    accepted.add(parameter.name)
    accepted.discard("self")
    return frozenset(accepted)


def _dtype_name(dtype: Any) -> Any:
    """Keras 2 wrote mixed-precision policies as {"class_name": "Policy", "config": {"name": ...}}."""
    if isinstance(dtype, dict) and "Policy" in dtype.get("class_name", ""):
        return dtype["config"]["name"]
    return dtype


def _keras2_own_nodes(entry: dict) -> int:
    """How many nodes a Keras 2 sub-model had before the outer model called it.

    Keras 2 gave a sub-model built on an Input (every Functional one, a Sequential one whose
    first layer is an InputLayer) its own creation node 0, and skipped it in the outer config.
    """
    if entry["class_name"] in FUNCTIONAL:
        return 1
    layers = entry["config"]["layers"]
    return int(bool(layers) and layers[0]["class_name"] == "InputLayer")


def _reindex(ref: list, nested: dict[str, dict], *, keras3_own_node: bool) -> list:
    """Rewrite [layer_name, node_index, tensor_index, ...] for Keras 3.

    Keras 3 builds sub-models without a creation node; but when it resolves the model's own
    inputs and outputs it still subtracts one for a Functional sub-model (keras3_own_node).
    """
    entry = nested.get(ref[0])
    if entry is None:
        return ref
    index = ref[1] - _keras2_own_nodes(entry)
    if keras3_own_node and entry["class_name"] == "Functional":
        index += 1
    return [ref[0], index, *ref[2:]]


def _map_refs(refs: Any, nested: dict[str, dict]) -> Any:
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return _reindex(refs, nested, keras3_own_node=True)
    if isinstance(refs, dict):
        return {key: _map_refs(value, nested) for key, value in refs.items()}
    return [_map_refs(value, nested) for value in refs]


def _match_variables(layer: keras.layers.Layer, names: list[str]) -> list:
    """The layer's variables in the order of the file's `weight_names`.

    By name ("inner_layer/variable") when every name matches; otherwise by position in
    Keras 2's order, trainable then non-trainable, as Keras 2 itself loaded them (a layer
    renamed after it was built keeps its variables' old names).
    """
    variables = layer.trainable_weights + layer.non_trainable_weights
    by_key = {_weight_key(variable.path): variable for variable in variables}
    keys = [_weight_key(name) for name in names]
    if len(by_key) == len(variables) and sorted(keys) == sorted(by_key):
        return [by_key[key] for key in keys]
    if len(names) != len(variables):
        raise LoadError(
            f"layer '{layer.name}' has {len(variables)} weights in the model but {len(names)} in the file"
        )
    return variables


def _weight_key(name: str) -> str:
    """'res_block/res_block_a_bn/gamma:0' → 'res_block_a_bn/gamma'."""
    return "/".join(name.removesuffix(":0").split("/")[-2:])


def _strings(values: Any) -> list[str]:
    """h5py gives attributes as str or bytes depending on who wrote the file."""
    return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]
