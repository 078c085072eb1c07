"""A remote DICOM application entity (a PACS, a modality, another workstation) and TLS settings."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from medvis_desktop.dicomnet.errors import DicomNetError

DEFAULT_AE = "MEDVIS"
"""Our own AE title unless the user sets another: what the PACS must know us by."""

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for a connection, an association answer or a DIMSE response."""

_AE_CHARACTERS = re.compile(r"^[\x20-\x5b\x5d-\x7e]+$")  # printable ASCII without the backslash
_NODE_TEXT = re.compile(r"^(?P<ae>[^@]+)@(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:@\[\]]+)):(?P<port>\d{1,5})$")


def check_ae_title(title: str) -> str:
    """`title` without padding, or a DicomNetError: PS3.5 AE is 1–16 characters, no backslash."""
    stripped = title.strip()
    if not stripped or len(stripped) > 16 or not _AE_CHARACTERS.match(stripped):
        raise DicomNetError(
            f"AE title {title!r} is not valid: 1 to 16 printable ASCII characters, no backslash"
        )
    return stripped


@dataclass(frozen=True)
class TLSSettings:
    """Optional DICOM TLS (PS3.15 Annex B): whom we trust, and who we are when asked."""

    ca_file: Path | None = None  # certificates we trust; None: the system's trust store
    cert_file: Path | None = None  # our certificate (PEM), for a peer that wants to see one
    key_file: Path | None = None  # its private key (PEM); None: the key is inside cert_file

    def client_context(self) -> ssl.SSLContext:
        """TLS for our side of an association we request: the peer's certificate is checked."""
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_opt(self.ca_file))
            if self.cert_file:
                context.load_cert_chain(str(self.cert_file), _opt(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise DicomNetError(f"TLS settings cannot be used: {exc}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def server_context(self) -> ssl.SSLContext:
        """TLS for our Storage SCP: our certificate is required; with a CA, so are the peers'."""
        if not self.cert_file:
            raise DicomNetError("TLS for the storage server needs a certificate file")
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=_opt(self.ca_file))
            context.load_cert_chain(str(self.cert_file), _opt(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise DicomNetError(f"TLS settings cannot be used: {exc}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


@dataclass(frozen=True)
class Node:
    """Where a DICOM peer listens and the AE title it answers to, as a node list stores it."""

    ae_title: str
    host: str
    port: int
    tls: TLSSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title))
        if not self.host or any(c.isspace() for c in self.host):
            raise DicomNetError(f"Host {self.host!r} is not valid")
        if not 1 <= int(self.port) <= 65535:
            raise DicomNetError(f"Port {self.port} is not valid: 1 to 65535")
        object.__setattr__(self, "port", int(self.port))

    @classmethod
    def parse(cls, text: str, *, tls: TLSSettings | None = None) -> Node:
        """'AE@host:port' (an IPv6 host in brackets: 'AE@[::1]:104'), as typed on a command line."""
        match = _NODE_TEXT.match(text.strip())
        if not match:
            raise DicomNetError(f"{text!r} is not a DICOM node: write AE@host:port, e.g. PACS@10.0.0.5:104")
        host = match["ipv6"] or match["host"]
        return cls(match["ae"], host, int(match["port"]), tls)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"
