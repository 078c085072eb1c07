"""Compressed DICOM slices decoded in a child process straight into a volume shared with it
(issue #14): a series shows its first slices while the rest decode, and a native decoder that
crashes on a damaged file costs that slice, never the session nor the series.

The voxels live in an anonymous memory file (memfd; an unlinked temporary file where there is
none), mapped by this process as the Volume's array and handed to each child as a file
descriptor: the child is forked from the fork server, not from this process, so it could not
inherit an anonymous mapping. There is one copy of the voxels, and the kernel frees it with the
last mapping: nothing is left behind by a crash of either side. A child is capped like the
whole-file loader's (isolated.py), decodes the slices it is given in their order and reports
each one over its pipe. If it dies (signal, memory cap) or stalls, the slice it was decoding is
left black and named, and a new child goes on with the others.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing import reduction
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import numpy as np

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks, dicom, isolated
from medvis_desktop.imaging.dicom_frames import Frame

# A slice (the child's start included) not reported within this time counts as a hung decoder.
SLICE_TIMEOUT_S = 60.0
# Slices crashing one after the other before the load stops: past this the decoder is broken,
# not one file (and a process per slice would be started for nothing).
CRASHES_IN_A_ROW = 5


class SharedVoxels:
    """A volume's voxels in a memory file that child processes map too.

    `array` is this process's view; its mapping lives as long as the array does. `close`
    (idempotent, also done when this object is garbage) gives up the file itself: no child can
    be started on it after, and the memory goes with the last array that maps it.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.size = max(int(np.prod(shape)) * self.dtype.itemsize, 1)
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("medvis-voxels", os.MFD_CLOEXEC)
        else:
            self.fd, name = tempfile.mkstemp(prefix="medvis-voxels-")
            os.unlink(name)
        self._close = weakref.finalize(self, os.close, self.fd)
        os.ftruncate(self.fd, self.size)
        self.array = mapped(self.fd, self.size, self.shape, self.dtype)

    @property
    def closed(self) -> bool:
        return not self._close.alive

    def close(self) -> None:
        self._close()

    def __reduce__(self) -> tuple:
        """Pickled for a child: the file descriptor is duplicated into it by the fork server."""
        return (_Mapping, (reduction.DupFd(self.fd), self.size, self.shape, self.dtype.str))


@dataclass
class _Mapping:
    """The child's side of SharedVoxels: a descriptor to map."""

    fd: object  # the duplicate, detached to a descriptor in the child
    size: int
    shape: tuple[int, ...]
    dtype: str

    def array(self) -> np.ndarray:
        fd = self.fd.detach()
        try:
            return mapped(fd, self.size, self.shape, np.dtype(self.dtype))
        finally:
            os.close(fd)


def mapped(fd: int, size: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An array over the whole memory file, shared with every process that maps it."""
    return np.ndarray(shape, dtype, buffer=mmap.mmap(fd, size))


@dataclass
class _Work:
    """What a child decodes: frames without their DICOM headers (it needs the series' only)."""

    series: dicom.Series
    frames: dict[int, Frame]
    inverted: float | None
    decoder: dicom.Decoder | None


def _child(connection: Connection, shared: _Mapping, work: _Work, order: list[int], memory_mb: int) -> None:
    """Runs in the child: decode the slices in `order` into the shared voxels, one message each."""
    isolated.limit_child(memory_mb)
    try:
        voxels = shared.array()
        for z in order:
            why = dicom.decode_into(voxels[z], work.frames[z], work.series, work.inverted, work.decoder)
            connection.send(("slice", z, why))
    except BaseException as error:  # not a damaged file (decode covers those): the load stops
        connection.send(("error", checks.one_line(error)))
    finally:
        connection.close()


class IsolatedSlices:
    """Decodes slices of one series in child processes, into `shared`."""

    def __init__(
        self,
        plan: dicom.SeriesPlan,
        shared: SharedVoxels,
        black: float,
        inverted: float | None,
        budget: int,
        decoder: dicom.Decoder | None = None,
    ) -> None:
        self._series = replace(plan.series, frames=[])
        self._frames = [replace(frame, header=None) for frame in plan.frames]
        self._shared, self._black = shared, black
        self._inverted, self._decoder = inverted, decoder
        self._memory_mb = isolated.default_memory_mb(budget)
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._stopped = False

    def slices(self, order: list[int]) -> Iterator[tuple[int, str]]:
        """Decode these slices, in this order, yielding each one's index and "" or why it is
        left black, as the children report them. Raises LoadError if the decoding itself
        breaks; ends early, quietly, after `stop`."""
        pending = list(order)
        crashes = 0
        while pending:
            started = self._start(pending)
            if started is None:
                return
            receiver, process = started
            try:
                while pending and isinstance(message := self._receive(receiver, process), tuple):
                    z, why = message
                    if z != pending[0]:
                        raise LoadError(f"the decoder reported slice {z + 1} out of turn")
                    pending.pop(0)
                    crashes = 0
                    yield z, why
            finally:
                receiver.close()
                isolated.stop(process, 0 if pending else isolated.STOP_GRACE_S)
            if not pending or self._stopped:
                return
            crashes += 1
            z = pending.pop(0)
            self._shared.array[z] = self._black  # whatever the child wrote into it half-way
            yield z, message
            if crashes >= CRASHES_IN_A_ROW:
                raise LoadError(f"the decoder crashed on {crashes} slices in a row ({message})")

    def stop(self) -> None:
        """End the child at once and start no other; from any thread."""
        with self._lock:
            self._stopped = True
            if self._process is not None and self._process.is_alive():
                self._process.kill()

    def _start(self, order: list[int]) -> tuple[Connection, BaseProcess] | None:
        """A child decoding `order`, and its pipe; None once stopped or the voxels are closed."""
        work = _Work(self._series, {z: self._frames[z] for z in order}, self._inverted, self._decoder)
        with self._lock:
            if self._stopped or self._shared.closed:
                return None
            self._process, receiver = isolated.start_child(
                _child, self._shared, work, order, self._memory_mb, name="medvis-decode"
            )
            return receiver, self._process

    def _receive(self, receiver: Connection, process: BaseProcess) -> tuple[int, str] | str:
        """The child's next slice, or why it has gone without reporting one."""
        if not receiver.poll(SLICE_TIMEOUT_S):
            process.kill()
            return f"the decoder took longer than {SLICE_TIMEOUT_S:g} s"
        try:
            kind, *value = receiver.recv()
        except (EOFError, OSError):
            process.join()
            cause = isolated.crash_cause(process)
            if cause is None and not self._stopped:
                code = process.exitcode
                raise LoadError(f"the decoder ended without a result (exit code {code})") from None
            return f"the decoder crashed ({cause})"
        if kind == "error":
            raise LoadError(value[0])
        return value[0], value[1]
