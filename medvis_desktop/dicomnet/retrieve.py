"""C-GET or C-MOVE of one series into the local store, with progress and cancel.

C-GET brings the instances back on our own association (we act as Storage SCP on it, with a
role selection for every storage class we take), so nothing has to listen. C-MOVE asks the PACS
to open a new association to a destination AE it knows: normally our own StorageServer, which
must be running and filing into the same store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.presentation import build_role
from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS, QR_MOVE_SERVICE_CLASS_STATUS

from medvis_desktop.dicomnet.association import (
    COMPRESSED,
    GET_MODEL,
    MOVE_MODEL,
    STORAGE_CLASSES,
    UNCOMPRESSED,
    context,
    no_response,
    open_association,
    status_text,
)
from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import DEFAULT_AE, Node, check_ae_title
from medvis_desktop.dicomnet.scp import SUCCESS, file_received
from medvis_desktop.dicomnet.store import LocalStore

PENDING = (0xFF00, 0xFF01)
CANCELLED = 0xFE00
RETRIEVE_TIMEOUT = 60.0  # between two answers: a PACS may fetch from slow archive storage first


@dataclass(frozen=True)
class RetrieveResult:
    """How a retrieve ended; `files` are the series' whole files now in the store."""

    study_uid: str
    series_uid: str
    folder: Path
    files: list[Path]
    completed: int
    failed: int
    warning: int
    cancelled: bool
    status: str  # the final DIMSE status, as text

    @property
    def complete(self) -> bool:
        return not self.cancelled and self.failed == 0


def retrieve_series(
    node: Node,
    study_uid: str,
    series_uid: str,
    store: LocalStore,
    *,
    method: Literal["get", "move"] = "get",
    move_destination: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    calling_ae: str = DEFAULT_AE,
    timeout: float = RETRIEVE_TIMEOUT,
) -> RetrieveResult:
    """Bring one series into `store`. progress(done, total) follows the PACS's counts; when
    cancel() turns True a C-CANCEL is sent once, and what had arrived stays, as whole files.

    With method="move", `move_destination` is the AE title the PACS knows our StorageServer by.
    """
    if not study_uid or not series_uid:
        raise ValueError("retrieve_series needs a Study and a Series Instance UID")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = study_uid
    identifier.SeriesInstanceUID = series_uid

    store_errors: list[int] = []

    def on_store(event: Any) -> int:
        status, _path, _dataset = file_received(store, event)
        if status != SUCCESS:
            store_errors.append(status)
        return status

    if method == "get":
        model, table = GET_MODEL, QR_GET_SERVICE_CLASS_STATUS
        contexts = [context(GET_MODEL)]
        for uid in STORAGE_CLASSES:  # one uncompressed and one compressed context per class
            contexts += [context(uid, UNCOMPRESSED), context(uid, COMPRESSED)]
        roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
        handlers = [(evt.EVT_C_STORE, on_store)]
    elif method == "move":
        if not move_destination:
            raise ValueError("C-MOVE needs move_destination: the AE title of our storage server")
        move_destination = check_ae_title(move_destination)
        model, table = MOVE_MODEL, QR_MOVE_SERVICE_CLASS_STATUS
        contexts, roles, handlers = [context(MOVE_MODEL)], [], []
    else:
        raise ValueError(f"method must be 'get' or 'move', not {method!r}")

    what = f"C-{method.upper()}"
    cancel_sent = False
    final: Dataset | None = None
    with open_association(
        node, contexts, calling_ae=calling_ae, timeout=timeout, ext_neg=roles, handlers=handlers
    ) as assoc:
        if method == "get":
            responses = assoc.send_c_get(identifier, model, msg_id=1)
        else:
            responses = assoc.send_c_move(identifier, move_destination, model, msg_id=1)
        waiting = time.monotonic()
        for status, _identifier in responses:
            if not status:
                raise no_response(node, timeout, what, time.monotonic() - waiting)
            if int(status.Status) in PENDING:
                done, total = _counts(status)
                if progress is not None and total:
                    progress(done, total)
                if cancel is not None and not cancel_sent and cancel():
                    assoc.send_c_cancel(1, query_model=model)
                    cancel_sent = True
            else:
                final = status
            waiting = time.monotonic()
    if final is None:
        raise DicomNetError(f"{node} ended {what} without a final status")

    code = int(final.Status)
    text = status_text(final, table)
    completed, failed, warning = (
        int(final.get(f"NumberOf{k}Suboperations", 0) or 0) for k in ("Completed", "Failed", "Warning")
    )
    if code not in (0x0000, CANCELLED) and not 0xB000 <= code <= 0xBFFF:
        hint = ""
        if method == "move" and completed == 0:  # Orthanc says only "unable to process" then
            hint = f"; does {node.ae_title} know the destination AE {move_destination!r} (host and port)?"
        raise DicomNetError(f"{node} refused {what} of series {series_uid}: {text}{hint}")
    if code == 0x0000 and completed + warning == 0:
        raise DicomNetError(f"{node} has no instances of series {series_uid}")
    if progress is not None and code != CANCELLED:
        progress(completed + failed + warning, completed + failed + warning)
    if store_errors and failed == 0:  # a PACS that did not count our refusals
        failed = len(store_errors)
    return RetrieveResult(
        study_uid=study_uid,
        series_uid=series_uid,
        folder=store.series_folder(study_uid, series_uid),
        files=store.series_files(study_uid, series_uid),
        completed=completed,
        failed=failed,
        warning=warning,
        cancelled=code == CANCELLED,
        status=text,
    )


def _counts(status: Dataset) -> tuple[int, int]:
    """(done, total) from a pending response's sub-operation counts."""
    done = sum(
        int(status.get(f"NumberOf{k}Suboperations", 0) or 0) for k in ("Completed", "Failed", "Warning")
    )
    remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
    return done, done + remaining
