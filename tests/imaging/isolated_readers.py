"""Readers that fail the way C code does, for `imaging.load_isolated(reader=...)`.

They must live in an importable module: the isolated loader's child imports them by name.
`os.abort()` raises SIGABRT exactly as an ITK or decoder assertion does; nothing is simulated
in the parent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from medvis_desktop.imaging import Volume


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
