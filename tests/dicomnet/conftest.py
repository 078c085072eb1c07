"""A real Orthanc PACS on the loopback, started and stopped by the tests (Debian package orthanc).

Its storage and index live in a temporary folder; its DICOM and HTTP ports are chosen free; it
knows our AE title MEDVIS (for C-MOVE back to our storage server, at a port chosen here too)
and answers only to its own AE title ORTHANC.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medvis_desktop.dicomnet import Node
from tests.export.ct_study import CTStudy, write_ct_study

ORTHANC_AE = "ORTHANC"
OUR_AE = "MEDVIS"
SLICES = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Orthanc:
    node: Node
    http: str  # http://127.0.0.1:PORT
    our_port: int  # where Orthanc sends a C-MOVE to MEDVIS
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=10) as answer:
            return json.load(answer)

    def study_id(self, study_uid: str) -> str | None:
        """Orthanc's ID of the study with this UID, found through /studies."""
        for orthanc_id in self.get("/studies"):
            if self.get(f"/studies/{orthanc_id}")["MainDicomTags"]["StudyInstanceUID"] == study_uid:
                return orthanc_id
        return None

    def series_instances(self, series_uid: str) -> list[str]:
        """SOP Instance UIDs Orthanc holds for this series, through /series/{id}/instances."""
        for orthanc_id in self.get("/series"):
            if self.get(f"/series/{orthanc_id}")["MainDicomTags"]["SeriesInstanceUID"] == series_uid:
                instances = self.get(f"/series/{orthanc_id}/instances")
                return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in instances)
        return []


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    executable = shutil.which("Orthanc")
    if executable is None:
        pytest.fail("Orthanc is missing: the set-up installs it (Debian package orthanc)")
    folder = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port, our_port = free_port(), free_port(), free_port()
    config = {
        "Name": "medvis-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomAet": ORTHANC_AE,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomModalities": {"medvis": [OUR_AE, "127.0.0.1", our_port]},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAssociationCloseDelay": 0,
        "DicomScuTimeout": 5,
        "Plugins": [],
        "LuaScripts": [],
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "DicomThreadsCount": 2,
        "HttpThreadsCount": 4,
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [executable, str(config_path)], stdout=log_file, stderr=subprocess.STDOUT, cwd=folder
        )
    server = Orthanc(
        Node(ORTHANC_AE, "127.0.0.1", dicom_port), f"http://127.0.0.1:{http_port}", our_port, log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                server.get("/system")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not answer on {server.http}:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def ct_series(head_ct_block, tmp_path_factory: pytest.TempPathFactory) -> CTStudy:
    """A small real CT series (8 slices of the head CT) as a scanner writes it."""
    return write_ct_study(head_ct_block[:SLICES], tmp_path_factory.mktemp("ct"))
