"""Mutations, each drawn from a `random.Random` so that (seed, family, case) fixes the input.

Every mutator takes the rng and the path of a fresh copy of a seed (a file, or a folder for a
series or a DICOMDIR media), changes it in place and returns what it did, in words. The loaded
path may differ from the copy (a DICOMDIR media is loaded by its DICOMDIR file or its folder),
so `mutate` returns both.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import plistlib
import random
import shutil
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medvis_desktop.imaging.checks import NOT_FAILURES
from tests.fuzz import dicom_bytes as db
from tests.fuzz.seeds import Seed, write_inv3

NAN, INF = float("nan"), float("inf")
Mutator = Callable[[random.Random, Path], str]


# --- bytes, for every format ---------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)


def _position(rng: random.Random, size: int, header: int = 1024) -> int:
    """Anywhere, but half of the time in the first `header` bytes, where formats keep sizes."""
    if size <= 1:
        return 0
    return rng.randrange(min(size, header)) if rng.random() < 0.5 else rng.randrange(size)


def mutate_bytes(rng: random.Random, data: bytes, header: int = 1024) -> tuple[bytes, str]:
    """One of: flip bytes, truncate, insert, delete, or copy a chunk over another place."""
    size = len(data)
    choice = rng.choice(["flip", "flip", "flip", "truncate", "insert", "delete", "overwrite"])
    if size == 0:
        choice = "insert"
    buffer = bytearray(data)
    if choice == "flip":
        count = rng.choice([1, 1, 2, 4, 8, 32])
        where = sorted(_position(rng, size, header) for _ in range(count))
        for at in where:
            mode = rng.random()
            if mode < 0.4:
                buffer[at] ^= 1 << rng.randrange(8)
            elif mode < 0.7:
                buffer[at] = rng.choice(INTERESTING_BYTES)
            else:
                buffer[at] = rng.randrange(256)
        return bytes(buffer), f"flip {count} byte(s) at {_listed(where)}"
    if choice == "truncate":
        keep = rng.choice([0, 1, 128, 132, 348, rng.randrange(size), rng.randrange(size), size - 1])
        keep = min(keep, size - 1)
        return data[:keep], f"truncate to {keep} of {size} bytes"
    if choice == "insert":
        at = _position(rng, size + 1, header) if size else 0
        kind = rng.choice(["random", "zeros", "ff", "copy"])
        count = rng.choice([1, 2, 4, 16, 256, 4096])
        if kind == "random":
            chunk = bytes(rng.randrange(256) for _ in range(count))
        elif kind == "zeros":
            chunk = b"\x00" * count
        elif kind == "ff":
            chunk = b"\xff" * count
        else:
            start = rng.randrange(size) if size else 0
            chunk = data[start : start + count] or b"\x00"
        return data[:at] + chunk + data[at:], f"insert {len(chunk)} {kind} byte(s) at {at}"
    if choice == "delete":
        at = _position(rng, size, header)
        count = rng.choice([1, 2, 4, 16, 256, 4096])
        return data[:at] + data[at + count :], f"delete {count} byte(s) at {at}"
    at, start = _position(rng, size, header), rng.randrange(size)
    count = rng.choice([4, 16, 256])
    chunk = data[start : start + count]
    buffer[at : at + len(chunk)] = chunk
    return bytes(buffer[: max(size, at)]), f"copy {len(chunk)} byte(s) from {start} over {at}"


def _listed(values: list[int], limit: int = 4) -> str:
    shown = ",".join(str(v) for v in values[:limit])
    return shown + (f",… ({len(values)})" if len(values) > limit else "")


def bytes_mutator(header: int = 1024) -> Mutator:
    def mutator(rng: random.Random, path: Path) -> str:
        data, what = mutate_bytes(rng, path.read_bytes(), header)
        path.write_bytes(data)
        return f"bytes: {what}"

    return mutator


# --- DICOM, one file -----------------------------------------------------------------------

TAGS = {
    "Rows": (0x00280010, b"US"),
    "Columns": (0x00280011, b"US"),
    "BitsAllocated": (0x00280100, b"US"),
    "BitsStored": (0x00280101, b"US"),
    "HighBit": (0x00280102, b"US"),
    "PixelRepresentation": (0x00280103, b"US"),
    "SamplesPerPixel": (0x00280002, b"US"),
    "PlanarConfiguration": (0x00280006, b"US"),
    "NumberOfFrames": (0x00280008, b"IS"),
    "PhotometricInterpretation": (0x00280004, b"CS"),
    "ImagePositionPatient": (0x00200032, b"DS"),
    "ImageOrientationPatient": (0x00200037, b"DS"),
    "PixelSpacing": (0x00280030, b"DS"),
    "ImagerPixelSpacing": (0x00181164, b"DS"),
    "RescaleSlope": (0x00281053, b"DS"),
    "RescaleIntercept": (0x00281052, b"DS"),
    "WindowCenter": (0x00281050, b"DS"),
    "WindowWidth": (0x00281051, b"DS"),
    "SliceThickness": (0x00180050, b"DS"),
    "SpacingBetweenSlices": (0x00180088, b"DS"),
    "InstanceNumber": (0x00200013, b"IS"),
    "PixelPaddingValue": (0x00280120, b"US"),
    "PixelPaddingRangeLimit": (0x00280121, b"US"),
    "SOPClassUID": (0x00080016, b"UI"),
    "MediaStorageSOPClassUID": (0x00020002, b"UI"),
    "SeriesInstanceUID": (0x0020000E, b"UI"),
    "Modality": (0x00080060, b"CS"),
}
POSITIONS = [
    [NAN, 0.0, 0.0],
    [INF, INF, INF],
    [1e308, -1e308, 1e308],
    [0.0, 0.0],
    ["a", "b", "c"],
    [0.0, 0.0, -INF],
    [1e20, 0.0, 0.0],
    [],
    [1e-320, 0.0, 0.0],
]
FIELD_VALUES: dict[str, list[Any]] = {
    "Rows": [0, 1, 3, 63, 65, 4096, 32768, 65535],
    "Columns": [0, 1, 3, 63, 65, 4096, 32768, 65535],
    "BitsAllocated": [0, 1, 7, 8, 12, 24, 32, 64, 255, 65535],
    "BitsStored": [0, 1, 9, 17, 32, 65535],
    "HighBit": [0, 15, 16, 31, 65535],
    "PixelRepresentation": [1, 2, 65535],
    "SamplesPerPixel": [0, 2, 3, 4, 65535],
    "PlanarConfiguration": [0, 1, 2],
    "NumberOfFrames": [
        "0",
        "-1",
        "2",
        "9",
        "1000",
        "1000000",
        "2147483647",
        "99999999999",
        "abc",
        "",
        "1.5",
        "NaN",
    ],
    "PhotometricInterpretation": [
        "MONOCHROME1",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "PALETTE COLOR",
        "",
        "JUNK",
    ],
    "ImagePositionPatient": POSITIONS,
    "ImageOrientationPatient": [
        [0.0] * 6,
        [NAN] * 6,
        [1, 0, 0, 1, 0, 0],
        [1, 0, 0, 0, 1],
        [1e308, 0, 0, 0, 1e308, 0],
        [INF, 0, 0, 0, 1, 0],
        [2, 0, 0, 0, 2, 0],
        [1, 0, 0, 0, 0, 1],
        ["x"] * 6,
    ],
    "PixelSpacing": [
        [NAN, NAN],
        [INF, 1],
        [0, 0],
        [-1, -1],
        [1e308, 1e308],
        [1],
        [1, 2, 3],
        [1e-300, 1e-300],
        ["x", "y"],
    ],
    "ImagerPixelSpacing": [[NAN, NAN], [0, 0], [-1, -1], [1e308, 1e308]],
    "RescaleSlope": [NAN, INF, -INF, 0, -1, 1e308, 1e-308, 1e10, "abc", ""],
    "RescaleIntercept": [NAN, INF, -1e308, 1e308, 1e10, "abc"],
    "WindowCenter": [NAN, INF, -INF, 1e308, "abc", [40, NAN]],
    "WindowWidth": [NAN, INF, 0, -1, 1e308, [80, NAN], "abc"],
    "SliceThickness": [NAN, INF, 0, -1, 1e308],
    "SpacingBetweenSlices": [NAN, INF, 0, -1, 1e308],
    "InstanceNumber": ["NaN", "-1", "99999999999999999999", "abc", ""],
    "PixelPaddingValue": [0, 65535, 1024],
    "PixelPaddingRangeLimit": [0, 65535],
    "SOPClassUID": ["1.2.840.10008.1.3.10", "", "junk", "1.2.840.10008.5.1.4.1.1.2.1"],
    "MediaStorageSOPClassUID": ["1.2.840.10008.1.3.10", "", "1.2.840.10008.5.1.4.1.1.88.11"],
    "SeriesInstanceUID": ["", "9" * 64],
    "Modality": ["", "MG", "CR", "SEG"],
}
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.1.98",
    "1.2.3.4",
    "",
]
REMOVABLE = [
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SOPClassUID",
    "MediaStorageSOPClassUID",
    "PixelData",
    "TransferSyntaxUID",
    "SeriesInstanceUID",
]
EXTRA_TAGS = {"PixelData": 0x7FE00010, "TransferSyntaxUID": 0x00020010}


def dicom_field(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    edits = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        keyword = rng.choice(list(FIELD_VALUES))
        value = rng.choice(FIELD_VALUES[keyword])
        tag, vr = TAGS[keyword]
        which = None if rng.random() < 0.6 else rng.randrange(8)
        data = db.set_value(data, tag, vr, value, which=which)
        edits.append(f"{keyword}={_shown(value)}{'' if which is None else f' (occurrence {which})'}")
    path.write_bytes(data)
    return "field: " + "; ".join(edits)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def dicom_syntax(rng: random.Random, path: Path) -> str:
    syntax = rng.choice(TRANSFER_SYNTAXES)
    path.write_bytes(db.set_value(path.read_bytes(), 0x00020010, b"UI", syntax))
    return f"transfer syntax -> {syntax or 'empty'}"


def _pick_element(rng: random.Random, data: bytes) -> db.Element | None:
    elements = [e for e in db.walk(data) if e.tag != 0x00020000]
    return rng.choice(elements) if elements else None


def dicom_vr(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    element = _pick_element(rng, data)
    if element is None:
        return "vr: no element found"
    vr = rng.choice(db.ALL_VRS)
    path.write_bytes(db.set_vr(data, element, vr))
    return f"vr of ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) {element.vr.decode()} -> {vr!r}"


def dicom_length(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    element = _pick_element(rng, data)
    if element is None:
        return "length: no element found"
    length = element.length if element.length != db.UNDEFINED else 0
    new = rng.choice(
        [0, 1, length - 1, length + 1, length * 2 + 2, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFE]
    )
    path.write_bytes(db.set_length(data, element, new))
    return f"length of ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) {element.length} -> {new}"


def dicom_remove(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    keyword = rng.choice(REMOVABLE)
    tag = EXTRA_TAGS.get(keyword) or TAGS[keyword][0]
    found = db.find(data, tag)
    if not found:
        return f"remove {keyword}: absent already"
    for element in sorted(found, key=lambda e: e.offset, reverse=True):
        data = db.remove_element(data, element)
    path.write_bytes(data)
    return f"remove {keyword} ({len(found)}x)"


def dicom_pixels(rng: random.Random, path: Path) -> str:
    """Damage inside the pixel data: fragments, offset tables, RLE segment headers, raw bytes."""
    data = path.read_bytes()
    pixel = next((e for e in db.find(data, db.PIXEL_DATA)), None)
    if pixel is None:
        data, what = mutate_bytes(rng, data)
        path.write_bytes(data)
        return f"pixels (none found), bytes: {what}"
    start = pixel.value_offset
    if pixel.length != db.UNDEFINED:
        body, what = mutate_bytes(rng, data[start:], header=64)
        path.write_bytes(data[:start] + body)
        return f"native pixels: {what}"
    items = _fragments(data, start)
    choice = rng.choice(["item-length", "offset-table", "rle-header", "fragment-bytes", "fragment-bytes"])
    if choice == "item-length" and items:
        at, length = rng.choice(items)
        new = rng.choice([0, 1, 3, length - 1, length + 2, 0xFFFFFFFF, 0x7FFFFFFF, len(data)])
        path.write_bytes(data[: at + 4] + struct.pack("<I", new & 0xFFFFFFFF) + data[at + 8 :])
        return f"encapsulated item at {at}: length {length} -> {new}"
    if choice == "offset-table" and items:
        at, length = items[0]
        count = rng.choice([1, 2, 8, 64])
        table = b"".join(
            struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(2**32)])) for _ in range(count)
        )
        path.write_bytes(data[: at + 4] + struct.pack("<I", len(table)) + table + data[at + 8 + length :])
        return f"basic offset table -> {count} entries"
    if choice == "rle-header" and len(items) > 1:
        at, length = rng.choice(items[1:])
        header = bytearray(data[at + 8 : at + 8 + 64])
        if len(header) == 64:
            field = rng.randrange(16)
            value = rng.choice(
                [0, 1, 15, 16, 255, 0xFFFFFFFF, 64, length, length + 100, rng.randrange(2**32)]
            )
            header[field * 4 : field * 4 + 4] = struct.pack("<I", value & 0xFFFFFFFF)
            path.write_bytes(data[: at + 8] + bytes(header) + data[at + 8 + 64 :])
            return f"fragment header at {at + 8}: word {field} -> {value}"
    if len(items) > 1:
        at, length = rng.choice(items[1:])
        body, what = mutate_bytes(rng, data[at + 8 : at + 8 + length], header=64)
        fixed = (
            struct.pack("<HHI", 0xFFFE, 0xE000, len(body) + len(body) % 2) + body + b"\x00" * (len(body) % 2)
        )
        path.write_bytes(data[:at] + fixed + data[at + 8 + length :])
        return f"fragment at {at}: {what}"
    data, what = mutate_bytes(rng, data)
    path.write_bytes(data)
    return f"bytes: {what}"


def _fragments(data: bytes, start: int) -> list[tuple[int, int]]:
    """(offset, length) of each item of encapsulated pixel data starting at `start`."""
    items, at = [], start
    while at + 8 <= len(data):
        group, number, length = struct.unpack_from("<HHI", data, at)
        if (group, number) != (0xFFFE, 0xE000):
            break
        items.append((at, length))
        at += 8 + length
    return items


DICOM_FILE: list[tuple[int, Mutator]] = [
    (3, bytes_mutator()),
    (6, dicom_field),
    (2, dicom_syntax),
    (1, dicom_vr),
    (1, dicom_length),
    (1, dicom_remove),
    (3, dicom_pixels),
]


def dicom_file(rng: random.Random, path: Path) -> str:
    return _choose(rng, DICOM_FILE)(rng, path)


# --- DICOM series and DICOMDIR ---------------------------------------------------------------


# Files larger than this (series_junk's huge sparse file) are left alone by later mutations:
# reading 8 GiB of zeros would take all memory, and pydicom parses it as elements for hours.
MUTABLE_BYTES = 64 * 2**20


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != "DICOMDIR" and p.stat().st_size <= MUTABLE_BYTES
    )


def series_per_file(rng: random.Random, folder: Path) -> str:
    files = _files(folder)
    chosen = rng.sample(files, min(len(files), rng.choice([1, 1, 1, 2, 3])))
    done = [f"{p.name}: {dicom_file(rng, p)}" for p in chosen]
    return "per file: " + " | ".join(done)


def series_duplicate(rng: random.Random, folder: Path) -> str:
    files = _files(folder)
    copies = rng.sample(files, min(len(files), rng.choice([1, 2, 3])))
    for k, source in enumerate(copies):
        shutil.copy(source, source.with_name(f"{source.name}_copy{k}"))
    return f"duplicate {len(copies)} file(s)"


def series_missing(rng: random.Random, folder: Path) -> str:
    files = _files(folder)
    count = rng.choice([1, 1, 2, len(files) - 1, len(files)])
    for path in rng.sample(files, min(count, len(files))):
        path.unlink()
    return f"remove {count} of {len(files)} file(s)"


def series_mixed_size(rng: random.Random, folder: Path) -> str:
    import numpy as np
    import pydicom

    files = _files(folder)
    chosen = rng.sample(files, min(len(files), rng.choice([1, 2, len(files) // 2])))
    rows, columns = rng.choice([(32, 32), (64, 48), (65, 64), (128, 128), (1, 64)])
    rewritten = 0
    for path in chosen:
        try:  # an earlier mutation may have left a file pydicom cannot decode: leave it be
            ds = pydicom.dcmread(path)
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress(generate_instance_uid=False)
            pixels = ds.pixel_array
        except NOT_FAILURES:
            raise
        except BaseException:  # a Rust decoder panics with a BaseException (seed 31, case 7431)
            continue
        rewritten += 1
        canvas = np.zeros((rows, columns), dtype=pixels.dtype)
        r, c = min(rows, pixels.shape[0]), min(columns, pixels.shape[1])
        canvas[:r, :c] = pixels[:r, :c]
        ds.Rows, ds.Columns = rows, columns
        ds.PixelData = canvas.tobytes()
        ds.save_as(path, enforce_file_format=True)
    return f"{rewritten} file(s) rewritten as {rows}x{columns}"


JUNK_KINDS = [
    "random",
    "empty",
    "dicm-junk",
    "text",
    "truncated-copy",
    "folder",
    "loop-link",
    "dangling-link",
    "devzero-link",
    "fifo",
    "huge-sparse",
]


def series_junk(rng: random.Random, folder: Path) -> str:
    kinds = [rng.choice(JUNK_KINDS) for _ in range(rng.choice([1, 2, 4]))]
    files = _files(folder)
    for k, kind in enumerate(kinds):
        target = folder / f"JUNK{k:02d}"
        if kind == "random":
            target.write_bytes(bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000]))))
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind == "dicm-junk":
            target.write_bytes(b"\x00" * 128 + b"DICM" + bytes(rng.randrange(256) for _ in range(200)))
        elif kind == "text":
            target.write_text("not an image\n" * 10)
        elif kind == "truncated-copy" and files:
            source = rng.choice(files).read_bytes()
            target.write_bytes(source[: rng.randrange(len(source))])
        elif kind == "folder":
            (target / "empty").mkdir(parents=True)
        elif kind == "loop-link":
            target.symlink_to(".", target_is_directory=True)
        elif kind == "dangling-link":
            target.symlink_to(folder / "does-not-exist")
        elif kind == "devzero-link":
            target.symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "huge-sparse":  # 8 GB that take no disk: DICM preamble, then a hole
            with target.open("wb") as handle:
                handle.write(b"\x00" * 128 + b"DICM")
                handle.truncate(8 * 2**30)
    return "junk: " + ", ".join(kinds)


SERIES: list[tuple[int, Mutator]] = [
    (6, series_per_file),
    (1, series_duplicate),
    (1, series_missing),
    (1, series_mixed_size),
    (2, series_junk),
]


def dicom_series(rng: random.Random, folder: Path) -> str:
    first = _choose(rng, SERIES)(rng, folder)
    if rng.random() < 0.2:
        return f"{first} + {_choose(rng, SERIES)(rng, folder)}"
    return first


DICOMDIR_FIELDS: dict[str, tuple[int, bytes, list[Any]]] = {
    "ReferencedFileID": (
        0x00041500,
        b"CS",
        [
            ["..", "..", "..", "etc", "passwd"],
            "/etc/passwd",
            ["NOPE", "MISSING"],
            "DICOMDIR",
            "",
            "A" * 200,
            [".."] * 20,
            ["DICOMDIR"],
            "/dev/zero",
        ],
    ),
    "OffsetOfTheNextDirectoryRecord": (0x00041400, b"UL", [0, 1, 0xFFFFFFFF, "self", "first", "random"]),
    "OffsetOfReferencedLowerLevelDirectoryEntity": (
        0x00041420,
        b"UL",
        [0, 1, 0xFFFFFFFF, "self", "first", "random"],
    ),
    "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity": (
        0x00041200,
        b"UL",
        [0, 1, 0xFFFFFFFF, "first", "random"],
    ),
    "OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity": (0x00041202, b"UL", [0, 0xFFFFFFFF, "first"]),
    "DirectoryRecordType": (0x00041430, b"CS", ["JUNK", "", "IMAGE", "SERIES", "PATIENT", "PRIVATE"]),
    "ReferencedSOPClassUIDInFile": (0x00041510, b"UI", ["1.2.840.10008.1.3.10", "", "junk"]),
    "ReferencedTransferSyntaxUIDInFile": (0x00041512, b"UI", ["1.2.840.10008.1.2.4.100", "", "1.2.3"]),
}


def dicomdir_field(rng: random.Random, media: Path) -> str:
    path = media / "DICOMDIR"
    data = path.read_bytes()
    keyword = rng.choice(list(DICOMDIR_FIELDS))
    tag, vr, values = DICOMDIR_FIELDS[keyword]
    value = rng.choice(values)
    matches = db.find(data, tag)
    which = rng.randrange(len(matches)) if matches and rng.random() < 0.7 else None
    items = [at for at in range(len(data)) if data.startswith(b"\xfe\xff\x00\xe0", at)]
    if value in ("self", "first", "random"):
        if value == "self" and matches and which is not None:
            earlier = [at for at in items if at < matches[which].offset]
            value = earlier[-1] if earlier else 0
        elif value == "first" and items:
            value = items[min(1, len(items) - 1)]
        else:
            value = rng.randrange(len(data) + 64)
    data = db.set_value(data, tag, vr, value, which=which)
    path.write_bytes(data)
    return f"DICOMDIR {keyword}={_shown(value)}{'' if which is None else f' (record {which})'}"


def dicomdir_bytes(rng: random.Random, media: Path) -> str:
    path = media / "DICOMDIR"
    data, what = mutate_bytes(rng, path.read_bytes(), header=len(path.read_bytes()))
    path.write_bytes(data)
    return f"DICOMDIR bytes: {what}"


def dicomdir_referenced(rng: random.Random, media: Path) -> str:
    files = _files(media)
    target = rng.choice(files)
    kind = rng.choice(["delete", "folder", "devzero", "junk", "mutate", "mutate"])
    if kind == "delete":
        target.unlink()
    elif kind == "folder":
        target.unlink()
        target.mkdir()
    elif kind == "devzero":
        target.unlink()
        target.symlink_to("/dev/zero")
    elif kind == "junk":
        target.write_bytes(b"junk" * 10)
    else:
        return f"referenced {target.name}: {dicom_file(rng, target)}"
    return f"referenced {target.name}: {kind}"


DICOMDIR: list[tuple[int, Mutator]] = [
    (4, dicomdir_field),
    (2, dicomdir_bytes),
    (2, dicomdir_referenced),
    (1, series_junk),
    (1, series_duplicate),
]


# --- NIfTI ----------------------------------------------------------------------------------

NIFTI_FIELDS: list[tuple[str, int, str, list[Any]]] = [
    ("sizeof_hdr", 0, "i", [0, 540, 1543569408, -1, 347]),
    ("dim_info", 39, "b", [-1, 127]),
    ("dim[0]", 40, "h", [0, -1, 1, 2, 4, 5, 7, 8, 9, 32767, -32768]),
    *[(f"dim[{k}]", 40 + 2 * k, "h", [0, -1, 1, 2, 1000, 32767, -32768]) for k in range(1, 8)],
    ("intent_code", 68, "h", [1007, 2001, -1]),
    (
        "datatype",
        70,
        "h",
        [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 255, 32767, -1],
    ),
    ("bitpix", 72, "h", [0, 1, 7, 8, 16, 64, 128, -1]),
    ("pixdim[0] (qfac)", 76, "f", [0.0, -1.0, 2.0, NAN]),
    *[(f"pixdim[{k}]", 76 + 4 * k, "f", [NAN, INF, -INF, 0.0, -1.0, 1e38, 1e-38, -0.0]) for k in range(1, 8)],
    ("vox_offset", 108, "f", [0.0, 1.0, 347.0, 348.0, 351.0, 353.0, NAN, INF, -1.0, 1e10, 3.4e38, 1e6]),
    ("scl_slope", 112, "f", [NAN, INF, 0.0, -1.0, 1e38]),
    ("scl_inter", 116, "f", [NAN, INF, -1e38]),
    ("xyzt_units", 123, "B", [0, 255]),
    ("qform_code", 252, "h", [0, 1, 2, 5, -1, 32767]),
    ("sform_code", 254, "h", [0, 1, 2, 5, -1, 32767]),
    *[(f"quatern_{c}", 256 + 4 * k, "f", [NAN, INF, 1.0, 2.0, -5.0, 1e38]) for k, c in enumerate("bcd")],
    *[(f"qoffset_{c}", 268 + 4 * k, "f", [NAN, INF, 1e38]) for k, c in enumerate("xyz")],
    *[
        (f"srow_{r}[{k}]", 280 + 16 * i + 4 * k, "f", [NAN, INF, 0.0, 1e38])
        for i, r in enumerate("xyz")
        for k in range(4)
    ],
    ("magic", 344, "4s", [b"ni1\x00", b"n+2\x00", b"\x00\x00\x00\x00", b"n+1 "]),
]


def _inner(path: Path) -> tuple[bytes, bool]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data), True
    return data, False


def _write_inner(path: Path, data: bytes, gzipped: bool) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)


def nifti_header(rng: random.Random, path: Path) -> str:
    data, gzipped = _inner(path)
    buffer = bytearray(data)
    edits = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        name, offset, code, values = rng.choice(NIFTI_FIELDS)
        value = rng.choice(values)
        struct.pack_into("<" + code, buffer, offset, value)
        edits.append(f"{name}={_shown(value)}")
    _write_inner(path, bytes(buffer), gzipped)
    return "header: " + "; ".join(edits)


def inner_bytes(header: int = 1024) -> Mutator:
    """Bytes changed inside a gzip stream (then compressed again), or in a plain file."""

    def mutator(rng: random.Random, path: Path) -> str:
        data, gzipped = _inner(path)
        data, what = mutate_bytes(rng, data, header)
        _write_inner(path, data, gzipped)
        return f"{'inner ' if gzipped else ''}bytes: {what}"

    return mutator


NIFTI: list[tuple[int, Mutator]] = [(6, nifti_header), (3, inner_bytes(352)), (1, bytes_mutator())]


# --- MHA and NRRD: header text ---------------------------------------------------------------

DATA_FILES = [
    "/dev/zero",
    "/dev/urandom",
    "/nonexistent.raw",
    "../../../../etc/passwd",
    "LIST",
    "image%03d.raw 1 1000000 1",
    "",
    "LOCAL LOCAL",
]
MHA_VALUES: dict[str, list[str]] = {
    "NDims": ["0", "1", "2", "4", "10", "-1", "1000", "abc", ""],
    "DimSize": [
        "0 0 0",
        "-1 64 64",
        "64 64",
        "64 64 8 2",
        "65535 65535 65535",
        "100000 100000 1",
        "1000000000 1 1",
        "64 64 1000000",
        "nan 64 8",
        "abc",
        "1e9 1 1",
        "4294967296 1 1",
    ],
    "ElementSpacing": [
        "nan nan nan",
        "inf 1 1",
        "0 0 0",
        "-1 -1 -1",
        "1e308 1e308 1e308",
        "1 1",
        "abc",
        "1e-320 1 1",
    ],
    "ElementType": [
        "MET_UCHAR",
        "MET_CHAR",
        "MET_USHORT",
        "MET_INT",
        "MET_UINT",
        "MET_LONG_LONG",
        "MET_ULONG_LONG",
        "MET_FLOAT",
        "MET_DOUBLE",
        "MET_STRING",
        "MET_OTHER",
        "MET_NONE",
        "MET_UCHAR_ARRAY",
        "MET_FLOAT_MATRIX",
        "JUNK",
        "",
    ],
    "ElementNumberOfChannels": ["0", "2", "3", "4", "1000000", "-1"],
    "HeaderSize": ["-1", "0", "1000000000", "abc", "10"],
    "CompressedData": ["True", "False", "junk"],
    "CompressedDataSize": ["0", "1", "999999999999", "-5"],
    "BinaryDataByteOrderMSB": ["True", "False", "junk"],
    "TransformMatrix": [
        "0 0 0 0 0 0 0 0 0",
        "nan nan nan nan nan nan nan nan nan",
        "1 0 0 1 0 0 0 0 1",
        "inf 0 0 0 1 0 0 0 1",
        "1 0 0 0 1 0",
    ],
    "Offset": ["nan nan nan", "inf 0 0", "1e308 1e308 1e308", "0 0"],
    "ElementSize": ["nan nan nan", "0 0 0", "-1 -1 -1"],
    "ObjectType": ["Image", "Mesh", "Tube", "JUNK"],
    "AnatomicalOrientation": ["RAI", "???", "LLL", "ABC"],
    "BinaryData": ["False", "True"],
    "ElementDataFile": DATA_FILES,
}
NRRD_VALUES: dict[str, list[str]] = {
    "type": [
        "uchar",
        "signed char",
        "short",
        "ushort",
        "int",
        "uint",
        "int64",
        "uint64",
        "float",
        "double",
        "block",
        "junk",
        "",
    ],
    "dimension": ["0", "1", "2", "4", "16", "17", "-1", "abc"],
    "sizes": [
        "0 0 0",
        "-1 64 64",
        "64 64",
        "64 64 8 2",
        "65535 65535 65535",
        "1000000000 1 1",
        "64 64 1000000",
        "abc",
    ],
    "space directions": [
        "(nan,0,0) (0,nan,0) (0,0,nan)",
        "(0,0,0) (0,0,0) (0,0,0)",
        "(1,0,0) (1,0,0) (1,0,0)",
        "(inf,0,0) (0,1,0) (0,0,1)",
        "none (0,1,0) (0,0,1)",
        "(1,0) (0,1) (0,0,1)",
        "(1e308,0,0) (0,1e308,0) (0,0,1e308)",
        "junk",
    ],
    "space origin": ["(nan,nan,nan)", "(inf,0,0)", "(1e308,1e308,1e308)", "(0,0)", "junk"],
    "encoding": ["raw", "gzip", "bzip2", "hex", "ascii", "text", "zrl", "junk"],
    "endian": ["big", "little", "junk"],
    "kinds": [
        "domain domain",
        "RGB-color domain domain",
        "3-vector domain domain",
        "domain domain domain domain",
        "junk junk junk",
    ],
    "space": ["left-posterior-superior", "right-anterior-superior", "scanner-xyz", "3D-right-handed", "junk"],
    "data file": DATA_FILES,
    "line skip": ["1", "1000000", "-1"],
    "byte skip": ["-1", "1000000000", "5"],
    "spacings": ["nan nan nan", "0 0 0", "-1 1 1"],
    "measurement frame": ["(nan,0,0) (0,1,0) (0,0,1)", "(0,0,0) (0,0,0) (0,0,0)"],
    "space dimension": ["2", "3", "4", "0"],
}


def _split_text_header(data: bytes, nrrd: bool) -> tuple[list[bytes], bytes]:
    if nrrd:
        end = data.find(b"\n\n")
        end = len(data) if end < 0 else end + 2
        return data[:end].rstrip(b"\n").split(b"\n"), data[end:]
    marker = data.find(b"ElementDataFile")
    end = data.find(b"\n", marker) + 1 if marker >= 0 else len(data)
    return data[:end].rstrip(b"\n").split(b"\n"), data[end:]


def _join_text_header(lines: list[bytes], body: bytes, nrrd: bool) -> bytes:
    return b"\n".join(lines) + (b"\n\n" if nrrd else b"\n") + body


def text_header(nrrd: bool) -> Mutator:
    values, separator = (NRRD_VALUES, b": ") if nrrd else (MHA_VALUES, b" = ")

    def mutator(rng: random.Random, path: Path) -> str:
        lines, body = _split_text_header(path.read_bytes(), nrrd)
        choice = rng.choice(["set", "set", "set", "set", "delete", "duplicate", "swap"])
        if choice == "set" or len(lines) < 3:
            edits = []
            for _ in range(rng.choice([1, 1, 2])):
                key = rng.choice(list(values))
                value = rng.choice(values[key])
                line = key.encode() + separator + value.encode()
                index = next(
                    (
                        i
                        for i, text in enumerate(lines)
                        if text.split(separator.strip())[0].strip() == key.encode()
                    ),
                    None,
                )
                if index is None:
                    lines.insert(len(lines) - (0 if nrrd else 1), line)
                else:
                    lines[index] = line
                edits.append(f"{key}={value!r}")
            what = "set " + "; ".join(edits)
        elif choice == "delete":
            index = rng.randrange(1, len(lines))
            what = f"delete line {lines[index][:40]!r}"
            del lines[index]
        elif choice == "duplicate":
            index = rng.randrange(1, len(lines))
            lines.insert(rng.randrange(1, len(lines)), lines[index])
            what = f"duplicate line {lines[index][:40]!r}"
        else:
            i, j = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            what = f"swap lines {i} and {j}"
        path.write_bytes(_join_text_header(lines, body, nrrd))
        return f"header: {what}"

    return mutator


def text_body(nrrd: bool) -> Mutator:
    def mutator(rng: random.Random, path: Path) -> str:
        lines, body = _split_text_header(path.read_bytes(), nrrd)
        body, what = mutate_bytes(rng, body, header=64)
        path.write_bytes(_join_text_header(lines, body, nrrd))
        return f"data: {what}"

    return mutator


MHA: list[tuple[int, Mutator]] = [(6, text_header(False)), (2, text_body(False)), (2, bytes_mutator(512))]
NRRD: list[tuple[int, Mutator]] = [(6, text_header(True)), (2, text_body(True)), (2, bytes_mutator(512))]


# --- raster images ---------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk."""
    chunks, at = [], 8
    while at + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        chunks.append((at, kind, length))
        at += 12 + length
        if kind == b"IEND":
            break
    return chunks


