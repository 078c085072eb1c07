"""DICOM networking, no Qt: verify, query, retrieve into a local store, receive, send (pynetdicom).

Typical use::

    node = Node.parse("PACS@10.0.0.5:104")
    verify(node)
    studies = find_studies(node, patient_id="MV-0007")
    series = find_series(node, studies[0].study_uid)
    retrieve_series(node, studies[0].study_uid, series[0].series_uid, LocalStore(folder))
    statuses = send(node, files); raise_if_incomplete(node, statuses)
"""

from medvis_desktop.dicomnet.errors import DicomNetError
from medvis_desktop.dicomnet.node import DEFAULT_AE, DEFAULT_TIMEOUT, Node, TLSSettings
from medvis_desktop.dicomnet.query import SeriesInfo, StudyInfo, find_series, find_studies, verify
from medvis_desktop.dicomnet.retrieve import RetrieveResult, retrieve_series
from medvis_desktop.dicomnet.scp import DEFAULT_PORT, StorageServer
from medvis_desktop.dicomnet.send import SendStatus, raise_if_incomplete, send
from medvis_desktop.dicomnet.store import LocalStore, StoredSeries, StoredStudy

__all__ = [
    "DEFAULT_AE",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DicomNetError",
    "LocalStore",
    "Node",
    "RetrieveResult",
    "SendStatus",
    "SeriesInfo",
    "StorageServer",
    "StoredSeries",
    "StoredStudy",
    "StudyInfo",
    "TLSSettings",
    "find_series",
    "find_studies",
    "raise_if_incomplete",
    "retrieve_series",
    "send",
    "verify",
]
