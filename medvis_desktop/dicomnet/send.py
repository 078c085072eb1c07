"""C-STORE of files to a node, with one status per instance and nothing sent twice.

The caller gets a status for every file it passed: stored, refused by the PACS (with its
status code), or not sent at all (and why). Nothing is retried here: a caller who wants to
try again passes only the failures, so an instance the PACS already accepted never goes twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from medvis_desktop.dicomnet.association import (
    UNCOMPRESSED,
    ContextsRejected,
    context,
    open_association,
    sop_class_name,
    status_text,
)
from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import DEFAULT_AE, DEFAULT_TIMEOUT, Node

MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are the odd numbers 1..255


@dataclass(frozen=True)
class SendStatus:
    """What became of one file: `ok` means the PACS answered Success or Warning (stored)."""

    path: Path
    sop_instance_uid: str
    ok: bool
    status: int | None  # the C-STORE status code; None when nothing was sent
    message: str


@dataclass(frozen=True)
class _Item:
    path: Path
    sop_class: UID
    sop_instance: str
    transfer_syntax: UID


def send(
    node: Node,
    files: Iterable[Path | str],
    *,
    progress: Callable[[int, int], None] | None = None,
    calling_ae: str = DEFAULT_AE,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[SendStatus]:
    """C-STORE each file once, on one association; one SendStatus per file, in the given order.

    A refused association raises DicomNetError (nothing was sent). A PACS that takes only some
    SOP classes, refuses some instances or drops the association half-way gives a list with
    failures: see `raise_if_incomplete`.
    """
    paths = [Path(p) for p in files]
    results: dict[int, SendStatus] = {}
    items: dict[int, _Item] = {}
    seen: dict[str, Path] = {}
    for index, path in enumerate(paths):
        try:
            header = dcmread(path, stop_before_pixels=True)
            item = _Item(
                path,
                UID(str(header.SOPClassUID)),
                str(header.SOPInstanceUID),
                UID(str(header.file_meta.TransferSyntaxUID)),
            )
        except (InvalidDicomError, OSError, AttributeError, ValueError) as exc:
            results[index] = SendStatus(path, "", False, None, f"not sent: not a readable DICOM file ({exc})")
            continue
        if item.sop_instance in seen:
            message = f"not sent: same SOP instance as {seen[item.sop_instance]}"
            results[index] = SendStatus(path, item.sop_instance, False, None, message)
            continue
        seen[item.sop_instance] = path
        items[index] = item

    total, done = len(paths), len(results)
    if items:
        try:
            with open_association(
                node, _contexts(items.values()), calling_ae=calling_ae, timeout=timeout
            ) as assoc:
                lost = ""
                for message_id, (index, item) in enumerate(items.items(), start=1):
                    if lost:
                        results[index] = SendStatus(item.path, item.sop_instance, False, None, lost)
                    else:
                        results[index], lost = _store_one(node, assoc, item, message_id % 65536, timeout)
                    done += 1
                    if progress is not None:
                        progress(done, total)
        except ContextsRejected:  # a partial acceptance where nothing was accepted: nothing was sent
            for index, item in items.items():
                message = f"not sent: {node} does not accept {sop_class_name(item.sop_class)}"
                results[index] = SendStatus(item.path, item.sop_instance, False, None, message)
    return [results[i] for i in range(total)]


def raise_if_incomplete(node: Node, statuses: list[SendStatus]) -> None:
    """One line for a send that was not wholly accepted; the statuses ride on the error."""
    failures = [s for s in statuses if not s.ok]
    if not failures:
        return
    first = failures[0]
    error = DicomNetError(
        f"{node} accepted {len(statuses) - len(failures)} of {len(statuses)} instances; "
        f"{len(failures)} not stored, first {first.path.name}: {first.message}"
    )
    error.statuses = statuses  # type: ignore[attr-defined]
    raise error


def _contexts(items: Iterable[_Item]) -> list[PresentationContext]:
    """One context per SOP class for uncompressed files (either syntax will do: pynetdicom
    re-encodes), one per SOP class and syntax for compressed ones (sent as they are)."""
    wanted: dict[tuple[UID, UID | None], None] = {}
    for item in items:
        key = (item.sop_class, None if item.transfer_syntax in UNCOMPRESSED else item.transfer_syntax)
        wanted[key] = None
    if len(wanted) > MAX_CONTEXTS:
        raise DicomNetError(
            f"{len(wanted)} kinds of object (SOP class × transfer syntax) in one send: "
            f"an association carries at most {MAX_CONTEXTS}; send them in smaller groups"
        )
    return [context(sop_class, UNCOMPRESSED if ts is None else [ts]) for sop_class, ts in wanted]


def _store_one(
    node: Node, assoc: Association, item: _Item, message_id: int, timeout: float
) -> tuple[SendStatus, str]:
    """(the status of `item`, why the rest cannot be sent — '' while the association lives)."""
    if not any(c.abstract_syntax == item.sop_class for c in assoc.accepted_contexts):
        message = f"not sent: {node} does not accept {sop_class_name(item.sop_class)}"
        return SendStatus(item.path, item.sop_instance, False, None, message), ""
    try:
        dataset = dcmread(item.path)
        started = time.monotonic()
        status = assoc.send_c_store(dataset, msg_id=message_id)
    except ValueError as exc:  # no context for this transfer syntax, or it cannot be encoded
        return SendStatus(item.path, item.sop_instance, False, None, f"not sent: {exc}"), ""
    except (InvalidDicomError, OSError) as exc:
        return SendStatus(item.path, item.sop_instance, False, None, f"not sent: cannot read it ({exc})"), ""
    if not status:
        waited = time.monotonic() - started
        why = f"no answer within {timeout:g} s" if waited >= 0.9 * timeout else "association aborted"
        return (
            SendStatus(item.path, item.sop_instance, False, None, f"{why}: unknown whether {node} stored it"),
            f"not sent: {why} before it",
        )
    code = int(status.Status)
    category = code_to_category(code)
    ok = category in ("Success", "Warning")
    message = "stored" if code == 0 else status_text(status, STORAGE_SERVICE_CLASS_STATUS)
    lost = "" if assoc.is_established else f"not sent: {node} ended the association"
    return SendStatus(item.path, item.sop_instance, ok, code, message), lost
