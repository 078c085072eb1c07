"""Node addresses as typed by a user ('AE@host:port') and the checks on AE titles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medvis_desktop.dicomnet import DicomNetError, Node, TLSSettings
from medvis_desktop.errors import MedvisError


def test_parse_and_print_a_node():
    node = Node.parse("PACS@10.0.0.5:104")
    assert (node.ae_title, node.host, node.port, node.tls) == ("PACS", "10.0.0.5", 104, None)
    assert str(node) == "PACS@10.0.0.5:104"
    assert Node.parse(str(node)) == node


def test_parse_a_host_name_and_an_ipv6_address():
    assert Node.parse(" ORTHANC@pacs.hospital.example:4242 ").host == "pacs.hospital.example"
    node = Node.parse("PACS@[::1]:11112")
    assert (node.host, node.port) == ("::1", 11112)
    assert str(node) == "PACS@[::1]:11112"


def test_ae_title_padding_is_not_significant():
    assert Node(" PACS  ", "127.0.0.1", 104).ae_title == "PACS"


def test_tls_settings_ride_along():
    tls = TLSSettings(ca_file=Path("/etc/ssl/ca.pem"))
    assert Node.parse("PACS@10.0.0.5:2762", tls=tls).tls is tls


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PACS10.0.0.5:104", "is not a DICOM node: write AE@host:port"),
        ("PACS@10.0.0.5", "is not a DICOM node: write AE@host:port"),
        ("PACS@10.0.0.5:0", "Port 0 is not valid"),
        ("PACS@10.0.0.5:70000", "Port 70000 is not valid"),
        ("AN-AE-TITLE-TOO-LONG@10.0.0.5:104", "AE title 'AN-AE-TITLE-TOO-LONG' is not valid"),
        ("BACK\\SLASH@10.0.0.5:104", "is not valid: 1 to 16 printable ASCII characters, no backslash"),
        ("   @10.0.0.5:104", "is not a DICOM node"),
        ("A B\tC@10.0.0.5:104", "AE title 'A B\\tC' is not valid"),
        ("PÄCS@10.0.0.5:104", "AE title 'PÄCS' is not valid"),
    ],
)
def test_bad_nodes_are_one_clear_error(text, message):
    with pytest.raises(DicomNetError, match=re.escape(message)) as error:
        Node.parse(text)
    assert isinstance(error.value, MedvisError)


def test_unusable_tls_files_are_a_clear_error(tmp_path: Path):
    with pytest.raises(DicomNetError, match=r"^TLS settings cannot be used: "):
        TLSSettings(ca_file=tmp_path / "missing.pem").client_context()
    with pytest.raises(DicomNetError, match="needs a certificate file"):
        TLSSettings().server_context()
