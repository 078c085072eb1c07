"""What a Volume keeps of the DICOM series it was read from, so results can go back with it.

A derived DICOM object (Parametric Map, Segmentation, Secondary Capture) must name the same
patient and study, lie in the same Frame of Reference and reference the very instances (and
frames) each of its frames was computed from. The Volume's voxels and geometry do not carry
that, so the loader keeps this small record: one `SourceSlice` per Volume slice and a reduced
header per source instance (no pixels, no private attributes, only the modules below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

if TYPE_CHECKING:
    from medvis_desktop.imaging.dicom import Frame

# Patient (0010,xxxx) and clinical trial (0012,xxxx) attributes are kept whole.
KEPT_GROUPS = (0x0010, 0x0012)
# General Study (every attribute), and what a derived object copies from the rest of the
# source: SOP common, series, Frame of Reference, equipment, image plane and multi-frame
# functional groups (so highdicom can match each derived frame to its source frame).
KEPT_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    # General Study
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence",
    "StudyDescription",
    "ProcedureCodeSequence",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence",
    "ReferencedStudySequence",
    "StudyID",
    "RequestingService",
    "RequestingServiceCodeSequence",
    "ReasonForPerformedProcedureCodeSequence",
    "AdmittingDiagnosesDescription",
    "AdmissionID",
    # General Series
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Laterality",
    "BodyPartExamined",
    "PatientPosition",
    # Frame of Reference
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    # General Equipment (the source's acquisition equipment is named as contributing)
    "Manufacturer",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "StationName",
    # General Image, Image Plane, Image Pixel
    "ImageType",
    "ImageLaterality",
    "PatientOrientation",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "Rows",
    "Columns",
    # Multi-frame
    "NumberOfFrames",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)


def reduced_header(ds: Dataset) -> Dataset:
    """The attributes of `ds` a derived object needs (see KEPT_*); pixels and the rest stay out.

    Elements are kept as read (not decoded), so a malformed value in one of them cannot stop a
    study from loading: it would only surface when a result is written from it.
    """
    kept = Dataset()
    tags = ds.keys()  # not `for element in ds`, which decodes every element
    for tag in tags:
        if tag.is_private:
            continue
        if tag.group in KEPT_GROUPS or keyword_for_tag(tag) in KEPT_KEYWORDS:
            kept[tag] = ds.get_item(tag)
    return kept


@dataclass(frozen=True)
class SourceSlice:
    """Where one Volume slice came from: the instance, and the frame within it if multi-frame."""

    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None  # 1-based, as DICOM counts frames; None for a single-frame instance
    position: tuple[float, float, float] | None  # ImagePositionPatient as stored (mm)


@dataclass
class DicomSource:
    """The DICOM series a Volume was read from: its identity, one entry per slice, the headers.

    `slices[z]` is the source of Volume slice z (the Volume's z order, which sorts by position).
    `headers` maps each SOP Instance UID to its reduced header (`reduced_header`).
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    slices: list[SourceSlice]
    headers: dict[str, Dataset] = field(repr=False)

    @property
    def patient_study(self) -> Dataset:
        """A header with the patient and study attributes (every source header has them)."""
        return self.headers[self.slices[0].sop_instance_uid]

    def headers_for(self, slices: Sequence[int]) -> list[Dataset]:
        """The source instances of the given Volume slices, each once, in first-seen order."""
        uids = dict.fromkeys(self.slices[z].sop_instance_uid for z in slices)
        return [self.headers[uid] for uid in uids]


SOURCE_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")


def source_of(frames: Sequence[Frame]) -> DicomSource | None:
    """The record DICOM results reference; None when an instance lacks the UIDs to name it."""
    slices = []
    headers: dict[str, Dataset] = {}
    for frame in frames:
        header = frame.header
        if header is None or not all(header.get(key) for key in SOURCE_UIDS):
            return None
        uid = str(header.SOPInstanceUID)
        headers.setdefault(uid, header)
        slices.append(
            SourceSlice(
                sop_class_uid=str(header.SOPClassUID),
                sop_instance_uid=uid,
                frame_number=None if frame.frame_index is None else frame.frame_index + 1,
                position=None if frame.position is None else tuple(float(v) for v in frame.position),
            )
        )
    first = frames[0].header
    frame_of_reference = first.get("FrameOfReferenceUID")
    return DicomSource(
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=str(first.get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(frame_of_reference) if frame_of_reference else None,
        slices=slices,
        headers=headers,
    )
