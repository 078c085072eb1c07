"""C-ECHO and C-FIND (Study Root): is the PACS there, and what does it hold."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.status import GENERAL_STATUS, QR_FIND_SERVICE_CLASS_STATUS

from medvis_desktop.dicomnet.association import (
    FIND_MODEL,
    VERIFICATION,
    context,
    no_response,
    open_association,
    status_text,
)
from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import DEFAULT_AE, DEFAULT_TIMEOUT, Node


@dataclass(frozen=True)
class StudyInfo:
    """One study as the PACS describes it in a C-FIND answer; counts are None if not given."""

    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str  # DICOM DA, YYYYMMDD, "" when unknown
    description: str
    accession_number: str
    modalities: tuple[str, ...]
    series_count: int | None
    instance_count: int | None


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study as the PACS describes it."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    series_number: int | None
    instance_count: int | None


def verify(node: Node, *, calling_ae: str = DEFAULT_AE, timeout: float = DEFAULT_TIMEOUT) -> float:
    """C-ECHO `node`; the round trip in seconds, or a DicomNetError saying what is wrong."""
    started = time.monotonic()
    with open_association(node, [context(VERIFICATION)], calling_ae=calling_ae, timeout=timeout) as assoc:
        sent = time.monotonic()
        status = assoc.send_c_echo()
        if not status:
            raise no_response(node, timeout, "C-ECHO", time.monotonic() - sent)
        if int(status.Status) != 0x0000:
            raise DicomNetError(f"{node} answered C-ECHO with {status_text(status, GENERAL_STATUS)}")
    return time.monotonic() - started


def find_studies(
    node: Node,
    *,
    patient_name: str = "",
    patient_id: str = "",
    study_date: str = "",
    accession_number: str = "",
    modality: str = "",
    description: str = "",
    study_uid: str = "",
    limit: int | None = 500,
    calling_ae: str = DEFAULT_AE,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[StudyInfo]:
    """Studies matching the filters (DICOM matching: '*' wildcards, date ranges 'YYYYMMDD-YYYYMMDD').

    An empty filter matches everything; past `limit` answers the query is cancelled, so that a
    bare query against a hospital PACS cannot return a million rows.
    """
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    query.PatientName = patient_name
    query.PatientID = patient_id
    query.StudyDate = study_date
    query.StudyTime = ""
    query.AccessionNumber = accession_number
    query.ModalitiesInStudy = modality
    query.StudyDescription = description
    query.NumberOfStudyRelatedSeries = None
    query.NumberOfStudyRelatedInstances = None
    query.SpecificCharacterSet = "ISO_IR 192"
    answers = _find(node, query, limit=limit, calling_ae=calling_ae, timeout=timeout)
    return [
        StudyInfo(
            study_uid=str(a.get("StudyInstanceUID", "")),
            patient_name=str(a.get("PatientName", "") or ""),
            patient_id=str(a.get("PatientID", "") or ""),
            study_date=str(a.get("StudyDate", "") or ""),
            description=str(a.get("StudyDescription", "") or ""),
            accession_number=str(a.get("AccessionNumber", "") or ""),
            modalities=_multi(a.get("ModalitiesInStudy")),
            series_count=_count(a.get("NumberOfStudyRelatedSeries")),
            instance_count=_count(a.get("NumberOfStudyRelatedInstances")),
        )
        for a in answers
    ]


def find_series(
    node: Node,
    study_uid: str,
    *,
    calling_ae: str = DEFAULT_AE,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[SeriesInfo]:
    """The series of one study, in series-number order."""
    if not study_uid:
        raise ValueError("find_series needs a Study Instance UID")
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.SeriesDescription = ""
    query.SeriesNumber = None
    query.NumberOfSeriesRelatedInstances = None
    query.SpecificCharacterSet = "ISO_IR 192"
    answers = _find(node, query, limit=None, calling_ae=calling_ae, timeout=timeout)
    series = [
        SeriesInfo(
            study_uid=str(a.get("StudyInstanceUID", study_uid) or study_uid),
            series_uid=str(a.get("SeriesInstanceUID", "")),
            modality=str(a.get("Modality", "") or ""),
            description=str(a.get("SeriesDescription", "") or ""),
            series_number=_count(a.get("SeriesNumber")),
            instance_count=_count(a.get("NumberOfSeriesRelatedInstances")),
        )
        for a in answers
    ]
    return sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))


def _find(node: Node, query: Dataset, *, limit: int | None, calling_ae: str, timeout: float) -> list[Dataset]:
    answers: list[Dataset] = []
    with open_association(node, [context(FIND_MODEL)], calling_ae=calling_ae, timeout=timeout) as assoc:
        cancelled = False
        waiting = time.monotonic()
        for status, identifier in assoc.send_c_find(query, FIND_MODEL, msg_id=1):
            if not status:
                raise no_response(node, timeout, "C-FIND", time.monotonic() - waiting)
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if identifier is not None and not cancelled:
                    answers.append(identifier)
                if limit is not None and len(answers) >= limit and not cancelled:
                    assoc.send_c_cancel(1, query_model=FIND_MODEL)
                    cancelled = True
            elif code in (0x0000, 0xFE00):
                break
            else:
                text = status_text(status, QR_FIND_SERVICE_CLASS_STATUS)
                raise DicomNetError(f"{node} answered C-FIND with {text}")
            waiting = time.monotonic()
    return answers


def _multi(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[attr-defined]


def _count(value: object) -> int | None:
    try:
        return None if value is None or value == "" else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