def raster_header(rng: random.Random, path: Path) -> str:
    data = bytearray(path.read_bytes())
    suffix = path.suffix.lower()
    if suffix == ".png":
        chunks = _png_chunks(bytes(data))
        if rng.random() < 0.7 and chunks and chunks[0][1] == b"IHDR":
            at = chunks[0][0]
            field, offset, code, values = rng.choice(
                [
                    ("width", 8, ">I", [0, 1, 65535, 2**31 - 1, 2**32 - 1, 100000]),
                    ("height", 12, ">I", [0, 1, 65535, 2**31 - 1, 2**32 - 1, 100000]),
                    ("bit depth", 16, ">B", [0, 1, 2, 3, 4, 8, 16, 32, 255]),
                    ("colour type", 17, ">B", [0, 1, 2, 3, 4, 5, 6, 7, 255]),
                    ("interlace", 20, ">B", [0, 1, 2]),
                ]
            )
            value = rng.choice(values)
            struct.pack_into(code, data, at + offset, value)
            struct.pack_into(">I", data, at + 21, zlib.crc32(bytes(data[at + 4 : at + 21])))
            path.write_bytes(bytes(data))
            return f"PNG IHDR {field}={value} (CRC fixed)"
        at, kind, length = rng.choice(chunks) if chunks else (8, b"????", 0)
        new = rng.choice([0, 1, length + 1, 2**31 - 1, 2**32 - 1])
        struct.pack_into(">I", data, at, new)
        path.write_bytes(bytes(data))
        return f"PNG chunk {kind!r} length {length} -> {new}"
    if suffix in (".jpg", ".jpeg"):
        at = max(bytes(data).find(b"\xff\xc0"), bytes(data).find(b"\xff\xc2"))
        if at >= 0:
            field, offset, code, values = rng.choice(
                [
                    ("precision", 4, ">B", [0, 1, 8, 12, 16, 255]),
                    ("height", 5, ">H", [0, 1, 65535, 65500]),
                    ("width", 7, ">H", [0, 1, 65535, 65500]),
                    ("components", 9, ">B", [0, 2, 4, 255]),
                    ("segment length", 2, ">H", [0, 2, 65535]),
                ]
            )
            value = rng.choice(values)
            struct.pack_into(code, data, at + offset, value)
            path.write_bytes(bytes(data))
            return f"JPEG SOF {field}={value}"
    if suffix == ".bmp":
        field, offset, code, values = rng.choice(
            [
                ("width", 18, "<i", [0, -1, 2**31 - 1, 100000]),
                ("height", 22, "<i", [0, -1, -(2**31), 2**31 - 1]),
                ("bits", 28, "<H", [0, 1, 3, 16, 32, 64, 65535]),
                ("data offset", 10, "<I", [0, 2**32 - 1, 14]),
                ("colours", 46, "<I", [0, 2**32 - 1, 257]),
            ]
        )
        value = rng.choice(values)
        struct.pack_into(code, data, offset, value)
        path.write_bytes(bytes(data))
        return f"BMP {field}={value}"
    mutated, what = mutate_bytes(rng, bytes(data), header=256)
    path.write_bytes(mutated)
    return f"bytes: {what}"


