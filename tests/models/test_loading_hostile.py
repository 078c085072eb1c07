"""Hostile model files: refused by medvis's own checks, with one line, before Keras reads them.

Every fixture starts as a real model (a .keras written by keras.saving.save_model, or a Keras 2
.h5 from tests/models/fixtures) and is then edited with zipfile or h5py, the way an attacker
would. A refusal must come before Keras deserializes anything: Keras's loaders are replaced by
a function that fails the test, and every outside file a hostile config names does not exist,
so a message about it can only be medvis's.
"""

from __future__ import annotations

import json
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from medvis_desktop import models
from medvis_desktop.errors import LoadError
from medvis_desktop.models import legacy_h5, loading
from tests.models.conftest import (
    FIXTURES,
    assert_close,
    fixture_path,
    h5_config,
    predict,
    rewrite_config,
    small_keras3_model,
)

REPO = Path(__file__).resolve().parents[2]
GB = 2**30


@pytest.fixture(scope="module")
def saved_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real .keras archive, nested sub-models included, written by Keras itself."""
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    keras.saving.save_model(small_keras3_model(), path)
    return path


@pytest.fixture
def keras_never_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any Keras loader (or our own Keras 2 conversion) is reached."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("Keras was asked to deserialize a model that must be refused first")

    monkeypatch.setattr(keras.saving, "load_model", never)
    monkeypatch.setattr(legacy_h5, "load_legacy_h5", never)
    monkeypatch.setattr(legacy_h5, "build_model", never)


@pytest.fixture
def opened_members(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The archive members anything opens (to inflate them) from now on."""
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, *args: object, **kwargs: object):
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


def refusal(path: Path, error: type[LoadError] = LoadError, **kwargs: object) -> str:
    """The one-line message load_model refuses `path` with."""
    with pytest.raises(error) as caught:
        models.load_model(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path.name}: "), message
    return message


# --- the .keras archive, checked on its zip directory ------------------------------------------


def copy_archive(
    source: Path,
    target: Path,
    *,
    config: bytes | None = None,
    extra: tuple[tuple[zipfile.ZipInfo | str, bytes], ...] = (),
) -> Path:
    """`source` rewritten by zipfile, config.json replaced by `config`, `extra` members added."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name", on purpose
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, config if config is not None and info.filename == "config.json" else data)
        for member, data in extra:
            dst.writestr(member, data)
    return target


def patch_headers(
    path: Path,
    member: str,
    *,
    inflated: int | None = None,
    stored: int | None = None,
    flags: int | None = None,
) -> Path:
    """Make the zip headers of `member` declare other sizes or flags, as a crafted archive does.

    Central directory record: flags at +8, compressed size at +20, uncompressed at +24, name
    length at +28, name at +46. Local header: flags at +6, sizes at +18 and +22.
    """
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local, record = archive.getinfo(member).header_offset, archive.start_dir
    while data[record + 46 : record + 46 + struct.unpack_from("<H", data, record + 28)[0]] != member.encode():
        record = data.index(b"PK\x01\x02", record + 4)
    for value, fmt, offsets in (
        (flags, "<H", (record + 8, local + 6)),
        (stored, "<I", (record + 20, local + 18)),
        (inflated, "<I", (record + 24, local + 22)),
    ):
        for offset in offsets if value is not None else ():
            struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def stream_zeros(source: Path, target: Path, member: str, megabytes: int) -> Path:
    """`source` with `member` replaced by zeros, deflated as they are streamed in (about 200:1)."""
    with (
        zipfile.ZipFile(source) as src,
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as dst,
    ):
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info, src.read(info))  # stored, as Keras wrote it
        with dst.open(member, "w") as out:
            for _ in range(megabytes):
                out.write(bytes(2**20))
    return target


@pytest.fixture(scope="module")
def zero_bomb(saved_keras: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bomb: config.json is 200 MB of zeros, deflated to about 1 MB."""
    return stream_zeros(saved_keras, tmp_path_factory.mktemp("bomb") / "bomb.keras", "config.json", 200)


Maker = Callable[[Path, Path], Path]  # (the saved model, a folder) -> a hostile archive


def added(*members: tuple[zipfile.ZipInfo | str, bytes]) -> Maker:
    return lambda source, folder: copy_archive(source, folder / "hostile.keras", extra=members)


def declaring(maker: Maker, member: str, **headers: int) -> Maker:
    return lambda source, folder: patch_headers(maker(source, folder), member, **headers)


