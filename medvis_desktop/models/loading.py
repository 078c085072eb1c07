"""Open a Keras model from disk, refusing by default any model that carries Python code.

Formats: `.keras` (Keras 3), `.h5` (Keras 2 era, nested sub-models included, see
legacy_h5.py) and TensorFlow SavedModel folders (refused with the way to convert them: Keras 3
can only wrap one as an opaque layer, with nothing inside to explain). The format is told by
the file's first bytes, not its name. The model's config is read and checked before Keras
deserializes anything, because deserializing a Lambda layer from an .h5 file may already run
its marshalled bytecode. The check is medvis's own, so it holds whatever Keras version is
installed: older ones had published ways around their `safe_mode` (DESIGN.md, known traps).
A `.keras` archive is checked on its zip directory before any member is inflated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
import lzma
import re
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import h5py
import keras

from medvis_desktop.errors import LoadError
from medvis_desktop.hdf5_check import check_in_child
from medvis_desktop.models import legacy_h5
from medvis_desktop.models.messages import printable

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

# Limits on a model file, checked before anything is inflated or parsed. Keras stores the members
# of a .keras archive uncompressed (1:1) and float weights deflate about 1.1:1, so a member that
# inflates to far more than it stores is a decompression bomb, not a model.
MAX_CONFIG_BYTES = 16 * 2**20  # config.json, metadata.json, an .h5 model_config: NASNetLarge's
#                                1041 layers take 1 MB, so 16 MB leaves room and parses in < 1 s
MAX_ARCHIVE_BYTES = 4 * 2**30  # all members inflated: VGG19's weights take 0.55 GB
MAX_ARCHIVE_MEMBERS = 10_000  # Keras writes three, plus one per asset (a lookup vocabulary)
MAX_COMPRESSION_RATIO = 100  # inflated / stored, as Keras's own check
BOMB_FLOOR_BYTES = 16 * 2**20  # a member, or the archive, may inflate this much whatever its ratio
JSON_MEMBERS = ("config.json", "metadata.json")
# What zipfile and its decompressors raise on a damaged archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error, zlib.error,
    lzma.LZMAError,
)  # fmt: skip

# Keras functions that are no part of a model but read, write or fetch files, or switch Keras's
# own safe mode off (CVE-2025-9906). Recent Keras refuses them itself (its NON_MODELING_APIS).
KERAS_NON_MODELING = frozenset(
    {
        "audio_dataset_from_directory", "clear_session", "deserialize_keras_object",
        "enable_unsafe_deserialization", "get_file", "image_dataset_from_directory", "load_img",
        "load_model", "load_weights", "model_from_json", "register_keras_serializable", "save_img",
        "save_model", "save_weights", "serialize_keras_object", "text_dataset_from_directory",
    }
)  # fmt: skip
# Where Keras resolves a function saved by name alone ({"module": "builtins", "class_name":
# "function", "config": name}), after the supplied and registered objects.
KERAS_FUNCTION_MODULES = (
    "activations", "constraints", "initializers", "losses", "metrics", "optimizers", "regularizers",
)  # fmt: skip
MAX_LISTED = 5  # findings named in one message
PATH_LIMIT = 240  # characters of an outside path shown in a message


class UnsafeModelError(LoadError):
    """The model would run code or read outside files, and the user did not say they trust it."""


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
    try:
        with path.open("rb") as file:
            magic = file.read(8)
    except OSError as exc:
        raise LoadError(f"{path.name}: cannot be read ({_one_line(exc)})") from exc
    if magic.startswith(ZIP_MAGIC):
        return ModelFile(path, "keras", _read_keras_config(path))
    if magic == HDF5_MAGIC:
        check_in_child(path)  # the HDF5 library can hang or crash on a damaged file
        return ModelFile(path, "h5", _read_h5_config(path))
    if path.name == "saved_model.pb":
        raise LoadError(_saved_model_message(path.parent))
    what = "an empty file" if not magic else "neither a .keras archive nor an HDF5 (.h5) file"
    raise LoadError(f"{path.name}: not a Keras model: {what}")


def check_config(model_file: ModelFile, *, unsafe: bool, custom_objects: Mapping[str, Any]) -> None:
    """Refuse code and outside files (unless `unsafe`) and name every layer class nobody supplied.

    A layer of a class nobody supplied is refused even when `unsafe`: Keras could not build it
    without its code, and a Keras that imports the `module` the file names would run that.
    """
    name = model_file.path.name
    found = find_unsafe_constructs(model_file.config, custom_objects)
    if found and not unsafe:
        raise UnsafeModelError(
            f"{name}: loading this model would run code or read files on this workstation: "
            f"{_listed(found)}; {UNSAFE_HINT}"
        )
    for entry in iter_layer_entries(model_file.config):
        if _is_known_layer(entry, custom_objects):
            continue
        layer_name, class_name = _layer_name(entry), printable(entry["class_name"])
        if class_name in KERAS2_TF_OP_LAYERS:
            raise LoadError(
                f"{name}: layer '{layer_name}' is a TensorFlow operation recorded by Keras 2 "
                f"({class_name}), which Keras 3 cannot rebuild; in the program that made the model, "
                "wrap the operation in a Keras layer and save the model again"
            )
        module = entry.get("module")
        origin = f" from module '{printable(str(module))}'" if module and not _is_keras_module(module) else ""
        raise MissingCustomObjectError(
            f"{name}: layer '{layer_name}' is of class '{class_name}'{origin}, a custom layer that is "
            f"not part of Keras; {CUSTOM_HINT}"
        )


def find_unsafe_constructs(config: dict, custom_objects: Mapping[str, Any] | None = None) -> list[str]:
    """What in a model config would run code or read outside files as Keras builds the model.

    Python code (Lambda layers, serialized lambdas, marshalled bytecode), a TFSMLayer (an
    outside SavedModel), a vocabulary read from a file path (StringLookup, IntegerLookup,
    TextVectorization), Keras functions that are no part of a model, and any object from a
    module that is not Keras and was not supplied. The whole config is walked: nested models,
    wrappers, initializers, activations... but not its compile_config, which is never
    deserialized (models load with compile=False). Layer entries of a foreign module are left
    to `check_config`, which refuses them even when unsafe. Each finding names its layer.
    """
    custom_objects = custom_objects or {}
    layer_entries = {id(entry) for entry in iter_layer_entries(config)}
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(config, _layer_name(config))]  # iterative: configs nest deep
    while stack:
        node, layer = stack.pop()
        if isinstance(node, str):
            if _is_marshalled_code(node):
                found.append(f"a lambda function in layer '{layer}' (Python code)")
            continue
        if isinstance(node, list):
            stack.extend((value, layer) for value in reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("class_name"), str):
            is_layer = id(node) in layer_entries
            layer = _layer_name(node) if is_layer else layer
            hazard = _hazard(node, layer, is_layer, custom_objects)
            if hazard:
                found.append(hazard)
                continue  # one reason per object is enough
        stack.extend((value, layer) for key, value in reversed(node.items()) if key != "compile_config")
    return list(dict.fromkeys(found))


def iter_layer_entries(config: dict) -> Iterator[dict]:
    """Every layer entry of a model config, inside nested models and layer wrappers too.

    Only dicts with a class name count; anything else is left for Keras to reject.
    """
    inner = config.get("config")
    if isinstance(inner, list):  # an early Keras 2 Sequential: the layer list alone
        children = inner
    elif isinstance(inner, dict):
        layers = inner.get("layers")
        wrapped = [inner.get(key) for key in ("layer", "forward_layer", "backward_layer")]  # wrappers
        children = (layers if isinstance(layers, list) else []) + wrapped
    else:
        children = []
    for entry in children:
        if isinstance(entry, dict) and isinstance(entry.get("class_name"), str):
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
        message = f"custom objects file {path.name} failed to import: {type(exc).__name__}: {_one_line(exc)}"
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
    """config.json, once the archive's directory passed `_archive_problem`; read with a cap."""
    try:
        with zipfile.ZipFile(path) as archive:
            problem = _archive_problem(archive)
            if problem:
                raise LoadError(f"{path.name}: {problem}")
            if "config.json" not in archive.namelist():
                raise LoadError(f"{path.name}: a zip archive without config.json, not a .keras model")
            with archive.open("config.json") as member:
                raw = member.read(MAX_CONFIG_BYTES + 1)
    except _ZIP_ERRORS as exc:
        message = f"{path.name}: the .keras archive is corrupt or truncated ({_one_line(exc)})"
        raise LoadError(message) from exc
    return _parse_config(raw, path.name, "config.json")