RASTER: list[tuple[int, Mutator]] = [(5, bytes_mutator(256)), (4, raster_header)]


# --- InVesalius ------------------------------------------------------------------------------

PLIST_EDITS: list[tuple[str, list[Any]]] = [
    (
        "matrix.shape",
        [
            [8, 64],
            [0, 0, 0],
            [-1, 64, 64],
            [1000000, 1000000, 1000000],
            [8, 64, 64, 1],
            ["a", "b", "c"],
            [2**40, 1, 1],
            7,
            "8,64,64",
            [8, 64, 65],
        ],
    ),
    (
        "matrix.dtype",
        [
            "uint8",
            "float64",
            "object",
            "O",
            "S4",
            "V16",
            "<i2",
            ">i2",
            "junk",
            "int1024",
            "m8",
            "",
            0,
            "complex128",
            "float16",
            "U4",
            [["a", "<i2"]],
        ],
    ),
    ("matrix.filename", ["../matrix.dat", "/etc/passwd", "missing.dat", "", "main.plist", 5]),
    (
        "spacing",
        [
            [NAN, 1.0, 1.0],
            [0.0, 0.0, 0.0],
            [-1.0, 1.0, 1.0],
            [1e308, 1.0, 1.0],
            [1.0, 1.0],
            "abc",
            [INF, INF, INF],
            [1, 2, 3, 4],
        ],
    ),
    ("window_width", [NAN, INF, 0.0, -5.0, "abc"]),
    ("window_level", [NAN, -INF, "x"]),
    ("modality", [5, "", "MR"]),
    ("matrix", ["string", 5, []]),
]
PLIST_REMOVALS = ["matrix", "spacing", "matrix.shape", "matrix.dtype", "matrix.filename"]


