"""Reading the headers of a DICOM folder's files, on several cores when there are many.

Opening a 1,000-slice series waits for every header (#14): the slices' order and the volume's
geometry come from all of them. pydicom reads about 500 headers a second on one core, so the
files are cut into parts, one more for every PARALLEL_FROM files, as many as this process may
use cores (MAX_READERS at most): this process reads the first while child processes forked
from the session's fork server (pydicom already imported, memory capped as the isolated
readers' are) read the others, and send back what the scan groups, the files in their order.
A child that cannot start, fails, crashes or stalls costs nothing but time: its part is read
here.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from medvis_desktop.imaging import checks, isolated
from medvis_desktop.imaging.dicom_frames import Frame, frames_of
from medvis_desktop.imaging.dicom_header import (
    check_pixel_header,
    check_record_links,
    is_compressed,
    read_header,
)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Header values larger than this (overlays, icons, private blobs) stay in the file until used.
DEFER_BYTES = 64 * 1024
# One more reader for every this many files: a child starts in about 15 ms once the fork
# server runs, but its frames come back pickled, about a third of the time it saves.
PARALLEL_FROM = 200
# Readers at most, this process included: file reads share the disk beyond a few.
MAX_READERS = 4
# Children reading parts of a folder's headers that have not all answered in this long are
# given up.
CHILD_TIMEOUT_S = 300.0

IMAGE, NOT_DICOM, DAMAGED, NO_IMAGE, DIRECTORY = "image", "not DICOM", "damaged", "no image", "DICOMDIR"


@dataclass
class FileHeader:
    """What one file is to the scan: an image of a series (its grid's key and frames), a
    DICOMDIR (the files it lists), damaged (why), not DICOM, or DICOM without an image."""

    kind: str
    why: str = ""
    linked: list[Path] = field(default_factory=list)
    key: tuple = ()  # (series key, rows, columns): files sharing it stack into one Series
    uid: str = ""
    frames: list[Frame] = field(default_factory=list)
    compressed: bool = False
    # The file's whole header; a child sends it only for the first file of each key it read.
    header: Dataset | None = None


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM preamble ('DICM' at byte 128)."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_file(file: Path, budget: int) -> FileHeader:
    """One file's header, checked (checks.py, dicom_header.py) and its frames made."""
    if not is_dicom_file(file):
        return FileHeader(NOT_DICOM)
    try:
        ds = read_header(file, budget, stop_before_pixels=False, defer_size=DEFER_BYTES)
        _decode_used(ds)
    except Exception as error:  # a damaged header can fail in any way; the file is skipped
        # pydicom appends a whole traceback to the value errors it re-raises: cut it.
        return FileHeader(DAMAGED, checks.one_line(error).split(" Traceback (most recent call last)")[0])
    media_class = ds.file_meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    if media_class is None:
        return FileHeader(DAMAGED, "header unreadable: no SOP class")
    if media_class == MEDIA_STORAGE_DIRECTORY:
        try:
            return FileHeader(DIRECTORY, linked=_dicomdir_files(read_header(file, budget)))
        except Exception as error:
            return FileHeader(DIRECTORY, f"unreadable DICOMDIR: {checks.one_line(error)}")
    if "Rows" not in ds or "Columns" not in ds:
        return FileHeader(NO_IMAGE)
    try:
        frames = frames_of(ds, file, check_pixel_header(ds, file, budget))
    except Exception as error:
        return FileHeader(DAMAGED, checks.one_line(error))
    uid = str(ds.get("SeriesInstanceUID", "")) or f"no-uid:{file.parent}"
    # A multi-frame file is a series on its own: its frames carry their own geometry.
    series_key = f"{uid}#{file.name}" if len(frames) > 1 else uid
    key = (series_key, int(ds.Rows), int(ds.Columns))
    return FileHeader(IMAGE, key=key, uid=uid, frames=frames, compressed=is_compressed(ds), header=ds)


def read_headers(files: list[Path], budget: int) -> list[FileHeader]:
    """Every file's header, in the files' order; in parts when the files are many and this
    process may use several cores and have children (see the module's docstring)."""
    alone = multiprocessing.current_process().daemon  # an isolated reader: may not have children
    count = min(len(os.sched_getaffinity(0)), MAX_READERS, len(files) // PARALLEL_FROM + 1)
    if count < 2 or alone:
        return [read_file(file, budget) for file in files]
    bounds = [len(files) * part // count for part in range(count + 1)]
    parts = [files[start:stop] for start, stop in itertools.pairwise(bounds)]
    memory_mb = isolated.default_memory_mb(budget)
    readers: list[tuple[multiprocessing.process.BaseProcess, Connection] | None] = []
    try:
        readers.extend(_start_reader(part, budget, memory_mb) for part in parts[1:])
        read = [read_file(file, budget) for file in parts[0]]
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        for part, reader in zip(parts[1:], readers, strict=True):
            from_child = None if reader is None else _received(reader[1], deadline)
            read += from_child if from_child is not None else [read_file(file, budget) for file in part]
    finally:
        for child, receiver in filter(None, readers):
            receiver.close()
            isolated.stop(child)
    return read


def _start_reader(
    part: list[Path], budget: int, memory_mb: int
) -> tuple[multiprocessing.process.BaseProcess, Connection] | None:
    """A child reading the headers of `part`, and the pipe they come back by; None when none
    could start (its part is then read here)."""
    try:
        return isolated.start_child(_read_in_child, part, budget, memory_mb)
    except Exception:  # whatever keeps a child from starting (no fork server, no pipe, no process)
        return None


def _received(receiver: Connection, deadline: float) -> list[FileHeader] | None:
    """The child's headers; None if it ended, crashed, stalled past `deadline` (monotonic
    time) or sent what cannot be read back."""
    try:
        if receiver.poll(max(0.0, deadline - time.monotonic())):
            return receiver.recv()
    except Exception:  # EOF (it crashed), or a truncated or unreadable pickle: read its part here
        pass
    return None


def _read_in_child(sender: Connection, files: list[Path], budget: int, memory_mb: int) -> None:
    """In the child: read the files' headers and send them, each series' whole header once."""
    isolated.limit_child(memory_mb)
    read = [read_file(file, budget) for file in files]
    keys: set[tuple] = set()
    for header in read:
        if header.key in keys:
            header.header = None
        keys.add(header.key)
    sender.send(read)
    sender.close()


def _decode_used(ds: Dataset) -> None:
    """Decode the values the loader reads, so that a damaged one fails in the scan and costs
    the file only. The others stay raw, unread if large: decoding every value of every file
    took a fifth of the time to read a series' headers or more, and a result written back as
    DICOM decodes what it copies (dicom_source.reduced_header)."""
    ds.file_meta.walk(lambda _ds, _element: None)
    for tag in USED_TAGS.intersection(ds.keys()):
        ds[tag]  # decodes it


def _dicomdir_files(dicomdir: Dataset) -> list[Path]:
    from pydicom.fileset import FileSet

    check_record_links(dicomdir)
    return [Path(instance.path) for instance in FileSet(dicomdir)]


META_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "SliceThickness",
    "KVP",
    "ConvolutionKernel",
    "InstitutionName",
)


# What the scan, dicom_frames, the volume's description and dicom_source.source_of read.
USED_KEYWORDS = (
    *META_KEYWORDS,
    "SOPClassUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "InstanceNumber",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SpacingBetweenSlices",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)


USED_TAGS = frozenset(Tag(keyword) for keyword in USED_KEYWORDS)
