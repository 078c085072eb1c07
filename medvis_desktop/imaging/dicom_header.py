"""Reading an untrusted DICOM file's header, and checking it against the bytes it really holds,
before dicom.py makes frames of it or decodes any pixel (see dicom.py and checks.py)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.filereader import read_partial
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import UID, JPEG2000TransferSyntaxes

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks

PIXEL_DATA_TAGS = (Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))
UNDEFINED_LENGTH = 0xFFFFFFFF
BITS_ALLOCATED = (1, 8, 16, 32, 64)
MAX_SAMPLES_PER_PIXEL = 4
MAX_ROWS_COLUMNS = 65535
# A JPEG 2000 codestream opens with SOC then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz (big endian).
J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
J2K_SIZ_BYTES = 4 + 2 + 2 + 4 * 4
# An element read this many times in a row is a run of zeros (a hole), not a header.
MAX_REPEATS = 2


def read_header(
    path: Path,
    budget: int,
    *,
    stop_before_pixels: bool = True,
    specific_tags: list | None = None,
    defer_size: int | None = None,
) -> Dataset:
    """pydicom's dcmread, bounded for untrusted files, each value decoded now (unless deferred).

    A file larger than the memory budget is refused unread; the File Meta group must follow
    'DICM' (else pydicom reads whatever follows as a command set, gigabytes of a sparse hole);
    an element read again and again (a run of zeros) ends the read. Values are decoded here so
    that a damaged one (unknown VR, wrong length) fails in the scan, which skips the file.
    """
    checks.file_size(path.stat().st_size, budget)
    last: list[Any] = [None, 0]

    def stop(tag: Any, vr: str | None, length: int) -> bool:
        last[1] = last[1] + 1 if tag == last[0] else 1
        last[0] = tag
        if last[1] > MAX_REPEATS:
            raise checks.HeaderError(f"element {tag} repeats: the rest of the file is not a header")
        return stop_before_pixels and tag in PIXEL_DATA_TAGS

    with path.open("rb") as handle:
        handle.seek(128)
        if handle.read(6)[4:] != b"\x02\x00":
            raise checks.HeaderError("no File Meta Information after the 'DICM' prefix")
        handle.seek(0)
        ds = read_partial(handle, stop, defer_size=defer_size, specific_tags=specific_tags)
    if defer_size is None:
        ds.file_meta.walk(lambda _ds, _element: None)
        ds.walk(lambda _ds, _element: None)
    return ds


DIRECTORY_FIRST = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"
DIRECTORY_NEXT = "OffsetOfTheNextDirectoryRecord"
DIRECTORY_LOWER = "OffsetOfReferencedLowerLevelDirectoryEntity"


def check_record_links(dicomdir: Dataset) -> None:
    """Each directory record is reached once: offsets pointing back would loop pydicom's walk."""
    records = {record.seq_item_tell: record for record in dicomdir.get("DirectoryRecordSequence") or []}
    pending = [dicomdir.get(DIRECTORY_FIRST)]
    seen: set[int] = set()
    while pending:
        offset = pending.pop()
        if not offset or offset not in records:
            continue  # none, or dangling: pydicom refuses a dangling offset itself
        if offset in seen:
            raise checks.HeaderError(f"directory record at offset {offset} is linked twice (a loop)")
        seen.add(offset)
        pending += [records[offset].get(DIRECTORY_NEXT), records[offset].get(DIRECTORY_LOWER)]


