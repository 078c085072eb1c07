"""The optional Storage SCP: a PACS (or a C-MOVE we asked for) sends instances, we file them.

It listens on the loopback unless told otherwise: a workstation must not open a port to the
hospital network because it was started. Only our own AE title is accepted as called AE, and,
when a list of calling AE titles is given, only those peers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.transport import ThreadedAssociationServer

from medvis_desktop.dicomnet.association import (
    COMPRESSED,
    STORAGE_CLASSES,
    UNCOMPRESSED,
    VERIFICATION,
    new_ae,
)
from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import DEFAULT_AE, TLSSettings, check_ae_title
from medvis_desktop.dicomnet.store import LocalStore

log = logging.getLogger(__name__)

DEFAULT_PORT = 11112  # the registered non-privileged DICOM port

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000


class StorageServer:
    """A C-STORE (and C-ECHO) acceptor filing into a LocalStore; start() and stop(), or `with`."""

    def __init__(
        self,
        store: LocalStore,
        *,
        ae_title: str = DEFAULT_AE,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        tls: TLSSettings | None = None,
        allowed_calling_aes: Iterable[str] | None = None,
        on_stored: Callable[[Path, Dataset], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.ae_title = check_ae_title(ae_title)
        self.host = host
        self.requested_port = port
        self.tls = tls
        self.allowed_calling_aes = [check_ae_title(t) for t in allowed_calling_aes or []]
        self.on_stored = on_stored
        self.timeout = timeout
        self._server: ThreadedAssociationServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually listened on; the requested ones before start()."""
        if self._server is None:
            return self.host, self.requested_port
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The port actually listened on (the one chosen by the system when asked for port 0)."""
        return self.address[1]

    def start(self) -> None:
        if self._server is not None:
            return
        ae = new_ae(self.ae_title, self.timeout)
        ae.require_called_aet = True
        ae.require_calling_aet = self.allowed_calling_aes
        ae.maximum_associations = 4
        for uid in STORAGE_CLASSES:
            ae.add_supported_context(uid, UNCOMPRESSED + COMPRESSED)
        ae.add_supported_context(VERIFICATION, UNCOMPRESSED)
        ssl_context = self.tls.server_context() if self.tls else None
        try:
            self._server = ae.start_server(
                (self.host, self.requested_port),
                block=False,
                ssl_context=ssl_context,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            )
        except OSError as exc:
            raise DicomNetError(
                f"Storage server {self.ae_title} cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror or exc}"
            ) from exc

    def stop(self) -> None:
        """Stop listening; associations in progress are closed."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def __enter__(self) -> StorageServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_store(self, event: Any) -> int:
        status, path, dataset = file_received(self.store, event)
        if path is not None and dataset is not None and self.on_stored is not None:
            try:
                self.on_stored(path, dataset)
            except Exception:  # a listener's bug must not turn a stored instance into a failure
                log.exception("on_stored listener failed for %s", path)
        return status


def file_received(store: LocalStore, event: Any) -> tuple[int, Path | None, Dataset | None]:
    """File the instance of a C-STORE request; the status tells the sender whether it is safe."""
    try:
        dataset = event.dataset
        uids = (dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID)
    except AttributeError:
        log.warning("Refused an instance without study, series or SOP instance UID")
        return DOES_NOT_MATCH, None, None
    except Exception as exc:  # pydicom raises many kinds on a malformed data set
        log.warning("Refused an instance that cannot be decoded: %s", exc)
        return CANNOT_UNDERSTAND, None, None
    if str(uids[2]) != str(event.request.AffectedSOPInstanceUID):
        log.warning("Refused %s: its SOP Instance UID differs from the request's", uids[2])
        return DOES_NOT_MATCH, None, None
    try:
        path, _new = store.add_encoded(
            event.encoded_dataset(),
            study_uid=str(uids[0]),
            series_uid=str(uids[1]),
            sop_instance_uid=str(uids[2]),
        )
    except OSError as exc:
        log.error("Cannot file instance %s: %s", uids[2], exc)
        return OUT_OF_RESOURCES, None, None
    return SUCCESS, path, dataset
