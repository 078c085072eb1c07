"""DICOM edited at the byte level: every element located in the file, values, VRs and lengths
rewritten in place, without pydicom (which would validate, normalise or refuse the edit).

Handles the file meta group and an explicit VR little endian data set, which is what every seed
uses (the compressed transfer syntaxes are all explicit VR little endian), nested sequences
included. An implicit VR or big endian data set is walked up to the first element that does not
parse, which is enough for the header-level edits the fuzzer makes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

# VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ALL_VRS = [
    b"AE",
    b"AS",
    b"AT",
    b"CS",
    b"DA",
    b"DS",
    b"DT",
    b"FD",
    b"FL",
    b"IS",
    b"LO",
    b"LT",
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"PN",
    b"SH",
    b"SL",
    b"SQ",
    b"SS",
    b"ST",
    b"SV",
    b"TM",
    b"UC",
    b"UI",
    b"UL",
    b"UN",
    b"UR",
    b"US",
    b"UT",
    b"UV",
    b"ZZ",
    b"\x00\x00",
]
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class Element:
    tag: int  # (group << 16) | element
    vr: bytes
    offset: int  # of the tag
    header: int  # bytes of tag + VR + length
    length: int  # as written (UNDEFINED for an undefined length)
    depth: int  # 0 at the top level
    # (offset, size) of the length fields of the defined-length sequences and items around it
    parents: tuple[tuple[int, int], ...] = ()

    @property
    def value_offset(self) -> int:
        return self.offset + self.header

    @property
    def length_offset(self) -> int:
        return self.offset + (8 if self.vr in LONG_VRS else 6)

    @property
    def length_size(self) -> int:
        return 4 if self.vr in LONG_VRS else 2


def walk(data: bytes) -> list[Element]:
    """The elements of a Part 10 file (meta and data set) in file order; [] when not one."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return []
    found: list[Element] = []
    position, depth = 132, 0
    ends: list[tuple[int, int, int]] = []  # (end, length offset, size) of open defined-length containers
    while position + 8 <= len(data):
        while ends and position >= ends[-1][0]:
            ends.pop()
            depth = max(depth - 1, 0)
        group, number = struct.unpack_from("<HH", data, position)
        tag = (group << 16) | number
        if group == 0xFFFE:  # items and delimiters: tag + 4-byte length, no VR
            (length,) = struct.unpack_from("<I", data, position + 4)
            if tag == ITEM:
                depth += 1
                if length != UNDEFINED:
                    ends.append((position + 8 + length, position + 4, 4))
            elif tag in (ITEM_END, SEQUENCE_END):
                depth = max(depth - 1, 0)
            position += 8
            continue
        vr = data[position + 4 : position + 6]
        if not (len(vr) == 2 and vr.isalpha() and vr.isupper()):
            break  # implicit VR, big endian or damaged: stop here
        if vr in LONG_VRS:
            if position + 12 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, position + 8)
            header = 12
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            header = 8
        parents = tuple((at, size) for _, at, size in ends)
        found.append(Element(tag, vr, position, header, length, depth, parents))
        if vr == b"SQ":
            depth += 1
            if length != UNDEFINED:
                ends.append((position + header + length, position + 8, 4))
            position += header
            continue
        if length == UNDEFINED:  # encapsulated pixel data: fragments follow, and nothing else
            break
        position += header + length
    return found


def find(data: bytes, tag: int) -> list[Element]:
    return [e for e in walk(data) if e.tag == tag]


def encode(vr: bytes, value: object) -> bytes:
    """`value` as the bytes of an element of `vr`, padded to an even length."""
    if isinstance(value, bytes):
        raw = value
    elif vr in (b"US", b"SS", b"UL", b"SL", b"FL", b"FD", b"UV", b"SV") and not isinstance(value, str):
        values = value if isinstance(value, list | tuple) else [value]
        code = {
            b"US": "H",
            b"SS": "h",
            b"UL": "I",
            b"SL": "i",
            b"FL": "f",
            b"FD": "d",
            b"UV": "Q",
            b"SV": "q",
        }[vr]
        if code in "HhIiQq":
            limit = 8 * struct.calcsize(code)
            values = [int(v) % (1 << limit) if code.isupper() else int(v) for v in values]
            values = [_wrap_signed(v, limit) if not code.isupper() else v for v in values]
        raw = b"".join(struct.pack("<" + code, v) for v in values)
    else:
        values = value if isinstance(value, list | tuple) else [value]
        raw = "\\".join(_text(v) for v in values).encode("latin-1", "replace")
    if len(raw) % 2:
        raw += b"\x00" if vr in (b"UI", b"OB", b"UN") else b" "
    return raw


