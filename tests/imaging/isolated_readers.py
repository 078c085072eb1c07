"""Readers and decoders that fail the way C code does, for `imaging.load_isolated(reader=...)`
and `SeriesLoad(decoder=...)`.

They must live in an importable module: the isolated loader's child imports them by name.
`os.abort()` raises SIGABRT exactly as an ITK or decoder assertion does; nothing is simulated
in the parent.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import numpy as np

from medvis_desktop.imaging import Volume, dicom
from medvis_desktop.imaging.dicom_frames import Frame


def aborting_reader(path: Path, **_: object) -> Volume:
    """Ends the process with SIGABRT, as a failed assertion in C++ does."""
    os.abort()


def hanging_reader(path: Path, **_: object) -> Volume:
    """Never returns, as a decoder caught in a loop."""
    while True:
        time.sleep(1)


def greedy_reader(path: Path, **_: object) -> Volume:
    """Asks for 64 GB at once, as ITK does from a lying header."""
    bytearray(64 * 1024**3)
    raise AssertionError("the memory cap did not hold")


# Decoders for `SeriesLoad(decoder=...)`: each fails on the files whose name starts with its
# word and decodes the others as production does (dicom.decode).


def aborting_decode(frame: Frame, rows: int, columns: int) -> tuple[np.ndarray | None, str]:
    """Ends the process with SIGABRT on a file named abort*, as a native decoder's assertion."""
    if frame.path.name.startswith("abort"):
        os.abort()
    return dicom.decode(frame, rows, columns)


def segfaulting_decode(frame: Frame, rows: int, columns: int) -> tuple[np.ndarray | None, str]:
    """Reads address 0 on a file named segv*: the SIGSEGV of a decoder overrunning its buffer."""
    if frame.path.name.startswith("segv"):
        ctypes.string_at(0)
    return dicom.decode(frame, rows, columns)


def hanging_decode(frame: Frame, rows: int, columns: int) -> tuple[np.ndarray | None, str]:
    """Never returns on a file named hang*, as a decoder caught in a loop."""
    while frame.path.name.startswith("hang"):
        time.sleep(1)
    return dicom.decode(frame, rows, columns)


def slow_decode(frame: Frame, rows: int, columns: int) -> tuple[np.ndarray | None, str]:
    """Takes a tenth of a second per slice: a load still running when a test acts on it."""
    time.sleep(0.1)
    return dicom.decode(frame, rows, columns)
