"""Every file medvis writes appears whole or not at all, and never over the study it came from.

A writer gets a temporary name in the target's own folder (same file system, so the final
`os.replace` is atomic), and the file takes its real name only once it is complete and synced.
On any failure the temporary file is removed, and a full disk, a read-only folder or a refused
permission becomes one `ExportError` with a one-line message instead of a library's traceback.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medvis_desktop.errors import MedvisError

TEMPORARY_PREFIX = ".medvis-partial-"
"""Hidden, recognisable; the real name follows it, so writers that pick the format from the
suffix (SimpleITK: .nii.gz, .mha, .nrrd) see the right one."""
FULL_BYTES = 1 << 20
"""A write that fails while less than this is free is reported as a full disk: some writers
(SimpleITK's MetaIO and NRRD) say only that "the stream failed"."""


class ExportError(MedvisError):
    """An export that could not be written (full disk, read-only folder, the source study)."""


def is_source(target: Path | str, source: Path | str | None) -> bool:
    """Whether writing `target` could change the study read from `source`.

    A study read from a file (NIfTI, a single DICOM, .inv3) is that file. A study read from a
    folder (a DICOM series, a DICOMDIR's folder, the local PACS store) is every file below that
    folder: new files there would join the series when it is opened again, and any existing
    one may be one of its instances, so nothing is written inside it at all.
    """
    if source is None:
        return False
    target, source = Path(target).resolve(), Path(source).resolve()
    if source.is_file() and source.name.upper() == "DICOMDIR":
        source = source.parent
    if source.is_dir():
        return target.is_relative_to(source)
    return target == source or (target.exists() and source.exists() and os.path.samefile(target, source))


def refuse_source(target: Path | str, source: Path | str | None) -> None:
    """Raise ExportError when `target` is, or is inside, the source study (see `is_source`)."""
    if is_source(target, source):
        raise ExportError(
            f"Refused to write {Path(target).name}: it would overwrite or add to the study it was "
            f"made from ({source}); choose another folder"
        )


def make_folder(folder: Path | str, *, source: Path | str | None = None) -> Path:
    """`folder` and its parents, made if missing; never inside `source`."""
    folder = Path(folder)
    refuse_source(folder, source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"Could not make the folder {folder}: {failure_reason(folder, error)}") from None
    return folder


@contextmanager
def atomic_write(path: Path | str, *, source: Path | str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write the whole file to; on success it is synced
    and renamed to `path` (replacing any older file), on any failure it is removed.

    `source`: the study the export was made from, which is never written over (`refuse_source`).
    """
    path = Path(path)
    refuse_source(path, source)
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}-{path.name}")
    try:  # created here first, so a read-only or missing folder fails before any work is done
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise ExportError(_message(path, error)) from None
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        # Diagnosed before the partial file is removed: it is what filled the disk. Anything
        # else (a bad argument, a bug, KeyboardInterrupt) goes on as it is.
        writing = isinstance(error, OSError) or (
            isinstance(error, Exception)
            and not isinstance(error, MedvisError)
            and _disk_problem(path.parent) is not None
        )
        message = _message(path, error) if writing else None
        temporary.unlink(missing_ok=True)
        if message is None:
            raise
        raise ExportError(message) from error


def _sync(path: Path) -> None:
    """Data on disk before the rename, so a crash cannot leave an empty file under the real name."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _disk_problem(folder: Path) -> str | None:
    """'the disk is full' or 'the folder is on a read-only disk', as the file system says."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return "the folder is on a read-only disk"
    if stats.f_bavail * stats.f_frsize < FULL_BYTES:
        return "the disk is full"
    return None


def _message(path: Path, error: BaseException) -> str:
    """One line: which file, where, and why, in words."""
    return f"Could not save {path.name} in {path.parent}: {failure_reason(path.parent, error)}"


def failure_reason(folder: Path, error: BaseException) -> str:
    """Why writing in `folder` failed, in a few words: full, read-only, not allowed, or the
    error's own last line."""
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    elif code == errno.EROFS:
        reason = "the folder is on a read-only disk"
    elif code in (errno.EACCES, errno.EPERM):
        reason = "no permission to write in this folder"
    elif code == errno.ENOENT and not folder.is_dir():
        reason = "the folder does not exist"
    else:
        reason = _disk_problem(folder) or _one_line(error)
    return reason


def _one_line(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