def _inv3_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as archive:
        return [(m.name, archive.extractfile(m).read()) for m in archive.getmembers() if m.isfile()]


def _set_path(record: dict, dotted: str, value: Any, remove: bool = False) -> None:
    *parents, last = dotted.split(".")
    node = record
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
    if remove:
        node.pop(last, None)
    else:
        node[last] = value


def inv3_plist(rng: random.Random, path: Path) -> str:
    members = _inv3_members(path)
    plist_name = next(name for name, _ in members if name.endswith("main.plist"))
    project = plistlib.loads(dict(members)[plist_name])
    if rng.random() < 0.2:
        key = rng.choice(PLIST_REMOVALS)
        _set_path(project, key, None, remove=True)
        what = f"remove {key}"
    elif rng.random() < 0.05:
        project = [project]
        what = "project is a list"
    else:
        key, values = rng.choice(PLIST_EDITS)
        value = rng.choice(values)
        _set_path(project, key, value)
        what = f"{key}={_shown(value)}"
    write_inv3(
        path, {name: (plistlib.dumps(project) if name == plist_name else data) for name, data in members}
    )
    return f"plist: {what}"


def inv3_members(rng: random.Random, path: Path) -> str:
    members = dict(_inv3_members(path))
    matrix_name = next(name for name in members if name.endswith("matrix.dat"))
    plist_name = next(name for name in members if name.endswith("main.plist"))
    kind = rng.choice(
        [
            "short-matrix",
            "long-matrix",
            "no-matrix",
            "no-plist",
            "symlink-matrix",
            "dir-matrix",
            "plain-tar",
            "bz2-tar",
            "huge-member",
            "plist-bytes",
            "duplicate-plist",
        ]
    )
    if kind == "short-matrix":
        members[matrix_name] = members[matrix_name][: rng.randrange(len(members[matrix_name]))]
    elif kind == "long-matrix":
        members[matrix_name] += b"\x00" * rng.choice([1, 2, 4096])
    elif kind == "no-matrix":
        del members[matrix_name]
    elif kind == "no-plist":
        del members[plist_name]
    elif kind == "plist-bytes":
        members[plist_name], what = mutate_bytes(rng, members[plist_name], header=len(members[plist_name]))
        kind = f"plist bytes: {what}"
    elif kind == "duplicate-plist":
        members = {plist_name: plistlib.dumps({"matrix": 1}), **members}
    if kind in ("symlink-matrix", "dir-matrix", "plain-tar", "bz2-tar", "huge-member"):
        path.write_bytes(_special_tar(rng, kind, members, matrix_name))
        return f"archive: {kind}"
    write_inv3(path, members)
    return f"archive: {kind}"