def check_pixel_header(ds: Dataset, path: Path, budget: int) -> int:
    """The number of frames, once the declared pixel size is checked against the file and budget.

    Runs on the header alone, before any frame object is made or any pixel is decoded, so that
    a header claiming a million frames or 65535² pixels is refused at once.
    """
    rows = checks.count(ds.get("Rows"), "Rows", maximum=MAX_ROWS_COLUMNS)
    columns = checks.count(ds.get("Columns"), "Columns", maximum=MAX_ROWS_COLUMNS)
    samples = checks.count(
        ds.get("SamplesPerPixel", 1) or 1, "SamplesPerPixel", maximum=MAX_SAMPLES_PER_PIXEL
    )
    bits = ds.get("BitsAllocated", 16) or 16
    if bits not in BITS_ALLOCATED:
        raise checks.HeaderError(f"BitsAllocated {bits} is none of {BITS_ALLOCATED}")
    # The stored values' range (rescaled output type, padding) is worked out from BitsStored.
    checks.count(ds.get("BitsStored", bits) or bits, "BitsStored", maximum=bits)
    # Absent, empty or 0 means one frame, as pydicom reads it (single-frame files carry 0).
    frames = checks.count(ds.get("NumberOfFrames", 1) or 1, "NumberOfFrames")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != frames:
        raise checks.HeaderError(
            f"NumberOfFrames is {frames:,} but the per-frame functional groups describe {len(per_frame):,}"
        )
    frame_bits = rows * columns * samples * bits
    declared = (frame_bits * frames + 7) // 8
    offset, length = _pixel_data_extent(ds, path, budget)
    if length == UNDEFINED_LENGTH:
        fragments = _fragment_offsets(path, offset)
        if len(fragments) < frames:
            raise checks.HeaderError(
                f"NumberOfFrames is {frames:,} but the pixel data has {len(fragments):,} fragment(s)"
            )
        if ds.file_meta.get("TransferSyntaxUID") in JPEG2000TransferSyntaxes:
            _check_j2k_sizes(path, fragments, rows, columns)
    else:
        checks.bytes_present(declared, min(length, path.stat().st_size - offset), "Pixel data")
    what = f"{frames:,} frame(s) of {rows}×{columns}×{samples} at {bits} bits"
    checks.within_budget(declared, budget, what)
    return frames


def _pixel_data_extent(ds: Dataset, path: Path, budget: int) -> tuple[int, int]:
    """Where the pixel data value starts in the file and its declared length, never read: from
    `ds` when it was read past its pixel data (with a defer_size), else from the file."""
    located = ds
    if not any(tag in ds for tag in PIXEL_DATA_TAGS):
        located = read_header(
            path, budget, stop_before_pixels=False, specific_tags=list(PIXEL_DATA_TAGS), defer_size=0
        )
    for tag in PIXEL_DATA_TAGS:
        if tag in located:
            element: Any = located.get_item(tag, keep_deferred=True)
            return int(element.value_tell), int(element.length)
    raise checks.HeaderError("the file has image attributes but no pixel data")


def _fragment_offsets(path: Path, offset: int) -> list[int]:
    """Where each fragment of encapsulated pixel data starts, from the item headers alone."""
    with path.open("rb") as handle:
        handle.seek(offset)
        parse_basic_offsets(handle)
        return parse_fragments(handle)[1]


def _check_j2k_sizes(path: Path, fragments: list[int], rows: int, columns: int) -> None:
    """Each JPEG 2000 codestream must declare the header's Rows × Columns.

    A codestream claiming 60000² keeps openjpeg busy for minutes on a 256² CT slice.
    """
    with path.open("rb") as handle:
        for fragment in fragments:
            handle.seek(fragment + 8)  # after the item tag and length
            head = handle.read(J2K_SIZ_BYTES)
            if not head.startswith(J2K_SOC_SIZ) or len(head) < J2K_SIZ_BYTES:
                continue  # a continuation fragment, or not a bare codestream
            width, height, x0, y0 = struct.unpack_from(">4I", head, 8)
            if (width - x0, height - y0) != (columns, rows):
                raise checks.HeaderError(
                    f"a JPEG 2000 frame declares {width - x0}×{height - y0} pixels, "
                    f"the header {columns}×{rows}"
                )


def transfer_syntax(header: Dataset) -> UID | None:
    """The File Meta's transfer syntax; None when missing or not a string (a damaged File Meta
    can give it another VR: a number, bytes)."""
    syntax = header.file_meta.get("TransferSyntaxUID") if hasattr(header, "file_meta") else None
    return UID(syntax) if isinstance(syntax, str) and syntax else None


def is_compressed(header: Dataset) -> bool:
    """Whether native code decodes the pixels: a compressed syntax, or one that cannot be read
    (the reader decides then, in a child process)."""
    syntax = transfer_syntax(header)
    return syntax is None or not syntax.is_transfer_syntax or syntax.is_compressed


def check_decoder(header: Dataset, path: Path) -> None:
    """Refuse pixels no installed decoder can decode, before any is tried."""
    syntax = header.file_meta.get("TransferSyntaxUID") if hasattr(header, "file_meta") else None
    if not syntax:
        raise LoadError(f"The images in {path} cannot be decoded: the file has no transfer syntax")
    syntax = transfer_syntax(header)
    if syntax is None:
        raise LoadError(f"The images in {path} cannot be decoded: the transfer syntax is not a UID")
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise LoadError(
            f"The images in {path} are compressed as '{syntax.name}', which this installation cannot decode"
        )