def _wrap_signed(value: int, bits: int) -> int:
    value %= 1 << bits
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _text(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def element_bytes(tag: int, vr: bytes, value: bytes) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value) & 0xFFFF) + value


def replace_value(data: bytes, element: Element, value: bytes) -> bytes:
    """The file with `element`'s value replaced (its length field rewritten, containers not)."""
    if element.length == UNDEFINED:
        return data
    end = element.value_offset + element.length
    new = data[: element.offset] + element_bytes(element.tag, element.vr, value) + data[end:]
    new = _grow_parents(new, element, len(new) - len(data))
    return _fix_meta_length(new) if element.tag >> 16 == 0x0002 else new


def _grow_parents(data: bytes, element: Element, delta: int) -> bytes:
    """The sequences and items around `element` told that it grew by `delta` bytes."""
    if not delta:
        return data
    buffer = bytearray(data)
    for at, size in element.parents:
        code = "<I" if size == 4 else "<H"
        (length,) = struct.unpack_from(code, buffer, at)
        struct.pack_into(code, buffer, at, (length + delta) % (1 << (8 * size)))
    return bytes(buffer)


def set_value(data: bytes, tag: int, vr: bytes, value: object, *, which: int | None = None) -> bytes:
    """Every occurrence of `tag` (or occurrence number `which`) set to `value`; a top-level
    element is inserted in tag order when the file has none."""
    matches = find(data, tag)
    if not matches:
        return insert_element(data, tag, vr, encode(vr, value))
    targets = matches if which is None else [matches[which % len(matches)]]
    # From the end backwards, so the earlier offsets stay valid.
    for element in sorted(targets, key=lambda e: e.offset, reverse=True):
        data = replace_value(data, element, encode(element.vr, value))
    return data


def insert_element(data: bytes, tag: int, vr: bytes, value: bytes) -> bytes:
    elements = [e for e in walk(data) if e.depth == 0]
    if not elements:
        return data
    after = next((e for e in elements if e.tag > tag and (e.tag >> 16) != 0x0002), None)
    position = after.offset if after is not None else len(data)
    if after is None and elements[-1].length != UNDEFINED:
        position = elements[-1].value_offset + elements[-1].length
    return data[:position] + element_bytes(tag, vr, value) + data[position:]


def remove_element(data: bytes, element: Element) -> bytes:
    if element.length == UNDEFINED or element.vr == b"SQ":
        end = element.offset + element.header
    else:
        end = element.value_offset + element.length
    return _grow_parents(data[: element.offset] + data[end:], element, element.offset - end)


def set_vr(data: bytes, element: Element, vr: bytes) -> bytes:
    """Only the two VR bytes changed: a short-form VR turned long (or back) misreads the rest."""
    at = element.offset + 4
    return data[:at] + vr[:2].ljust(2, b"\x00") + data[at + 2 :]


def set_length(data: bytes, element: Element, length: int) -> bytes:
    at, size = element.length_offset, element.length_size
    packed = struct.pack("<I", length & 0xFFFFFFFF) if size == 4 else struct.pack("<H", length & 0xFFFF)
    return data[:at] + packed + data[at + size :]


def _fix_meta_length(data: bytes) -> bytes:
    """File Meta Information Group Length made true again after a meta element changed."""
    elements = walk(data)
    group_length = next((e for e in elements if e.tag == 0x00020000), None)
    meta = [e for e in elements if e.tag >> 16 == 0x0002 and e.tag != 0x00020000]
    if group_length is None or not meta or group_length.length != 4:
        return data
    end = meta[-1].value_offset + meta[-1].length
    total = end - (group_length.value_offset + 4)
    at = group_length.value_offset
    return data[:at] + struct.pack("<I", total) + data[at + 4 :]
