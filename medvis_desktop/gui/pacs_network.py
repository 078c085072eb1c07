"""The window's DICOM network state: settings in QSettings, the local store, the receiver, and
the thread every network call runs in. A thin layer over medvis_desktop.dicomnet.

Settings keys (group "dicom"): ae_title, receiver_enabled, receiver_host, receiver_port,
retrieve_method, store, and the array "nodes" (name, ae_title, host, port, tls, ca_file,
cert_file, key_file). The defaults listen on nothing; when the receiver is turned on, it
listens on the loopback unless the user names another address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QObject, QSettings, QStandardPaths, QThread, QTimer, Signal

# The window makes a DicomNetwork before it first shows: the rest of dicomnet (pynetdicom,
# pydicom, ssl) loads when a node, the store or the receiver is first used.
from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.errors import MedvisError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from medvis_desktop.dicomnet import LocalStore, Node, StorageServer

LOOPBACK = "127.0.0.1"
# dicomnet.DEFAULT_AE and DEFAULT_PORT, repeated so that the default settings load none of
# that (a test keeps them equal).
DEFAULT_AE = "MEDVIS"
DEFAULT_PORT = 11112
STORE_FOLDER = "dicom-store"
# The list of received studies is re-read once a burst of instances has settled.
REFRESH_DELAY_MS = 300


@dataclass(frozen=True)
class PacsNode:
    """A named DICOM peer as the node list keeps it; `node()` checks it."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def node(self) -> Node:
        """The dicomnet Node, or a DicomNetError naming this entry and what is wrong with it."""
        from medvis_desktop.dicomnet import Node, TLSSettings

        tls = None
        if self.tls:
            tls = TLSSettings(
                *(Path(f) if f else None for f in (self.ca_file, self.cert_file, self.key_file))
            )
        try:
            return Node(self.ae_title, self.host, self.port, tls)
        except DicomNetError as error:
            raise DicomNetError(f"Node '{self.name}': {error}") from error


@dataclass(frozen=True)
class NetworkConfig:
    """Everything the DICOM network settings dialog edits."""

    nodes: tuple[PacsNode, ...] = ()
    ae_title: str = DEFAULT_AE  # this workstation's AE title
    receiver_enabled: bool = False
    receiver_host: str = LOOPBACK
    receiver_port: int = DEFAULT_PORT
    retrieve_method: str = "get"  # "get" or "move"
    store: str = field(default_factory=lambda: str(default_store_folder()))

    def find(self, name: str) -> PacsNode:
        for entry in self.nodes:
            if entry.name == name:
                return entry
        raise DicomNetError(f"No PACS node named '{name}': add it in DICOM network settings")


