"""Read every object of an HDF5 file in a child process before the application reads it.

The HDF5 library can loop for ever or crash (SIGSEGV) inside C on a damaged file: the fuzz runs
found both in Keras 2 .h5 models (seed 31: 6 of 10,000). A child started from the fork server
opens the file with h5py and reads every group's and dataset's attributes and every dataset's
values, under an address-space cap and a time limit; only when it finishes does the caller's
process (h5py, Keras) read the file. Keras reads nothing the walk has not read already. This
module imports neither TensorFlow nor Qt, so the child starts in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import isolated

# A model of tens of MB reads in well under a second; a large one gets a second per 50 MB.
BASE_TIMEOUT_S = 5.0
SECONDS_PER_MB = 1 / 50
# The child's address space: the interpreter, numpy and h5py, and the file's largest dataset.
OVERHEAD_MB = 1024


def check_in_child(path: Path) -> None:
    """Refuse, with one line naming the file, an HDF5 file whose full read crashes, hangs or
    fails; return quietly when the whole file reads."""
    size_mb = path.stat().st_size / 2**20
    memory_mb = OVERHEAD_MB + 2 * round(size_mb)
    timeout_s = BASE_TIMEOUT_S + SECONDS_PER_MB * size_mb
    process, receiver = isolated.start_child(_walk, str(path), memory_mb)
    try:
        answer = receiver.recv() if receiver.poll(timeout_s) else ("timeout", "")
    except (EOFError, OSError):
        answer = ("ended", "")
    finally:
        receiver.close()
        isolated.stop(process, 1.0)
    kind, detail = answer
    if kind == "ok":
        return
    if kind == "error":
        raise LoadError(f"{path.name}: the HDF5 file is corrupt or truncated ({detail})")
    if kind == "timeout":
        raise LoadError(f"{path.name}: reading the HDF5 file took longer than {timeout_s:g} s; it is damaged")
    cause = isolated.crash_cause(process) or f"exit code {process.exitcode}"
    raise LoadError(f"{path.name}: the HDF5 library crashed reading it ({cause}); the file is damaged")


def _walk(connection, path: str, memory_mb: int) -> None:
    """In the child: cap the memory, read everything, report."""
    isolated.limit_child(memory_mb)
    try:
        import h5py

        def read(name: str, item: object) -> None:
            for key in item.attrs:
                item.attrs[key]
            if isinstance(item, h5py.Dataset):
                item[()]

        with h5py.File(path, "r") as h5:
            read("/", h5)
            h5.visititems(read)
        connection.send(("ok", ""))
    except BaseException as error:  # the child reports everything; it exits right after
        connection.send(("error", " ".join(str(error).split())[:200] or type(error).__name__))
    finally:
        connection.close()
