"""Our Storage SCP, sent to by our own SCU (pynetdicom on both sides, real sockets and TLS):
loopback by default, only its own AE title, each instance filed once, nothing sent twice."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medvis_desktop.dicomnet import DicomNetError, LocalStore, Node, StorageServer, TLSSettings, send, verify
from tests.export.ct_study import CTStudy, write_ct_study


@pytest.fixture(scope="module")
def ct(head_ct_block, tmp_path_factory) -> CTStudy:
    return write_ct_study(head_ct_block[:3], tmp_path_factory.mktemp("ct"))


@pytest.fixture
def server(tmp_path: Path):
    """A storage server on a port the system picks, recording what it filed."""
    filed: list[tuple[Path, str]] = []
    scp = StorageServer(
        LocalStore(tmp_path / "store"),
        ae_title="WORKSTATION",
        port=0,
        on_stored=lambda path, ds: filed.append((path, str(ds.SOPInstanceUID))),
    )
    scp.filed = filed  # type: ignore[attr-defined]
    with scp:
        yield scp


def node_of(server: StorageServer, ae_title: str = "WORKSTATION", tls: TLSSettings | None = None) -> Node:
    return Node(ae_title, "127.0.0.1", server.port, tls)


def test_it_listens_on_the_loopback_only_by_default(server: StorageServer):
    assert server.running
    assert server.address == ("127.0.0.1", server.port)
    assert server.port != 0


def test_it_answers_c_echo(server: StorageServer):
    assert verify(node_of(server), timeout=5) < 5


def test_it_files_what_it_receives_each_instance_once(server: StorageServer, ct: CTStudy):
    files = [ct.paths[0], ct.paths[1], ct.paths[0], ct.paths[2]]  # one file listed twice
    statuses = send(node_of(server), files)
    assert [s.ok for s in statuses] == [True, True, False, True]
    assert statuses[2].message == f"not sent: same SOP instance as {ct.paths[0]}"
    assert statuses[2].status is None
    # exactly one C-STORE per SOP instance reached the server
    assert sorted(uid for _, uid in server.filed) == sorted(ct.sop_instance_uids)
    [study] = server.store.studies()
    [series] = study.series
    assert series.instance_count == 3
    for path, uid in server.filed:
        original = pydicom.dcmread(ct.paths[ct.sop_instance_uids.index(uid)])
        np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, original.pixel_array)


def test_a_wrong_called_ae_is_rejected(server: StorageServer, ct: CTStudy):
    with pytest.raises(DicomNetError) as error:
        send(node_of(server, "SOMEONE-ELSE"), ct.paths)
    assert str(error.value) == (
        f"SOMEONE-ELSE@127.0.0.1:{server.port} rejected the association: "
        "it does not answer to the AE title 'SOMEONE-ELSE'"
    )
    assert server.filed == []


def test_only_listed_calling_aes_are_accepted(tmp_path: Path, ct: CTStudy):
    with StorageServer(
        LocalStore(tmp_path), ae_title="WORKSTATION", port=0, allowed_calling_aes=["PACS"]
    ) as scp:
        with pytest.raises(DicomNetError) as error:
            send(node_of(scp), ct.paths, calling_ae="STRANGER")
        assert str(error.value).endswith("rejected the association: it does not know our AE title 'STRANGER'")
        assert [s.ok for s in send(node_of(scp), ct.paths, calling_ae="PACS")] == [True] * 3


def test_a_port_in_use_is_a_clear_error(server: StorageServer, tmp_path: Path):
    other = StorageServer(LocalStore(tmp_path / "other"), port=server.port)
    with pytest.raises(DicomNetError, match=r"^Storage server MEDVIS cannot listen on 127\.0\.0\.1:\d+: "):
        other.start()
    assert not other.running


def test_an_instance_without_uids_is_refused_and_not_filed(
    server: StorageServer, ct: CTStudy, tmp_path: Path
):
    ds = pydicom.dcmread(ct.paths[0])
    del ds.StudyInstanceUID
    path = tmp_path / "no-study.dcm"
    ds.save_as(path, enforce_file_format=True)
    [status] = send(node_of(server), [path])
    assert (status.ok, status.status) == (False, 0xA900)
    assert status.message.startswith("0xA900 Failure")
    assert server.filed == [] and server.store.studies() == []


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: the set-up installs it (Debian package openssl)")
    folder = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA")
    run("req", "-x509", *key, "-keyout", "rogue.key", "-out", "rogue.pem", "-subj", "/CN=rogue")
    extensions = {"server": "subjectAltName=IP:127.0.0.1", "client": "extendedKeyUsage=clientAuth"}
    for name, extension in extensions.items():
        (folder / f"{name}.ext").write_text(extension + "\n")
        run("req", *key[:-2], "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        sign = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
        run("x509", "-req", "-in", f"{name}.csr", *sign, "-out", f"{name}.pem", "-extfile", f"{name}.ext")
    return {p.stem + p.suffix.replace(".", "_"): p for p in folder.iterdir()}


def test_send_over_tls(tmp_path: Path, ct: CTStudy, certificates):
    server_tls = TLSSettings(certificates["ca_pem"], certificates["server_pem"], certificates["server_key"])
    client_tls = TLSSettings(certificates["ca_pem"], certificates["client_pem"], certificates["client_key"])
    with StorageServer(LocalStore(tmp_path), ae_title="WORKSTATION", port=0, tls=server_tls) as scp:
        statuses = send(node_of(scp, tls=client_tls), ct.paths)
        assert [s.ok for s in statuses] == [True] * 3
        # a peer without TLS is turned away at the handshake, with a hint
        with pytest.raises(DicomNetError, match="same TLS setting"):
            verify(node_of(scp), timeout=3)
        # a peer that does not trust our CA does not talk to us
        distrust = TLSSettings(
            certificates["rogue_pem"], certificates["client_pem"], certificates["client_key"]
        )
        with pytest.raises(DicomNetError) as error:
            verify(node_of(scp, tls=distrust), timeout=3)
        assert str(error.value) == (
            f"Cannot reach WORKSTATION@127.0.0.1:{scp.port}: "
            "the TLS handshake failed (certificates, or the peer does not use TLS)"
        )
    assert len(LocalStore(tmp_path).series_files(ct.study_uid, ct.series_uid)) == 3


def test_stop_closes_the_port(tmp_path: Path):
    """stop() really closes the port (the window stops and starts the receiver at will)."""
    scp = StorageServer(LocalStore(tmp_path), port=0)
    scp.start()
    port = scp.port
    scp.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
    assert not scp.running