def _special_tar(rng: random.Random, kind: str, members: dict[str, bytes], matrix_name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 0, 0o644
            if name == matrix_name and kind == "symlink-matrix":
                info.type, info.linkname = (
                    tarfile.SYMTYPE,
                    rng.choice(["/etc/passwd", "/dev/zero", "../../x"]),
                )
                archive.addfile(info)
                continue
            if name == matrix_name and kind == "dir-matrix":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    if kind == "huge-member":  # the first header claims 8 GB; its checksum made right again
        header = bytearray(raw[:512])
        header[124:136] = b"\x80" + (8 * 2**30).to_bytes(11, "big")
        header[148:156] = b" " * 8
        header[148:155] = f"{sum(header):06o}\x00".encode()
        raw = bytes(header) + raw[512:]
    if kind == "plain-tar":
        return raw
    if kind == "bz2-tar":
        return bz2.compress(raw)
    return gzip.compress(raw, mtime=0)


INV3: list[tuple[int, Mutator]] = [(5, inv3_plist), (3, inv3_members), (2, bytes_mutator(512))]


# --- JSON: model configs and cards -----------------------------------------------------------

JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    0,
    1.5,
    1e308,
    NAN,
    INF,
    -INF,
    "",
    "x" * 1000,
    [],
    {},
    [1] * 5,
    [10**9] * 3,
    2**63,
    -(2**63),
    10**30,
    "line\nbreak\u2028",
    {"kind": "window"},
]
# marshal-style bytecode as Keras 2 saved it (base64; only its first byte is checked)
LAMBDA_CODE = "4wEAAAAAAAAAAAAAAAEAAAADAAAA8wQAAACFAFMAqQFOqQCpAdoBeHIBAAAAcgEAAAD6AfpzAgAAAAQA"
HOSTILE_LAYERS: list[dict[str, Any]] = [
    {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "function": {
                "class_name": "__lambda__",
                "config": {"code": LAMBDA_CODE, "defaults": None, "closure": None},
            }
        },
    },
    {
        "module": "keras.layers",
        "class_name": "TFSMLayer",
        "config": {"filepath": "/nonexistent/saved_model", "call_endpoint": "serve"},
    },
    {"module": "keras.layers", "class_name": "StringLookup", "config": {"vocabulary": "/etc/passwd"}},
    {"module": "keras.layers", "class_name": "TextVectorization", "config": {"vocabulary": "/etc/hostname"}},
    {"module": "os", "class_name": "system", "config": {"command": "true"}},
    {"module": "builtins", "class_name": "function", "config": "eval"},
    {"module": "keras.utils", "class_name": "function", "config": "get_file"},
    {"module": "keras_evil.layers", "class_name": "Dense", "config": {"units": 2}},
]
KEY_VALUES: dict[str, list[Any]] = {
    "filters": [0, -1, 2**31, 10**6, 2**62, 1.5, "16", None],
    "units": [0, -1, 2**31, 10**6, 10**9, "2", None],
    "kernel_size": [[0, 0], [-1, -1], [10**6, 10**6], [3], [3, 3, 3, 3], 0, [2**31, 1]],
    "pool_size": [[0, 0], [10**6, 10**6], -1],
    "strides": [[0, 0], [-1, -1], [10**6, 1]],
    "batch_shape": [
        [None, 10**9, 10**9, 1],
        [],
        [None, -1, -1, 1],
        [None, 0, 0, 0],
        [None],
        "abc",
        [None, 2**31, 2**31, 2**31],
    ],
    "dtype": [
        "float64",
        "string",
        "junk",
        "int8",
        None,
        {"class_name": "DTypePolicy", "config": {"name": "junk"}},
    ],
    "rate": [NAN, -1.0, 2.0, INF],
    "axis": [100, -100, [0, 1, 2, 3, 4, 5]],
    "padding": ["junk", "causal", None],
    "activation": ["junk", "eval", "exec", {"module": "os", "class_name": "function", "config": "system"}],
    "class_name": [
        "Lambda",
        "TFSMLayer",
        "Conv3D",
        "Dense",
        "",
        "Functional",
        "Sequential",
        "__lambda__",
        "Model",
        "InputLayer",
        "Junk",
    ],
    "module": ["os", "subprocess", "keras.src.junk", "", None],
    "registered_name": ["builtins>eval", "Custom>Layer", ""],
    "inbound_nodes": [
        [],
        "junk",
        [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["nowhere", 0, 0]}}]}],
    ],
    "keras_history": [["nowhere", 0, 0], ["slice", 99, 99], [], ["slice", -1, -1]],
    "momentum": [NAN, INF],
    "epsilon": [0.0, -1.0, NAN],
    "depth_multiplier": [0, 10**6],
    "groups": [0, -1, 1000],
    "dilation_rate": [[0, 0], [10**6, 10**6]],
    "size": [[0, 0], [10**5, 10**5]],
    "input_shape": [[None, 10**9, 1], [], "abc"],
}


