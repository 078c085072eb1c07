"""The workstation's local study store: received instances filed by UID, whole files only.

Layout: ROOT/<study UID>/<series UID>/<SOP instance UID>.dcm. A UID is used as a file name
only when it is a well-formed UID (digits and dots, at most 64 characters); anything else a
peer sends (a '../' included) becomes a hash. Each file is written under a temporary name and
renamed, so a reader, a crash or a cancelled retrieve never leaves half a file behind; an
instance already present is not written again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

log = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
SUFFIX = ".dcm"
PARTIAL = ".part"


def safe_name(uid: str) -> str:
    """A file name for `uid`: the UID itself when well-formed, else a stable hash of it."""
    uid = uid.strip().rstrip("\x00")
    if _UID.match(uid) and len(uid) <= 64:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


@dataclass(frozen=True)
class StoredSeries:
    """A series in the store: its folder is what `imaging.load` opens."""

    series_uid: str
    modality: str
    description: str
    series_number: int | None
    folder: Path
    instance_count: int


@dataclass(frozen=True)
class StoredStudy:
    """A study in the store, as the 'Received studies' list shows it."""

    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    description: str
    folder: Path
    series: tuple[StoredSeries, ...]


class LocalStore:
    """A folder of received studies; safe for several receiving threads at once."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def series_folder(self, study_uid: str, series_uid: str) -> Path:
        return self.root / safe_name(study_uid) / safe_name(series_uid)

    def path_for(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
        return self.series_folder(study_uid, series_uid) / (safe_name(sop_instance_uid) + SUFFIX)

    def add_encoded(
        self, data: bytes, *, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> tuple[Path, bool]:
        """File `data` (a DICOM file's bytes); (its path, False if the instance was already there)."""
        target = self.path_for(study_uid, series_uid, sop_instance_uid)
        if target.exists():
            return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}{PARTIAL}"
        try:
            with open(temporary, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return target, True

    def add_dataset(self, dataset: Dataset) -> tuple[Path, bool]:
        """File a dataset that has its file meta information (as read or as received)."""
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        return self.add_encoded(
            buffer.getvalue(),
            study_uid=str(dataset.StudyInstanceUID),
            series_uid=str(dataset.SeriesInstanceUID),
            sop_instance_uid=str(dataset.SOPInstanceUID),
        )

    def import_file(self, path: Path | str) -> tuple[Path, bool]:
        """Copy a DICOM file from disk into the store."""
        data = Path(path).read_bytes()
        header = dcmread(io.BytesIO(data), stop_before_pixels=True)
        return self.add_encoded(
            data,
            study_uid=str(header.StudyInstanceUID),
            series_uid=str(header.SeriesInstanceUID),
            sop_instance_uid=str(header.SOPInstanceUID),
        )

    def series_files(self, study_uid: str, series_uid: str) -> list[Path]:
        """The whole instance files of one series, sorted by name."""
        folder = self.series_folder(study_uid, series_uid)
        return sorted(folder.glob("*" + SUFFIX)) if folder.is_dir() else []

    def studies(self) -> list[StoredStudy]:
        """Every study in the store, newest study date first; one header read per series."""
        studies = []
        for study_folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            series, header = [], None
            for series_folder in sorted(p for p in study_folder.iterdir() if p.is_dir()):
                files = sorted(series_folder.glob("*" + SUFFIX))
                first = _header(files)
                if first is None:
                    continue
                header = header or first
                series.append(
                    StoredSeries(
                        series_uid=str(first.get("SeriesInstanceUID", series_folder.name)),
                        modality=str(first.get("Modality", "") or ""),
                        description=str(first.get("SeriesDescription", "") or ""),
                        series_number=_int(first.get("SeriesNumber")),
                        folder=series_folder,
                        instance_count=len(files),
                    )
                )
            if header is None:
                continue
            series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))
            studies.append(
                StoredStudy(
                    study_uid=str(header.get("StudyInstanceUID", study_folder.name)),
                    patient_name=str(header.get("PatientName", "") or ""),
                    patient_id=str(header.get("PatientID", "") or ""),
                    study_date=str(header.get("StudyDate", "") or ""),
                    description=str(header.get("StudyDescription", "") or ""),
                    folder=study_folder,
                    series=tuple(series),
                )
            )
        studies.sort(key=lambda s: s.study_date, reverse=True)
        return studies


def _header(files: list[Path]) -> Dataset | None:
    """The first readable header among `files` (one unreadable file must not hide a series)."""
    for path in files:
        try:
            return dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            log.warning("Skipping unreadable %s: %s", path, exc)
    return None


def _int(value: object) -> int | None:
    try:
        return None if value is None or value == "" else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