def small_bombs(source: Path, folder: Path) -> Path:
    """Ten members each under the per-member floor, together 150 MB from a few bytes."""
    path = added(*((f"assets/{i}", b"x") for i in range(10)))(source, folder)
    for i in range(10):
        patch_headers(path, f"assets/{i}", inflated=15 * 2**20)
    return path


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HALF_5GB = {"inflated": 5 * GB // 2, "stored": 5 * GB // 2}
# name -> (how the archive is made, what the message must say; "…" stands for any text)
HOSTILE_ARCHIVES: dict[str, tuple[Maker, str]] = {
    "config-declares-3GB": (
        declaring(added(), "config.json", inflated=3 * GB),
        "config.json would inflate to 3.0 GB, more than the 16 MB allowed",
    ),
    "weights-declare-3.5GB": (
        declaring(added(), "model.weights.h5", inflated=7 * GB // 2),
        "archive member 'model.weights.h5' would inflate from … to 3.5 GB, a decompression bomb",
    ),
    "members-total-5GB": (
        declaring(
            declaring(added(("assets/a.bin", b"a")), "assets/a.bin", **HALF_5GB),
            "model.weights.h5",
            **HALF_5GB,
        ),
        "the archive would inflate to 5.0 GB, more than the 4.0 GB allowed",
    ),
    "many-small-bombs": (small_bombs, "the archive would inflate from … to 150 MB, a decompression bomb"),
    "too-many-members": (
        added(*((f"assets/{i}", b"") for i in range(10_000))),
        "the archive has 10,003 members, more than the 10,000 allowed",
    ),
    "dotdot": (
        added(("../evil.txt", b"x")),
        "archive member '../evil.txt' has a path leading out of the archive",
    ),
    "dotdot-inside": (
        added(("assets/../../evil.txt", b"x")),
        "member 'assets/../../evil.txt' has a path leading out",
    ),
    "dotdot-backslash": (added(("assets\\..\\..\\evil.txt", b"x")), "has a path leading out of the archive"),
    "absolute": (added(("/etc/cron.d/medvis", b"x")), "member '/etc/cron.d/medvis' has a path leading out"),
    "drive": (added(("C:\\Windows\\evil.dll", b"x")), "has a path leading out of the archive"),
    "unc": (added(("//server/share/evil.dll", b"x")), "has a path leading out of the archive"),
    "symlink": (
        added((symlink("assets/vocabulary.txt"), b"/etc/passwd")),
        "archive member 'assets/vocabulary.txt' is a symbolic link",
    ),
    "config-twice": (
        added(("config.json", b'{"class_name": "Functional"}')),
        "member 'config.json' appears twice",
    ),
    "encrypted": (
        declaring(added(("assets/secret", b"x")), "assets/secret", flags=0x1),
        "archive member 'assets/secret' is encrypted",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_ARCHIVES))
def test_hostile_archive_refused_before_anything_is_inflated(
    case, saved_keras, tmp_path, keras_never_called, opened_members
):
    make, expected = HOSTILE_ARCHIVES[case]
    path = make(saved_keras, tmp_path)
    opened_members.clear()  # making the file opened members; from here on nothing may
    message = refusal(path)
    assert all(part in message for part in expected.split("…")), message
    assert opened_members == [], "a member was inflated before the archive was refused"


def test_real_zip_bomb_is_refused_by_its_declared_size(zero_bomb, keras_never_called, opened_members):
    """200 MB of zeros deflated to about 1 MB: refused from the directory, never inflated."""
    assert zero_bomb.stat().st_size < 2 * 2**20
    message = refusal(zero_bomb)
    assert "config.json would inflate to 200 MB, more than the 16 MB allowed" in message
    assert opened_members == []


def test_config_that_inflates_past_its_declared_size_is_cut_off(saved_keras, tmp_path, keras_never_called):
    """A directory that declares 100 bytes for 20 MB of data: zipfile inflates 100 bytes at most."""
    path = stream_zeros(saved_keras, tmp_path / "liar.keras", "config.json", 20)
    patch_headers(path, "config.json", inflated=100)
    assert "the .keras archive is corrupt or truncated (Bad CRC-32" in refusal(path)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (b"[]", "config.json is not a Keras model config"),
        (b'{"config": {}}', "config.json is not a Keras model config"),
        (b"\xff\xfe\x00garbage", "config.json is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "config.json is not valid JSON"),
    ],
    ids=["list", "no-class", "not-utf8", "nested-too-deep"],
)
def test_config_that_is_not_a_model_config(saved_keras, tmp_path, keras_never_called, config, expected):
    path = copy_archive(saved_keras, tmp_path / "odd.keras", config=config)
    assert expected in refusal(path)


def test_genuine_archive_passes_the_archive_check(saved_keras):
    with zipfile.ZipFile(saved_keras) as archive:
        assert loading._archive_problem(archive) is None


# --- constructs that run code or read outside files, anywhere in the config ------------------


def find_entry(config: dict, name: str) -> dict:
    return next(entry for entry in loading.iter_layer_entries(config) if loading._layer_name(entry) == name)


def as_layer(class_name: str, **config: object) -> Callable[[dict, Path], None]:
    """Turn the layer entry into `class_name` with `config` (values may use the outside folder)."""

    def edit(entry: dict, outside: Path) -> None:
        entry["class_name"] = class_name
        entry["config"] = {"name": entry["config"]["name"]} | {
            key: str(outside / value) if isinstance(value, Path) else value for key, value in config.items()
        }

    return edit


def set_in_config(key: str, value: dict) -> Callable[[dict, Path], None]:
    def edit(entry: dict, outside: Path) -> None:
        entry["config"][key] = value

    return edit


def set_module(module: str, class_name: str | None = None) -> Callable[[dict, Path], None]:
    def edit(entry: dict, outside: Path) -> None:
        entry["module"] = module
        entry["class_name"] = class_name or entry["class_name"]

    return edit


# name -> (edit of one layer entry inside a sub-model, error class, what the message must say;
# {layer} and {outside} are filled in)
HOSTILE_CONFIGS = {
    "tfsm-layer": (
        as_layer("TFSMLayer", filepath=Path("saved_model"), call_endpoint="serve"),
        models.UnsafeModelError,
        "TFSMLayer layer '{layer}' (runs the TensorFlow SavedModel {outside}/saved_model)",
    ),
    "string-lookup-file": (
        as_layer("StringLookup", vocabulary=Path("passwd")),
        models.UnsafeModelError,
        "StringLookup layer '{layer}' (reads its vocabulary from the file {outside}/passwd)",
    ),
    "integer-lookup-file": (
        as_layer("IntegerLookup", vocabulary=Path("ids.txt")),
        models.UnsafeModelError,
        "IntegerLookup layer '{layer}' (reads its vocabulary from the file {outside}/ids.txt)",
    ),
    "text-vectorization-file": (
        as_layer("TextVectorization", vocabulary=Path("words.txt")),
        models.UnsafeModelError,
        "TextVectorization layer '{layer}' (reads its vocabulary from the file {outside}/words.txt)",
    ),
    "lambda": (
        as_layer("Lambda", function="outside"),
        models.UnsafeModelError,
        "Lambda layer '{layer}' (Python code)",
    ),
    "os-system-activation": (
        set_in_config("activation", {"module": "os", "class_name": "function", "config": "system"}),
        models.UnsafeModelError,
        "'system' from module 'os' in layer '{layer}' (not part of Keras)",
    ),
    "builtins-exec-initializer": (
        set_in_config(
            "kernel_initializer",
            {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"},
        ),
        models.UnsafeModelError,
        "'exec' from module 'builtins' in layer '{layer}' (not part of Keras)",
    ),
    "builtins-class-regularizer": (
        set_in_config("kernel_regularizer", {"module": "builtins", "class_name": "eval", "config": {}}),
        models.UnsafeModelError,
        "'eval' from module 'builtins' in layer '{layer}' (not part of Keras)",
    ),
    "keras-get-file": (
        set_in_config(
            "activation",
            {
                "module": "keras.utils",
                "class_name": "function",
                "config": "get_file",
                "registered_name": "get_file",
            },
        ),
        models.UnsafeModelError,
        "Keras function 'get_file' in layer '{layer}' (no part of a model)",
    ),
    "tfsm-as-activation": (
        set_in_config(
            "activation", {"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/x"}}
        ),
        models.UnsafeModelError,
        "TFSMLayer in layer '{layer}' (runs the TensorFlow SavedModel /x)",
    ),
    "os-layer": (
        set_module("os", "system"),
        models.MissingCustomObjectError,
        "layer '{layer}' is of class 'system' from module 'os', a custom layer that is not part of Keras",
    ),
    "keras-lookalike-module": (
        set_module("keras_evil.layers"),
        models.MissingCustomObjectError,
        "layer '{layer}' is of class 'Conv2D' from module 'keras_evil.layers', a custom layer",
    ),
}
# (format, layer edited): a functional and a Sequential sub-model in each format.
TARGETS = [("keras", "block_conv"), ("keras", "stem_conv"), ("h5", "res_block_b_conv"), ("h5", "feat_conv")]


def hostile_model(
    fmt: str, layer: str, edit: Callable[[dict, Path], None], folder: Path, saved: Path
) -> Path:
    """A real model of format `fmt` whose layer `layer`, inside a sub-model, was edited."""
    outside = folder / "outside"  # never created: anything read from it would fail in Keras
    if fmt == "keras":
        with zipfile.ZipFile(saved) as archive:
            config = json.loads(archive.read("config.json"))
        edit(find_entry(config, layer), outside)
        return copy_archive(saved, folder / "hostile.keras", config=json.dumps(config).encode())
    config = h5_config(fixture_path("nested_2d"))
    edit(find_entry(config, layer), outside)
    return rewrite_config(fixture_path("nested_2d"), folder / "hostile.h5", config)


@pytest.mark.parametrize(("fmt", "layer"), TARGETS, ids=[f"{fmt}-{layer}" for fmt, layer in TARGETS])
@pytest.mark.parametrize("case", list(HOSTILE_CONFIGS))
def test_hostile_construct_refused_before_keras(case, fmt, layer, saved_keras, tmp_path, keras_never_called):
    edit, error, expected = HOSTILE_CONFIGS[case]
    path = hostile_model(fmt, layer, edit, tmp_path, saved_keras)
    message = refusal(path, error)
    assert expected.format(layer=layer, outside=tmp_path / "outside") in message
    assert not (tmp_path / "outside").exists()
    if error is models.UnsafeModelError:
        assert message.endswith("load it only if you trust its source: unsafe=True / --unsafe")


@pytest.mark.parametrize("case", ["os-layer", "keras-lookalike-module"])
def test_foreign_layer_class_refused_even_when_trusted(case, saved_keras, tmp_path, keras_never_called):
    """Keras could only build it by importing the module the file names: never done."""
    edit, error, expected = HOSTILE_CONFIGS[case]
    path = hostile_model("keras", "block_conv", edit, tmp_path, saved_keras)
    assert expected.format(layer="block_conv") in refusal(path, error, unsafe=True)


def test_many_findings_make_one_short_line(saved_keras, tmp_path, keras_never_called):
    with zipfile.ZipFile(saved_keras) as archive:
        config = json.loads(archive.read("config.json"))
    lambdas = [as_layer("Lambda", function="x")] * 20
    for entry, edit in zip(loading.iter_layer_entries(config), lambdas, strict=False):
        edit(entry, tmp_path)
    path = copy_archive(saved_keras, tmp_path / "many.keras", config=json.dumps(config).encode())
    message = refusal(path, models.UnsafeModelError)
    assert message.count("(Python code)") == loading.MAX_LISTED and " more; load it only" in message


def test_hostile_names_cannot_break_the_line(saved_keras, tmp_path, keras_never_called):
    with zipfile.ZipFile(saved_keras) as archive:
        config = json.loads(archive.read("config.json"))
    entry = find_entry(config, "block_conv")
    entry["name"] = entry["config"]["name"] = "evil\nname\r\u2028" + "x" * 10_000
    as_layer("Lambda", function="x")(entry, tmp_path)
    path = copy_archive(saved_keras, tmp_path / "names.keras", config=json.dumps(config).encode())
    message = refusal(path, models.UnsafeModelError)
    assert "Lambda layer 'evil\\nname\\r\\u2028xxx" in message and len(message) < 400


# --- what stays allowed ------------------------------------------------------------------


def nested_lambda_model() -> keras.Model:
    inner_in = keras.Input((4,))
    inner = keras.Model(
        inner_in, keras.layers.Lambda(lambda t: t * 2.0, name="double")(inner_in), name="inner"
    )
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inner(inputs)))