def default_store_folder() -> Path:
    """The local study store under the user's data folder."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".medvis") / STORE_FOLDER


def load_config(settings: QSettings) -> NetworkConfig:
    """The network settings stored in `settings`, defaults where nothing is stored."""
    default = NetworkConfig()
    settings.beginGroup("dicom")
    try:
        nodes = []
        for index in range(settings.beginReadArray("nodes")):
            settings.setArrayIndex(index)
            nodes.append(
                PacsNode(
                    name=str(settings.value("name", "")),
                    ae_title=str(settings.value("ae_title", "")),
                    host=str(settings.value("host", "")),
                    port=int(settings.value("port", 104)),
                    tls=settings.value("tls", False, type=bool),
                    ca_file=str(settings.value("ca_file", "")),
                    cert_file=str(settings.value("cert_file", "")),
                    key_file=str(settings.value("key_file", "")),
                )
            )
        settings.endArray()
        return NetworkConfig(
            nodes=tuple(nodes),
            ae_title=str(settings.value("ae_title", default.ae_title)),
            receiver_enabled=settings.value("receiver_enabled", default.receiver_enabled, type=bool),
            receiver_host=str(settings.value("receiver_host", default.receiver_host)),
            receiver_port=int(settings.value("receiver_port", default.receiver_port)),
            retrieve_method=str(settings.value("retrieve_method", default.retrieve_method)),
            store=str(settings.value("store", default.store)),
        )
    finally:
        settings.endGroup()


def save_config(settings: QSettings, config: NetworkConfig) -> None:
    settings.beginGroup("dicom")
    settings.remove("nodes")
    settings.beginWriteArray("nodes", len(config.nodes))
    for index, entry in enumerate(config.nodes):
        settings.setArrayIndex(index)
        for key, value in entry.__dict__.items():
            settings.setValue(key, value)
    settings.endArray()
    for key in ("ae_title", "receiver_enabled", "receiver_host", "receiver_port", "retrieve_method", "store"):
        settings.setValue(key, getattr(config, key))
    settings.endGroup()
    settings.sync()


class NetworkTask(QThread):
    """One network call off the GUI thread. `call(task)` may report progress with
    `task.report(done, total)` and should stop when `task.is_cancelled()`. When it ends, `done`
    carries the task, with `result` or `error` (one line) set; connect it to a method of a
    GUI-thread object, never a lambda. Running tasks keep themselves alive until they end."""

    progress = Signal(int, int)
    done = Signal(object)
    _alive: ClassVar[set[NetworkTask]] = set()

    def __init__(self, call: Callable[[NetworkTask], Any], tag: object = None) -> None:
        super().__init__()
        self._call = call
        self._cancel = threading.Event()
        self.tag = tag
        self.result: Any = None
        self.error: str | None = None
        self.finished.connect(self._forget)

    def start_now(self) -> NetworkTask:
        NetworkTask._alive.add(self)
        self.start()
        return self

    def report(self, done: int, total: int) -> None:
        self.progress.emit(done, total)

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        try:
            self.result = self._call(self)
        except (MedvisError, OSError, ValueError) as error:
            self.error = str(error)
        except Exception as error:  # a bug or a library's surprise must not end the session
            self.error = f"{type(error).__name__}: {error}"
        self.done.emit(self)

    def _forget(self) -> None:
        NetworkTask._alive.discard(self)

    @classmethod
    def stop_all(cls) -> None:
        """Cancel every running task and wait for it (each ends within its network timeout)."""
        for task in list(cls._alive):
            task.cancel()
            task.wait()
        cls._alive.clear()


class DicomNetwork(QObject):
    """Settings, local store and the optional receiver (StorageServer) of one window."""

    config_changed = Signal()
    store_changed = Signal()  # a study or series arrived (received, or retrieved)
    _instance_stored = Signal()  # from the receiver's threads

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.config = load_config(settings)
        self._store: LocalStore | None = None  # made when first used: opening the window writes nothing
        self.server: StorageServer | None = None
        self._refresh = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS)
        self._refresh.timeout.connect(self.store_changed)
        self._instance_stored.connect(self._refresh.start)

    @property
    def store(self) -> LocalStore:
        """The local study store (its folder is made when first used)."""
        if self._store is None:
            from medvis_desktop.dicomnet import LocalStore

            try:
                self._store = LocalStore(self.config.store)
            except OSError as error:
                raise DicomNetError(
                    f"Cannot use the local study store {self.config.store}: {error}"
                ) from error
        return self._store

    @store.setter
    def store(self, store: LocalStore) -> None:
        self._store = store

    @property
    def receiver_running(self) -> bool:
        return self.server is not None and self.server.running

    def start(self) -> None:
        """Start the receiver if the settings turn it on; a DicomNetError says why it cannot."""
        if self.config.receiver_enabled and not self.receiver_running:
            from medvis_desktop.dicomnet import StorageServer

            server = StorageServer(
                self.store,
                ae_title=self.config.ae_title,
                port=self.config.receiver_port,
                host=self.config.receiver_host,
                on_stored=self._on_stored,
            )
            server.start()
            self.server = server

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def apply(self, config: NetworkConfig) -> None:
        """Store `config` and restart the receiver with it; DicomNetError if it cannot listen."""
        save_config(self.settings, config)
        self.stop()
        old, self.config = self._store, config
        if old is not None and Path(config.store) != old.root:
            self._store = None
            self.store_changed.emit()
        self.config_changed.emit()
        self.start()

    def node(self, name: str) -> Node:
        return self.config.find(name).node()

    def shutdown(self) -> None:
        """Stop listening and end every network call: the window is closing."""
        self.stop()
        NetworkTask.stop_all()

    def _on_stored(self, _path: Path, _dataset: Dataset) -> None:
        self._instance_stored.emit()  # runs in pynetdicom's thread: queued to the GUI thread
