"""A small real CT series written as a scanner would: every module of the CT Image IOD filled.

Real head CT pixels (the InVesalius example) go into single-frame CT Image Storage files with
one Frame of Reference, positions along a tilted-in-plane slice normal, shuffled file names
and instance numbers counting down, so nothing downstream can lean on file order. Each file is
itself checked with dciodvfy by the tests, so the fixture cannot be sloppier than a scanner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"


@dataclass(frozen=True)
class CTStudy:
    """What was written: the files in slice order and the identities a result must keep."""

    folder: Path
    paths: list[Path]
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: list[str]  # slice order (position along the normal)
    positions: list[tuple[float, float, float]]
    patient_id: str = "MV-0007"
    patient_name: str = "Doe^Jane"
    extra: dict = field(default_factory=dict)


def write_ct_study(hu: np.ndarray, folder: Path, *, angle_degrees: float = 12.0) -> CTStudy:
    """`hu` (z, y, x, int16 HU) as one CT series in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    angle = np.radians(angle_degrees)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    column = np.array([-np.sin(angle), np.cos(angle), 0.0])
    normal = np.cross(row, column)
    spacing, step = (0.78125, 0.78125), 2.5
    origin = np.array([-100.0, -112.5, -40.0])
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    stored = np.round(hu.astype(np.float64) + 1024).astype(np.uint16)
    assert stored.max() < 4096, "HU do not fit 12 bits"
    count = hu.shape[0]
    names = np.random.default_rng(3).permutation(count)
    paths, uids, positions = [], [], []
    for z in range(count):
        position = origin + z * step * normal
        ds = _ct_header(study_uid, series_uid, frame_uid)
        ds.InstanceNumber = count - z
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row, *column)]
        ds.SliceLocation = round(float(position @ normal), 4)
        ds.PixelSpacing = list(spacing)
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelData = np.ascontiguousarray(stored[z]).tobytes()
        path = folder / f"CT{names[z]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        uids.append(str(ds.SOPInstanceUID))
        positions.append(tuple(float(v) for v in ds.ImagePositionPatient))
    return CTStudy(folder, paths, study_uid, series_uid, frame_uid, uids, positions)


def _ct_header(study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate, ds.InstanceCreationTime = "20240311", "101530"
    # Patient
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MV-0007"
    ds.IssuerOfPatientID = "MEDVIS-TEST"
    ds.PatientBirthDate = "19610423"
    ds.PatientSex = "F"
    # General Study, Patient Study
    ds.StudyInstanceUID = study_uid
    ds.StudyDate, ds.StudyTime = "20240311", "101200"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StudyID = "4711"
    ds.AccessionNumber = "ACC20240311"
    ds.StudyDescription = "CT HEAD WITHOUT CONTRAST"
    ds.PatientAge = "062Y"
    # General Series
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 3
    ds.SeriesDate, ds.SeriesTime = "20240311", "101500"
    ds.SeriesDescription = "Head 2.5mm"
    ds.BodyPartExamined = "HEAD"
    ds.PatientPosition = "HFS"
    # Frame of Reference
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = "MEDVIS TEST SCANNER"
    ds.ManufacturerModelName = "Phantom 64"
    ds.DeviceSerialNumber = "SN-0001"
    ds.SoftwareVersions = "1.0"
    ds.InstitutionName = "Test Hospital"
    ds.StationName = "CT01"
    # General Acquisition, General Image
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = "20240311", "101510"
    ds.ContentDate, ds.ContentTime = "20240311", "101520"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    # Image Plane
    ds.SliceThickness = 2.5
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    # CT Image
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.KVP = 120
    ds.XRayTubeCurrent = 250
    ds.ConvolutionKernel = "H30s"
    # VOI LUT
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    ds.WindowCenterWidthExplanation = "BRAIN"
    return ds
