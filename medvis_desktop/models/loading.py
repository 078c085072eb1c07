"""Open a Keras model from disk, refusing by default any model that carries Python code.

Formats: `.keras` (Keras 3), `.h5` (Keras 2 era, nested sub-models included, see
legacy_h5.py) and TensorFlow SavedModel folders (refused with the way to convert them: Keras 3
can only wrap one as an opaque layer, with nothing inside to explain). The format is told by
the file's first bytes, not its name. The model's config is read and checked before Keras
deserializes anything, because deserializing a Lambda layer from an .h5 file may already run
its marshalled bytecode.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras

from medvis_desktop.errors import LoadError
from medvis_desktop.models import legacy_h5

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
UNSAFE_HINT = "load it only if you trust its source: unsafe=True / --unsafe"
CUSTOM_HINT = (
    "supply the Python file that defines it (from the group that trained the model): "
    "custom_objects_file=... / --custom-objects FILE"
)
# Keras 2 recorded TensorFlow functions called on Keras tensors as these layers; Keras 3 has none.
KERAS2_TF_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda"}
# How Keras names an object it cannot find, in its .keras and legacy .h5 loaders.
_MISSING_OBJECT = re.compile(r"(?:Could not locate (?:class|function)|Unknown [a-z ]+?:) '([^']+)'")


class UnsafeModelError(LoadError):
    """The model carries Python code and the user did not say they trust it."""


class MissingCustomObjectError(LoadError):
    """The model uses a class or function that is not part of Keras and was not supplied."""


@dataclass(frozen=True)
class ModelFile:
    """A model on disk, its format and the model config stored in it."""

    path: Path
    format: str  # "keras" or "h5"
    config: dict


def load_model(
    path: str | Path, *, unsafe: bool = False, custom_objects_file: str | Path | None = None
) -> keras.Model:
    """Load a .keras or a (Keras 2 era) .h5 model; refuse Python code in it unless `unsafe`.

    `custom_objects_file` is a Python file the user chose that defines the model's custom
    layers (and registered functions); it is imported and everything it defines is offered
    to Keras.
    """
    custom_objects = load_custom_objects(custom_objects_file) if custom_objects_file else {}
    model_file = read_model_file(Path(path))
    check_config(model_file, unsafe=unsafe, custom_objects=custom_objects)
    if model_file.format == "keras":
        return _load_keras(model_file, unsafe, custom_objects)
    return _load_h5(model_file, unsafe, custom_objects)


def read_model_file(path: Path) -> ModelFile:
    """Tell the format from the file's content and read the model config (nothing executed)."""
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise LoadError(_saved_model_message(path))
        raise LoadError(f"{path}: a folder that is not a model (expected a .keras or .h5 file)")
    with path.open("rb") as file:
        magic = file.read(8)
    if magic.startswith(ZIP_MAGIC):
        return ModelFile(path, "keras", _read_keras_config(path))
    if magic == HDF5_MAGIC:
        return ModelFile(path, "h5", _read_h5_config(path))
    if path.name == "saved_model.pb":
        raise LoadError(_saved_model_message(path.parent))
    what = "an empty file" if not magic else "neither a .keras archive nor an HDF5 (.h5) file"
    raise LoadError(f"{path.name}: not a Keras model: {what}")


def check_config(model_file: ModelFile, *, unsafe: bool, custom_objects: dict[str, Any]) -> None:
    """Refuse Python code (unless `unsafe`) and name every layer class nobody supplied."""
    name = model_file.path.name
    code = find_python_code(model_file.config)
    if code and not unsafe:
        raise UnsafeModelError(
            f"{name}: this model contains Python code ({', '.join(code)}) that would run on this "
            f"workstation; {UNSAFE_HINT}"
        )
    for entry in iter_layer_entries(model_file.config):
        class_name = entry["class_name"]
        if _is_known_layer(entry, custom_objects):
            continue
        layer_name = _layer_name(entry)
        if class_name in KERAS2_TF_OP_LAYERS:
            raise LoadError(
                f"{name}: layer '{layer_name}' is a TensorFlow operation recorded by Keras 2 "
                f"({class_name}), which Keras 3 cannot rebuild; in the program that made the model, "
                "wrap the operation in a Keras layer and save the model again"
            )
        raise MissingCustomObjectError(
            f"{name}: layer '{layer_name}' is of class '{class_name}', a custom layer that is not "
            f"part of Keras; {CUSTOM_HINT}"
        )


def find_python_code(config: dict) -> list[str]:
    """What in a model config is Python code: Lambda layers and serialized lambdas."""
    found = []
    for entry in iter_layer_entries(config):
        if entry["class_name"] == "Lambda":
            found.append(f"Lambda layer '{_layer_name(entry)}'")
        elif entry["class_name"] not in legacy_h5.NESTED_MODELS and _has_python_code(entry["config"]):
            found.append(f"a lambda function in layer '{_layer_name(entry)}'")
    return found


def iter_layer_entries(config: dict) -> Iterator[dict]:
    """Every layer entry of a model config, inside nested models and layer wrappers too."""
    inner = config.get("config")
    if isinstance(inner, list):  # an early Keras 2 Sequential: the layer list alone
        children = inner
    elif isinstance(inner, dict):
        wrapped = [inner.get(key) for key in ("layer", "forward_layer", "backward_layer")]  # wrappers
        children = inner.get("layers", []) + [entry for entry in wrapped if isinstance(entry, dict)]
    else:
        children = []
    for entry in children:
        yield entry
        yield from iter_layer_entries(entry)


