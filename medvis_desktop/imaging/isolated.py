"""Reading an untrusted file in a child process, so that a crash in C code cannot end the session.

The header checks (checks.py) stop lying sizes and geometry before anything is decoded, but a
decoder or an ITK reader can still abort or segfault inside C on a damaged body. Here the file
is read by `imaging.load` in a child process started from a fork server (a clean process that
has imported `medvis_desktop.imaging` once, so each read only pays for a fork): the child's
address space is capped with RLIMIT_AS, it gets a time limit, and it returns the voxels as a
temporary .npy plus the rest of the Volume, pickled, through a pipe. A crash, a timeout or
memory exhaustion in the child is a LoadError in the caller.

It costs a process and a copy of the voxels through the disk (benchmarks/isolated_load.py
measures it), so it is not the fast path: use it for files that failed in-process or that
come from formats whose readers are known to crash. A DICOM series with compressed pixels is
decoded slice by slice in children instead, into voxels shared with them (isolated_slices.py,
which uses the fork server, the caps and the crash reports defined here).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import resource
import signal
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.volume import Volume

DEFAULT_TIMEOUT_S = 120.0
# The child's address space beyond the voxel budget: interpreter, numpy, pydicom, SimpleITK
# (about 0.5 GB of mappings before anything is read) and the decoders' working memory.
CHILD_OVERHEAD_MB = 1536
# Voxels are decoded into one array and copied once more on the way out (.npy).
CHILD_BUDGET_FACTOR = 2
# Time for a child that was told to stop to go before it is killed.
STOP_GRACE_S = 2.0

Reader = Callable[..., Volume]


def context() -> multiprocessing.context.BaseContext:
    """Fork-server children: no Qt or TensorFlow threads inherited, imports paid once (pydicom
    and the slice decoder's module included: a series' first slices wait for a child)."""
    chosen = multiprocessing.get_context("forkserver")
    chosen.set_forkserver_preload(["medvis_desktop.imaging", "medvis_desktop.imaging.isolated_slices"])
    return chosen


def start_children() -> None:
    """Start the fork server now: its imports take about half a second, on another core, and
    the first child a study needs (a folder's headers, a compressed slice) need not wait. One
    that cannot start now is tried again when a child is needed."""
    try:
        context()
        multiprocessing.forkserver.ensure_running()
    except OSError:
        return


def start_child(
    target: Callable[..., None], *args: object, name: str | None = None
) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    """A fork-server child running `target(sender, *args)`, started (a daemon: it ends with this
    process), and the receiving end of the pipe it answers by."""
    children = context()
    receiver, sender = children.Pipe(duplex=False)
    process = children.Process(target=target, args=(sender, *args), name=name, daemon=True)
    try:
        process.start()
    except BaseException:
        receiver.close()
        raise
    finally:
        sender.close()  # the child holds its own copy
    return process, receiver


def limit_child(memory_mb: int) -> None:
    """In a child: its address space capped, no core dump of a crash."""
    limit = memory_mb * checks.MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def crash_cause(process: multiprocessing.process.BaseProcess) -> str | None:
    """The signal that ended a child (SIGSEGV, SIGABRT, SIGKILL...), None if it exited."""
    code = process.exitcode
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def stop(process: multiprocessing.process.BaseProcess, grace_s: float = STOP_GRACE_S) -> None:
    """Wait `grace_s` for a child to end, then kill it."""
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join()


def default_memory_mb(memory_budget: int | None = None) -> int:
    """The child's address-space cap: the voxel budget twice over plus the libraries."""
    return checks.memory_budget(memory_budget) * CHILD_BUDGET_FACTOR // checks.MB + CHILD_OVERHEAD_MB


def _child(
    connection: Connection,
    reader: Reader,
    path: str,
    series_uid: str | None,
    memory_budget: int | None,
    slices: tuple[int, int] | None,
    memory_mb: int,
    voxels_path: str,
) -> None:
    """Runs in the child: cap memory, read, write the voxels to disk and the rest to the pipe."""
    limit_child(memory_mb)
    try:
        volume = reader(Path(path), series_uid=series_uid, memory_budget=memory_budget, slices=slices)
        np.save(voxels_path, volume.voxels, allow_pickle=False)
        volume.voxels = volume.voxels[:0]
        connection.send(("volume", volume))
    except checks.TooLargeError as error:
        connection.send(("too large", (str(error), error.slices, error.fitting)))
    except LoadError as error:
        connection.send(("error", str(error)))
    except MemoryError:
        connection.send(("error", f"{Path(path).name}: reading it needed more than {memory_mb} MB"))
    except BaseException as error:  # the child reports everything; it exits right after
        connection.send(("error", f"{Path(path).name}: {checks.one_line(error)}"))
    finally:
        connection.close()


def _load(
    path: Path,
    *,
    series_uid: str | None = None,
    memory_budget: int | None = None,
    slices: tuple[int, int] | None = None,
) -> Volume:
    from medvis_desktop import imaging

    return imaging.load(path, series_uid=series_uid, memory_budget=memory_budget, slices=slices)


def _ended(process: multiprocessing.process.BaseProcess, name: str, memory_mb: int) -> str:
    cause = crash_cause(process)
    if cause is not None:
        return f"{name}: the reader crashed ({cause}, cap {memory_mb} MB); the file is probably damaged"
    return f"{name}: the reader ended without a result (exit code {process.exitcode})"


def load_isolated(
    path: Path | str,
    *,
    series_uid: str | None = None,
    memory_budget: int | None = None,
    slices: tuple[int, int] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int | None = None,
    reader: Reader | None = None,
) -> Volume:
    """`imaging.load` in a child process capped at `memory_mb` of address space and `timeout_s`.

    `reader` (default `imaging.load`) must be a module-level function taking
    `(path, *, series_uid, memory_budget, slices)`; it is imported again in the child. Tests
    plant a crashing reader through it.
    """
    path = Path(path).expanduser()
    memory_mb = memory_mb or default_memory_mb(memory_budget)
    with tempfile.TemporaryDirectory(prefix="medvis-load-") as folder:
        voxels_path = Path(folder) / "voxels.npy"
        read = (reader or _load, str(path), series_uid, memory_budget, slices)
        process, receiver = start_child(_child, *read, memory_mb, str(voxels_path))
        message: tuple[str, object] = ("timeout", None)
        try:
            if receiver.poll(timeout_s):
                message = receiver.recv()
        except (EOFError, OSError):
            message = ("ended", None)
        finally:
            receiver.close()
            stop(process, 0 if message[0] == "timeout" else STOP_GRACE_S)
        kind, value = message
        if kind == "volume":
            value.voxels = np.load(voxels_path, allow_pickle=False)
            return value
    if kind == "too large":
        raise checks.TooLargeError(*value)
    if kind == "error":
        raise LoadError(value)
    if kind == "timeout":
        raise LoadError(f"{path.name}: reading took longer than {timeout_s:g} s and was stopped")
    raise LoadError(_ended(process, path.name, memory_mb))
