"""Opening an association, and turning every way that fails into one clear sentence.

pynetdicom reports a refused TCP connection, a rejection and a silent peer all the same way
(an association that is not established); the user needs to know which one it was to fix it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt, sop_class
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import code_to_category

from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import Node, check_ae_title

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
"""Offered first everywhere: every peer has them and every reader decodes them."""

COMPRESSED = [
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    JPEG2000,
]
"""Accepted as stored by the PACS (no transcoding on its side): the project's decoders read them."""

STORAGE_CLASSES: list[UID] = [
    UID(getattr(sop_class, name))
    for name in (
        # the modalities medvis opens
        "CTImageStorage",
        "EnhancedCTImageStorage",
        "LegacyConvertedEnhancedCTImageStorage",
        "MRImageStorage",
        "EnhancedMRImageStorage",
        "EnhancedMRColorImageStorage",
        "LegacyConvertedEnhancedMRImageStorage",
        "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation",
        "DigitalXRayImageStorageForProcessing",
        "DigitalMammographyXRayImageStorageForPresentation",
        "DigitalMammographyXRayImageStorageForProcessing",
        "BreastTomosynthesisImageStorage",
        "UltrasoundImageStorage",
        "UltrasoundMultiFrameImageStorage",
        "EnhancedUSVolumeStorage",
        "NuclearMedicineImageStorage",
        "PositronEmissionTomographyImageStorage",
        "EnhancedPETImageStorage",
        "LegacyConvertedEnhancedPETImageStorage",
        "XRayAngiographicImageStorage",
        "EnhancedXAImageStorage",
        "XRayRadiofluoroscopicImageStorage",
        "EnhancedXRFImageStorage",
        "XRay3DAngiographicImageStorage",
        # what medvis writes back, and what a study commonly holds next to the images
        "SecondaryCaptureImageStorage",
        "MultiFrameSingleBitSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage",
        "SegmentationStorage",
        "ParametricMapStorage",
        "GrayscaleSoftcopyPresentationStateStorage",
        "BasicTextSRStorage",
        "EnhancedSRStorage",
        "ComprehensiveSRStorage",
        "Comprehensive3DSRStorage",
        "KeyObjectSelectionDocumentStorage",
        "RTStructureSetStorage",
        "RTDoseStorage",
        "RTImageStorage",
        "SpatialRegistrationStorage",
        "DeformableSpatialRegistrationStorage",
        "EncapsulatedPDFStorage",
    )
]
"""The storage SOP classes we receive (C-GET, Storage SCP). Two contexts each fit in the
128 presentation contexts an association may propose."""

VERIFICATION = UID(sop_class.Verification)
FIND_MODEL = UID(sop_class.StudyRootQueryRetrieveInformationModelFind)
GET_MODEL = UID(sop_class.StudyRootQueryRetrieveInformationModelGet)
MOVE_MODEL = UID(sop_class.StudyRootQueryRetrieveInformationModelMove)


class ContextsRejected(DicomNetError):
    """The peer took the association but none of its presentation contexts (pynetdicom aborts)."""


def context(abstract_syntax: str, transfer_syntaxes: Sequence[str] = UNCOMPRESSED) -> PresentationContext:
    """One presentation context (pynetdicom's own builder, without its 'all syntaxes' default)."""
    item = PresentationContext()
    item.abstract_syntax = UID(abstract_syntax)
    item.transfer_syntax = [UID(ts) for ts in transfer_syntaxes]
    return item


def new_ae(calling_ae: str, timeout: float) -> AE:
    """An AE with every timeout set: pynetdicom's defaults wait a minute or forever."""
    ae = AE(ae_title=check_ae_title(calling_ae))
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    return ae


@contextmanager
def open_association(
    node: Node,
    contexts: list[PresentationContext],
    *,
    calling_ae: str,
    timeout: float,
    ext_neg: list[Any] | None = None,
    handlers: list[tuple[Any, Any]] | None = None,
) -> Iterator[Association]:
    """An established association with `node`, released (or aborted on error) at the end."""
    ae = new_ae(calling_ae, timeout)
    connected = threading.Event()
    all_handlers = [*(handlers or []), (evt.EVT_CONN_OPEN, lambda _event: connected.set())]
    tls_args = (node.tls.client_context(), node.host) if node.tls else None
    started = time.monotonic()
    try:
        try:
            assoc = ae.associate(
                node.host,
                node.port,
                contexts=contexts,
                ae_title=node.ae_title,
                ext_neg=ext_neg,
                tls_args=tls_args,
                evt_handlers=all_handlers,
            )
        except OSError as exc:  # the host name does not resolve
            raise DicomNetError(f"Cannot reach {node}: host {node.host!r} is unknown ({exc})") from exc
        if not assoc.is_established:
            if assoc.rejected_contexts and not assoc.accepted_contexts:
                names = sorted({sop_class_name(c.abstract_syntax) for c in assoc.rejected_contexts})
                raise ContextsRejected(f"{node} accepts none of what we asked for: {', '.join(names)}")
            raise DicomNetError(_why_not_established(node, assoc, connected.is_set(), started, timeout))
        try:
            yield assoc
        except BaseException:
            assoc.abort()
            raise
        if assoc.is_established:
            assoc.release()
    finally:
        ae.shutdown()


def sop_class_name(uid: str) -> str:
    """A SOP class's name when the standard has one, else its UID."""
    uid = UID(uid)
    return uid.name if uid.name != str(uid) else str(uid)


def _why_not_established(
    node: Node, assoc: Association, connected: bool, started: float, timeout: float
) -> str:
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        reason = answer.reason_str if answer is not None else "no reason given"
        hint = {
            "Called AE title not recognised": f": it does not answer to the AE title {node.ae_title!r}",
            "Calling AE title not recognised": (
                f": it does not know our AE title {assoc.requestor.ae_title!r}"
            ),
        }.get(reason, f" ({reason})")
        return f"{node} rejected the association{hint}"
    if not connected:
        return f"Cannot reach {node}: {_connect_error(node, timeout)}"
    if time.monotonic() - started >= 0.9 * timeout:
        return (
            f"{node} accepted the connection but did not answer within {timeout:g} s "
            "(is this a DICOM port, and is TLS set the same on both sides?)"
        )
    return f"{node} closed the connection without answering (is this a DICOM port with the same TLS setting?)"


def _connect_error(node: Node, timeout: float) -> str:
    """Why TCP failed, asked again with a plain socket: pynetdicom only logs it."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout):
            pass
    except TimeoutError:
        return f"no answer within {timeout:g} s (host down or a firewall in between?)"
    except ConnectionRefusedError:
        return "connection refused (is the PACS running, and are host and port right?)"
    except OSError as exc:
        return exc.strerror or str(exc)
    if node.tls:
        return "the TLS handshake failed (certificates, or the peer does not use TLS)"
    return "the connection failed"


def status_text(status: Dataset, table: dict[int, tuple[str, str]]) -> str:
    """'0xA801 Failure: Move destination unknown (comment)' from a DIMSE response status."""
    code = int(status.Status)
    description = table.get(code, ("", ""))[1] or "no description"
    text = f"0x{code:04X} {code_to_category(code)}: {description}"
    comment = status.get("ErrorComment")
    return f"{text} ({comment})" if comment else text


def no_response(node: Node, timeout: float, what: str, waited: float) -> DicomNetError:
    """The error for an empty response: pynetdicom's sign of a timeout or of an abort."""
    if waited >= 0.9 * timeout:
        return DicomNetError(f"{node} did not answer {what} within {timeout:g} s")
    return DicomNetError(f"{node} aborted the association during {what}")