def _nodes(tree: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (path, value) in a JSON tree, iteratively (configs nest deep)."""
    found, stack = [], [(path, tree)]
    while stack:
        where, node = stack.pop()
        found.append((where, node))
        if isinstance(node, dict):
            stack.extend(((*where, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*where, index), value) for index, value in enumerate(node))
    return found


def _assign(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def mutate_model_config(rng: random.Random, config: Any) -> tuple[Any, str]:
    nodes = _nodes(config)
    choice = rng.random()
    if choice < 0.5:
        keyed = [(p, v) for p, v in nodes if p and p[-1] in KEY_VALUES]
        if keyed:
            where, _ = rng.choice(keyed)
            value = rng.choice(KEY_VALUES[where[-1]])
            return _assign(config, where, value), f"config {_dotted(where)}={_shown(value)}"
    if choice < 0.7:
        layers = [
            (p, v)
            for p, v in nodes
            if isinstance(v, dict) and "class_name" in v and p and p[-2:-1] == ("layers",)
        ]
        if layers:
            where, layer = rng.choice(layers)
            hostile = json.loads(json.dumps(rng.choice(HOSTILE_LAYERS)))
            hostile["config"] = (
                {**(layer.get("config") or {}), **hostile["config"]}
                if isinstance(hostile["config"], dict)
                else hostile["config"]
            )
            hostile["name"] = layer.get("name")
            hostile["inbound_nodes"] = layer.get("inbound_nodes", [])
            return _assign(
                config, where, hostile
            ), f"config {_dotted(where)} -> hostile {hostile['class_name']}"
    if choice < 0.8:
        containers = [(p, v) for p, v in nodes if isinstance(v, dict) and v]
        where, node = rng.choice(containers)
        key = rng.choice(list(node))
        del node[key]
        return config, f"config remove {_dotted((*where, key))}"
    where, _ = rng.choice(nodes[1:] or nodes)
    value = rng.choice(JSON_VALUES)
    return _assign(config, where, value), f"config {_dotted(where)}={_shown(value)}"


def _dotted(path: tuple) -> str:
    text = ".".join(str(p) for p in path)
    return text if len(text) <= 90 else "…" + text[-89:]


# --- .keras archives -------------------------------------------------------------------------


def _zip_members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _write_zip(path: Path, members: list[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, compression in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, data)


def keras_config(rng: random.Random, path: Path) -> str:
    members = _zip_members(path)
    out, what = [], ""
    for info, data in members:
        if info.filename == "config.json":
            config, what = mutate_model_config(rng, json.loads(data))
            data = json.dumps(config).encode()
        out.append((info.filename, data, info.compress_type))
    _write_zip(path, out)
    return what


def keras_sizes(rng: random.Random, path: Path) -> str:
    """Sizes in the zip's local and central headers (or its end record) made to lie."""
    data = bytearray(path.read_bytes())
    central = [at for at in range(len(data) - 4) if data[at : at + 4] == b"PK\x01\x02"]
    local = [at for at in range(len(data) - 4) if data[at : at + 4] == b"PK\x03\x04"]
    end = bytes(data).rfind(b"PK\x05\x06")
    values = [0, 1, 2**31, 0xFFFFFFFF, 3 * 2**30, 17 * 2**20, rng.randrange(2**32)]
    choice = rng.choice(["central", "central", "local", "end"])
    if choice == "central" and central:
        at = rng.choice(central)
        field, offset = rng.choice(
            [("uncompressed size", 24), ("compressed size", 20), ("local offset", 42), ("name length", 28)]
        )
        value = rng.choice(values) if field != "name length" else rng.choice([0, 1, 0xFFFF])
        struct.pack_into("<H" if field == "name length" else "<I", data, at + offset, value)
    elif choice == "local" and local:
        at = rng.choice(local)
        field, offset = rng.choice([("uncompressed size", 22), ("compressed size", 18), ("method", 8)])
        value = rng.choice([0, 8, 12, 14, 99]) if field == "method" else rng.choice(values)
        struct.pack_into("<H" if field == "method" else "<I", data, at + offset, value)
    elif end >= 0:
        field, offset = rng.choice([("entries", 10), ("directory size", 12), ("directory offset", 16)])
        value = rng.choice([0, 1, 0xFFFF]) if field == "entries" else rng.choice(values)
        struct.pack_into("<H" if field == "entries" else "<I", data, end + offset, value)
    else:
        return "sizes: no zip structure"
    path.write_bytes(bytes(data))
    return f"zip {choice} {field}={value}"


def keras_members(rng: random.Random, path: Path) -> str:
    members = [(info.filename, data, info.compress_type) for info, data in _zip_members(path)]
    kind = rng.choice(
        [
            "remove",
            "evil-name",
            "duplicate",
            "bomb",
            "big-config",
            "weights-bytes",
            "weights-bytes",
            "empty-config",
        ]
    )
    if kind == "remove":
        name = rng.choice([m[0] for m in members])
        members = [m for m in members if m[0] != name]
        kind = f"remove {name}"
    elif kind == "evil-name":
        name = rng.choice(["../evil.txt", "/evil.txt", "C:\\evil.txt", "assets/../../evil"])
        members.append((name, b"x", zipfile.ZIP_STORED))
        kind = f"add member {name!r}"
    elif kind == "duplicate":
        members.append(rng.choice(members))
    elif kind == "bomb":
        members.append(("assets/zeros.bin", b"\x00" * (64 * 2**20), zipfile.ZIP_DEFLATED))
    elif kind == "big-config":
        members = [
            (n, (d + b" " * (17 * 2**20)) if n == "config.json" else d, zipfile.ZIP_DEFLATED)
            for n, d, _ in members
        ]
    elif kind == "empty-config":
        members = [(n, b"" if n == "config.json" else d, c) for n, d, c in members]
    else:
        new = []
        for name, data, compression in members:
            if name.endswith(".h5"):
                data, what = mutate_bytes(rng, data, header=4096)
                kind = f"weights bytes: {what}"
            new.append((name, data, compression))
        members = new
    _write_zip(path, members)
    return f"members: {kind}"


KERAS: list[tuple[int, Mutator]] = [
    (5, keras_config),
    (2, keras_sizes),
    (3, keras_members),
    (2, bytes_mutator(512)),
]


# --- .h5 models ------------------------------------------------------------------------------


def h5_config(rng: random.Random, path: Path) -> str:
    import h5py

    with h5py.File(path, "r+") as h5:
        raw = h5.attrs["model_config"]
        config, what = mutate_model_config(rng, json.loads(raw))
        h5.attrs["model_config"] = json.dumps(config)
    return what


def h5_structure(rng: random.Random, path: Path) -> str:
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as h5:
        datasets: list[str] = []
        h5.visit(lambda name: datasets.append(name) if isinstance(h5[name], h5py.Dataset) else None)
        kind = rng.choice(
            ["drop-dataset", "reshape-dataset", "retype-dataset", "attrs", "no-config", "config-bytes"]
        )
        if kind in ("drop-dataset", "reshape-dataset", "retype-dataset") and datasets:
            name = rng.choice(datasets)
            shape = h5[name].shape
            del h5[name]
            if kind == "reshape-dataset":
                new_shape = rng.choice([(0,), (1,), tuple(s + 1 for s in shape), (3, 3, 3, 3, 3), (10**5,)])
                h5.create_dataset(name, data=np.zeros(new_shape, dtype=np.float32))
                return f"h5 {name} {shape} -> {new_shape}"
            if kind == "retype-dataset":
                h5.create_dataset(name, data=np.array([b"junk"] * 3))
                return f"h5 {name} -> strings"
            return f"h5 remove {name}"
        if kind == "attrs":
            key = rng.choice(["keras_version", "backend", "layer_names", "weight_names"])
            value = rng.choice(["", "1.0.0", "junk", "99.0", b"\xff\xfe"])
            targets = [h5, *[h5[n] for n in ("model_weights",) if n in h5]]
            target = rng.choice(targets)
            target.attrs[key] = np.void(value) if isinstance(value, bytes) else value
            return f"h5 attr {key}={value!r}"
        if kind == "no-config":
            del h5.attrs["model_config"]
            return "h5 remove model_config"
        h5.attrs["model_config"] = rng.choice(
            [
                b"\xff\xfe not json",
                b"",
                b"[" * 100000,
                b'{"class_name": 5}',
                b'{"class_name": "Functional", "config": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            ]
        )
        return "h5 model_config -> junk"


H5: list[tuple[int, Mutator]] = [(5, h5_config), (2, h5_structure), (3, bytes_mutator(2048))]


# --- model cards ------------------------------------------------------------------------------

CARD_KEYS = [
    "medvis_card",
    "input_mode",
    "input_shape",
    "intensity",
    "intensity.kind",
    "intensity.center",
    "intensity.width",
    "intensity.scale",
    "intensity.offset",
    "resize",
    "task",
    "class_names",
    "output",
    "output_activation",
    "description",
]
CARD_VALUES: list[Any] = [
    *JSON_VALUES,
    [8192, 8192, 8192, 1],
    [0, 128, 1],
    [128, 128, 1.5],
    [True, 1, 1],
    "2.5d",
    "3d",
    "window",
    [None, 128, 1],
    {"kind": "window", "width": -1},
    "x" * 300000,
]


def card_json(rng: random.Random, path: Path) -> str:
    card = json.loads(path.read_text())
    choice = rng.random()
    if choice < 0.7:
        key = rng.choice(CARD_KEYS)
        value = rng.choice(CARD_VALUES)
        _set_path(card, key, value) if "." in key else card.__setitem__(key, value)
        what = f"{key}={_shown(value)}"
    elif choice < 0.85:
        key = rng.choice(CARD_KEYS)
        _set_path(card, key, None, remove=True)
        what = f"remove {key}"
    elif choice < 0.95:
        key = rng.choice(["extra", "Input_Mode", "intensity.extra", "\u202e"])
        _set_path(card, key, 1) if "." in key else card.__setitem__(key, 1)
        what = f"unknown entry {key!r}"
    else:
        card = rng.choice([[], "card", 5, None, [card]])
        what = f"card is {type(card).__name__}"
    path.write_text(json.dumps(card))
    return f"json: {what}"


def card_text(rng: random.Random, path: Path) -> str:
    text = path.read_bytes()
    kind = rng.choice(["bom", "deep", "huge", "latin1", "number-digits", "duplicate-key"])
    if kind == "bom":
        text = b"\xef\xbb\xbf" + text
    elif kind == "deep":
        text = b"[" * 200000 + b"]" * 200000
    elif kind == "huge":
        text = text[:-1] + b', "description": "' + b"x" * (2**20 + 10) + b'"}'
    elif kind == "latin1":
        text = text.replace(b"2d", b"2d\xe9", 1).replace(b"3d", b"3d\xe9", 1)
    elif kind == "number-digits":
        text = text.replace(b"[", b"[" + b"9" * 5000 + b", ", 1)
    else:
        text = text[:-1] + b', "input_mode": "junk"}'
    path.write_bytes(text)
    return f"text: {kind}"


CARD: list[tuple[int, Mutator]] = [(6, card_json), (2, card_text), (2, bytes_mutator(4096))]


# --- families ---------------------------------------------------------------------------------

FAMILY_MUTATORS: dict[str, list[tuple[int, Mutator]]] = {
    "dicom": DICOM_FILE,
    "dicom_series": [(1, dicom_series)],
    "dicomdir": DICOMDIR,
    "nifti": NIFTI,
    "mha": MHA,
    "nrrd": NRRD,
    "raster": RASTER,
    "inv3": INV3,
    "keras": KERAS,
    "h5": H5,
    "card": CARD,
}


def _choose(rng: random.Random, weighted: list[tuple[int, Mutator]]) -> Mutator:
    return rng.choices([m for _, m in weighted], weights=[w for w, _ in weighted])[0]


def copy_seed(seed: Seed, folder: Path) -> Path:
    """A fresh copy of the seed in `folder` (a series folder is copied whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / seed.path.name
    if seed.path.is_dir():
        shutil.copytree(seed.path, target, symlinks=True)
    else:
        shutil.copy(seed.path, target)
    return target


def mutate(family: str, seed: Seed, rng: random.Random, folder: Path, *, identity: bool) -> tuple[Path, str]:
    """The input to load and what was done to it; `identity` loads the seed unchanged."""
    copy = copy_seed(seed, folder)
    if identity:
        what = "none (the seed as is)"
    else:
        try:
            what = _choose(rng, FAMILY_MUTATORS[family])(rng, copy)
        except NOT_FAILURES:
            raise
        except BaseException as error:  # a seed damaged earlier (a decoder may panic): load what there is
            what = f"mutator stopped ({type(error).__name__}: {str(error)[:80]})"
    if family == "dicomdir" and rng.random() < 0.5:
        return copy / "DICOMDIR", what + " [loaded as DICOMDIR]"
    return copy, what
