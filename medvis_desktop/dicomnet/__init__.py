"""DICOM networking, no Qt: verify, query, retrieve into a local store, receive, send (pynetdicom).

Typical use::

    node = Node.parse("PACS@10.0.0.5:104")
    verify(node)
    studies = find_studies(node, patient_id="MV-0007")
    series = find_series(node, studies[0].study_uid)
    retrieve_series(node, studies[0].study_uid, series[0].series_uid, LocalStore(folder))
    statuses = send(node, files); raise_if_incomplete(node, statuses)

The public names load their submodule on first use (PEP 562 `__getattr__`): pynetdicom and
pydicom take a third of a second to import, which the viewer's window must not wait for.
"""

from __future__ import annotations

from medvis_desktop.lazy import lazy_names

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

# Each public name imported on first use, by the submodule that defines it.
_SOURCES = {
    "DicomNetError": "errors",
    "DEFAULT_AE": "node",
    "DEFAULT_TIMEOUT": "node",
    "Node": "node",
    "TLSSettings": "node",
    "SeriesInfo": "query",
    "StudyInfo": "query",
    "find_series": "query",
    "find_studies": "query",
    "verify": "query",
    "RetrieveResult": "retrieve",
    "retrieve_series": "retrieve",
    "DEFAULT_PORT": "scp",
    "StorageServer": "scp",
    "SendStatus": "send",
    "raise_if_incomplete": "send",
    "send": "send",
    "LocalStore": "store",
    "StoredSeries": "store",
    "StoredStudy": "store",
}
# Its submodules, which were its attributes when it imported them all at once.
_SUBMODULES = ("association", "errors", "node", "query", "retrieve", "scp", "send", "store")

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, _SUBMODULES)