def test_nested_lambda_refused_then_loads_when_trusted(tmp_path):
    model = nested_lambda_model()
    path = tmp_path / "lambda.keras"
    keras.saving.save_model(model, path)
    assert "Lambda layer 'double' (Python code)" in refusal(path, models.UnsafeModelError)
    batch = np.arange(8, dtype=np.float32).reshape(2, 4)
    loaded = models.load_model(path, unsafe=True)
    assert_close(predict(loaded, [batch]), predict(model, [batch]), atol=1e-6)


def test_keras_function_saved_by_name_loads(saved_keras, tmp_path):
    """{"module": "builtins", "class_name": "function", "config": "relu"} is how Keras names its own."""
    with zipfile.ZipFile(saved_keras) as archive:
        config = json.loads(archive.read("config.json"))
    relu = {"module": "builtins", "class_name": "function", "config": "relu", "registered_name": "function"}
    find_entry(config, "block_conv")["config"]["activation"] = relu
    path = copy_archive(saved_keras, tmp_path / "relu.keras", config=json.dumps(config).encode())
    model = models.load_model(path)
    assert model.get_layer("block").get_layer("block_conv").activation is keras.activations.relu


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "resources" / "models").glob("*.keras"))
    + [path for path in sorted(FIXTURES.glob("*.h5")) if path.stem != "with_lambda"],
    ids=lambda path: path.name,
)
def test_genuine_models_have_nothing_to_refuse(path):
    assert loading.find_unsafe_constructs(loading.read_model_file(path).config) == []