def _archive_problem(archive: zipfile.ZipFile) -> str | None:
    """Why Keras must not open this archive, from its zip directory alone (nothing inflated).

    ZipInfo.file_size is the most zipfile will ever inflate a member to, whatever its data says.
    """
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        return f"the archive has {len(members):,} members, more than the {MAX_ARCHIVE_MEMBERS:,} allowed"
    seen: set[str] = set()
    for info in members:
        name = printable(info.filename)
        if _leaves_archive(info.filename):
            return f"archive member '{name}' has a path leading out of the archive (absolute or with '..')"
        if stat.S_ISLNK(info.external_attr >> 16):
            return f"archive member '{name}' is a symbolic link"
        if info.filename in seen:
            return f"archive member '{name}' appears twice"
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            return f"archive member '{name}' is encrypted"
        if info.filename in JSON_MEMBERS and info.file_size > MAX_CONFIG_BYTES:
            limit = _size(MAX_CONFIG_BYTES)
            return f"{name} would inflate to {_size(info.file_size)}, more than the {limit} allowed"
        if _inflates_too_far(info.file_size, info.compress_size):
            return (
                f"archive member '{name}' would inflate from {_size(info.compress_size)} to "
                f"{_size(info.file_size)}, a decompression bomb"
            )
    inflated, stored = sum(info.file_size for info in members), sum(info.compress_size for info in members)
    if inflated > MAX_ARCHIVE_BYTES:
        limit = _size(MAX_ARCHIVE_BYTES)
        return f"the archive would inflate to {_size(inflated)}, more than the {limit} allowed"
    if _inflates_too_far(inflated, stored):
        return f"the archive would inflate from {_size(stored)} to {_size(inflated)}, a decompression bomb"
    return None