def load_custom_objects(path: str | Path) -> dict[str, Any]:
    """Import the user's Python file; return its Keras layer classes and registered objects.

    The user named this file, which is their decision to run it. Objects are keyed by class
    name and by registered name ("package>Name"), which is how Keras looks them up.
    """
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"custom objects file {path}: no such file")
    module_name = "medvis_custom_objects_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"custom objects file {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    registered_before = dict(keras.saving.get_custom_objects())
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        message = f"custom objects file {path.name} failed to import: {type(exc).__name__}: {exc}"
        raise LoadError(message) from exc
    registered = {
        key: obj
        for key, obj in keras.saving.get_custom_objects().items()
        if registered_before.get(key) is not obj
    }
    objects: dict[str, Any] = {
        obj.__name__: obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer) and obj.__module__ == module_name
    }
    for key, obj in registered.items():
        objects[key] = obj
        objects[key.split(">")[-1]] = obj
    return objects


def _read_keras_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise LoadError(f"{path.name}: a zip archive without config.json, not a .keras model")
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path.name}: the .keras archive is corrupt or truncated ({exc})") from exc


def _read_h5_config(path: Path) -> dict:
    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
            if raw is None:
                if "layer_names" in h5.attrs or "model_weights" in h5:
                    raise LoadError(
                        f"{path.name}: this .h5 file holds weights only, no model architecture; "
                        "load the full model saved with model.save(...) instead"
                    )
                raise LoadError(f"{path.name}: an HDF5 file without a Keras model in it")
            return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path.name}: the HDF5 file is corrupt or truncated ({exc})") from exc


def _load_keras(model_file: ModelFile, unsafe: bool, custom_objects: dict[str, Any]) -> keras.Model:
    try:
        model = keras.saving.load_model(
            model_file.path, custom_objects=custom_objects, compile=False, safe_mode=not unsafe
        )
    except Exception as exc:
        raise _keras_error(model_file.path, exc) from exc
    return _require_model(model, model_file.path)


def _load_h5(model_file: ModelFile, unsafe: bool, custom_objects: dict[str, Any]) -> keras.Model:
    """Keras 3's own legacy loader first; when it fails (nested models), our conversion."""
    try:
        model = keras.saving.load_model(
            model_file.path, custom_objects=custom_objects, compile=False, safe_mode=not unsafe
        )
    except Exception as keras_exc:
        try:
            model = legacy_h5.load_legacy_h5(model_file.path, model_file.config, custom_objects)
        except LoadError as exc:
            raise LoadError(f"{model_file.path.name}: {exc}") from exc
        except Exception as exc:
            raise _keras_error(model_file.path, exc, first=keras_exc) from exc
    return _require_model(model, model_file.path)


def _keras_error(path: Path, exc: Exception, first: Exception | None = None) -> LoadError:
    """A LoadError naming the missing custom object when Keras says one is missing."""
    for error in (first, exc):
        match = _MISSING_OBJECT.search(str(error)) if error is not None else None
        if match:
            missing = match.group(1)
            return MissingCustomObjectError(f"{path.name}: '{missing}' is not part of Keras; {CUSTOM_HINT}")
    if isinstance(exc, OSError):
        return LoadError(f"{path.name}: the file is corrupt or truncated ({exc})")
    return LoadError(f"{path.name}: Keras could not build the model: {type(exc).__name__}: {exc}")


def _require_model(model: Any, path: Path) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise LoadError(f"{path.name}: holds a {type(model).__name__}, not a Keras model")
    return model


def _is_known_layer(entry: dict, custom_objects: dict[str, Any]) -> bool:
    """Keras can build this layer entry: a built-in class, a supplied or registered one."""
    class_name = entry["class_name"]
    registered = entry.get("registered_name")
    custom_registered = registered is not None and registered != class_name
    module = entry.get("module")
    if not custom_registered and (module is None or module.startswith("keras")) and _is_builtin(class_name):
        return True
    keys = [key for key in (registered, class_name) if key]
    return any(key in custom_objects or keras.saving.get_registered_object(key) is not None for key in keys)


def _is_builtin(class_name: str) -> bool:
    cls = getattr(keras.layers, class_name, None)
    builtin_layer = isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    return class_name in legacy_h5.NESTED_MODELS or builtin_layer


def _layer_name(entry: dict) -> str:
    config = entry["config"]
    return entry.get("name") or (config.get("name") if isinstance(config, dict) else None) or "?"


def _has_python_code(node: Any) -> bool:
    """A serialized function anywhere below this node: Keras 3 marks a lambda as "__lambda__"
    (Lambda layers), but writes a lambda activation as bare marshalled bytecode, as Keras 2 did."""
    if isinstance(node, dict):
        return node.get("class_name") == "__lambda__" or any(_has_python_code(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_python_code(value) for value in node)
    return isinstance(node, str) and _is_marshalled_code(node)


def _is_marshalled_code(text: str) -> bool:
    """Base64 of marshal.dumps(code): its first byte is TYPE_CODE with FLAG_REF (0xe3)."""
    if len(text) < 40 or not text.startswith("4"):
        return False
    try:
        return base64.b64decode(text[:8])[:1] == b"\xe3"
    except binascii.Error:
        return False


def _saved_model_message(folder: Path) -> str:
    return (
        f"{folder.name}: a TensorFlow SavedModel folder. Keras 3 can only wrap a SavedModel as one "
        "opaque inference layer, with no layers inside to explain. Convert it: open it in the "
        "program that made it (the same TensorFlow/Keras version) and save the model again as "
        ".keras (model.save('model.keras'), Keras 3 or Keras >= 2.13) or as .h5 "
        "(model.save('model.h5'), any Keras 2)"
    )