def _leaves_archive(name: str) -> bool:
    """An absolute path (/x, C:x, \\\\server\\x) or one with a '..' part, in either separator."""
    path = PureWindowsPath(name)
    return bool(path.anchor) or ".." in path.parts


def _inflates_too_far(inflated: int, stored: int) -> bool:
    return inflated > BOMB_FLOOR_BYTES and inflated > MAX_COMPRESSION_RATIO * stored


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
    except LoadError:
        raise
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError... on a damaged file
        raise LoadError(f"{path.name}: the HDF5 file is corrupt or truncated ({_one_line(exc)})") from exc
    return _parse_config(raw, path.name, "the model config")


def _parse_config(raw: object, file_name: str, what: str) -> dict:
    """The model config as JSON, within MAX_CONFIG_BYTES; a dict naming a class, or a LoadError."""
    size = len(raw) if isinstance(raw, bytes | str) else 0
    if size > MAX_CONFIG_BYTES:
        raise LoadError(
            f"{file_name}: {what} takes {_size(size)}, more than the {_size(MAX_CONFIG_BYTES)} allowed"
        )
    try:
        config = json.loads(raw) if isinstance(raw, bytes | str) else None
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8; nesting too deep
        raise LoadError(f"{file_name}: {what} is not valid JSON ({_one_line(exc)})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise LoadError(f"{file_name}: {what} is not a Keras model config")
    return config


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
    """A one-line LoadError (Keras's own messages may dump the whole config over many lines),
    naming the missing custom object when Keras says one is missing."""
    for error in (first, exc):
        match = _MISSING_OBJECT.search(str(error)) if error is not None else None
        if match:
            missing = printable(match.group(1))
            return MissingCustomObjectError(f"{path.name}: '{missing}' is not part of Keras; {CUSTOM_HINT}")
    if isinstance(exc, OSError):
        return LoadError(f"{path.name}: the file is corrupt or truncated ({_one_line(exc)})")
    return LoadError(f"{path.name}: Keras could not build the model: {type(exc).__name__}: {_one_line(exc)}")


def _require_model(model: Any, path: Path) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise LoadError(f"{path.name}: holds a {type(model).__name__}, not a Keras model")
    return model


def _is_known_layer(entry: dict, custom_objects: Mapping[str, Any]) -> bool:
    """Keras can build this layer entry: a built-in class, a supplied or registered one."""
    class_name = entry["class_name"]
    registered = entry.get("registered_name")
    custom_registered = registered is not None and registered != class_name
    module = entry.get("module")
    if not custom_registered and (module is None or _is_keras_module(module)) and _is_builtin(class_name):
        return True
    return _is_supplied(entry, custom_objects)


def _hazard(obj: dict, layer: str, is_layer: bool, custom_objects: Mapping[str, Any]) -> str | None:
    """Why building this serialized object would run code or read an outside file, if it would.

    Lambdas count even when supplied (their code is in the file). "Keras" is the `keras`
    package: "keras_evil" is not. Keras saves a function by name alone as module "builtins",
    which it resolves only among the supplied objects and its own built-in functions.
    """
    class_name, config, module = obj["class_name"], obj.get("config"), obj.get("module")
    what = (
        f"{printable(class_name)} layer '{layer}'"
        if is_layer
        else f"{printable(class_name)} in layer '{layer}'"
    )
    if class_name == "Lambda":
        return f"{what} (Python code)"
    if class_name == "__lambda__":
        return f"a lambda function in layer '{layer}' (Python code)"
    if class_name == "TFSMLayer":
        target = config.get("filepath") if isinstance(config, dict) else None
        return f"{what} (runs the TensorFlow SavedModel {printable(str(target), PATH_LIMIT)})"
    if isinstance(config, dict) and isinstance(config.get("vocabulary"), str):
        return f"{what} (reads its vocabulary from the file {printable(config['vocabulary'], PATH_LIMIT)})"
    name = config if class_name == "function" and isinstance(config, str) else class_name
    if _is_keras_module(module) and name in KERAS_NON_MODELING:
        return f"Keras function '{printable(name)}' in layer '{layer}' (no part of a model)"
    if module is None or _is_keras_module(module) or is_layer or _is_supplied(obj, custom_objects):
        return None
    if module == "builtins" and class_name == "function" and _is_keras_function(name):
        return None
    return (
        f"'{printable(name)}' from module '{printable(str(module))}' in layer '{layer}' (not part of Keras)"
    )


def _is_keras_module(module: object) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _is_supplied(obj: dict, custom_objects: Mapping[str, Any]) -> bool:
    """The user's custom objects file, or a registration in this process, defines this object."""
    function_name = obj.get("config") if obj["class_name"] == "function" else None
    keys = (obj.get("registered_name"), obj["class_name"], function_name)
    keys = [key for key in keys if isinstance(key, str)]
    return any(key in custom_objects or keras.saving.get_registered_object(key) is not None for key in keys)


def _is_keras_function(name: str) -> bool:
    """One of Keras's built-in activations, initializers, losses... (what "builtins" resolves to)."""
    if not name.isidentifier() or name.startswith("_"):
        return False
    return any(callable(getattr(getattr(keras, module), name, None)) for module in KERAS_FUNCTION_MODULES)


def _is_builtin(class_name: str) -> bool:
    cls = getattr(keras.layers, class_name, None)
    builtin_layer = isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    return class_name in legacy_h5.NESTED_MODELS or builtin_layer


def _layer_name(entry: dict) -> str:
    config = entry.get("config")
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return printable(name) if isinstance(name, str) and name else "?"


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message, capped (Keras's may hold the whole config)."""
    lines = str(exc).strip().splitlines()
    return printable(lines[0] if lines else type(exc).__name__, limit=300)


def _listed(found: list[str]) -> str:
    more = len(found) - MAX_LISTED
    return ", ".join(found[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _size(n: int) -> str:
    """Bytes in words: 3.0 GB, 16 MB, 512 bytes."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} bytes"


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
