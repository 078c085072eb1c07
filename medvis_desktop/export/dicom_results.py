"""Results as DICOM objects a PACS files with the source study (highdicom), no networking.

- `parametric_map`: the heat map as float32 on the source series' own grid, one frame per
  computed source slice, referencing the source instances, with a palette for display.
- `segmentation`: BINARY SEG, the region above a threshold, one segment per class.
- `secondary_capture`: a screenshot (RGB), from a DICOM study or, with a note of what is
  missing, from any other.

Each object is a new series (new Series Instance UID) in the source's patient and study. The
software versions go into Software Versions, the provenance (method, layer, class, model
sha256, parameters) into Derivation Description, and for SEG also into the segments' Algorithm
Identification. Slices that were not computed (NaN in the map, as the runner leaves them) are
not written; which ones is said in Image Comments.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.data import get_palette_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from medvis_desktop import __version__
from medvis_desktop.export.atomic import atomic_write, make_folder
from medvis_desktop.export.provenance import Provenance
from medvis_desktop.imaging import itk
from medvis_desktop.imaging.dicom_source import DicomSource
from medvis_desktop.imaging.volume import Volume

MANUFACTURER = "medvis"
MODEL_NAME = "medvis_desktop"
# Results sort after the scanner's series in a PACS viewer.
PM_SERIES_NUMBER = 9001
SEG_SERIES_NUMBER = 9002
SC_SERIES_NUMBER = 9003
# What the heat map's values are, from DICOM CID 217 "Visual Explanation" (also in CID 7180,
# the quantities a Parametric Map's real-world value mapping may name). Deconvnet projects a
# feature back to pixels: saliency. A layer's activation map is the nearest to class activation.
QUANTITIES: dict[str, Code] = {
    "grad_cam": codes.DCM.GradientWeightedClassActivation,  # (130403, DCM)
    "deconvnet": codes.DCM.Saliency,  # (130404, DCM)
    "activation_maps": codes.DCM.ClassActivation,  # (130402, DCM)
}
DEFAULT_QUANTITY = codes.DCM.ClassActivation
# The well-known DICOM "Hot Iron" palette (PS3.6 Annex B), as pydicom ships it.
PALETTE = "hotiron.dcm"
# Segments: a region in space (CID 7150) of the method's quantity, found by a neural network.
SEGMENT_CATEGORY = codes.SCT.SpatialAndRelationalConcept
ALGORITHM_FAMILY = codes.DCM.ArtificialIntelligence  # (123110, DCM), CID 7162
# Value lengths the standard allows (LO, ST).
LO = 64
ST = 1024
# Type 2 attributes highdicom reads from the source; absent in some files, empty means unknown.
TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class DicomResultError(ValueError):
    """A result that cannot be written as asked (no DICOM source, a map off the grid...)."""


@dataclass(frozen=True)
class Equipment:
    """Who wrote the object: the General and Enhanced General Equipment modules."""

    manufacturer: str
    model_name: str
    serial_number: str
    software_versions: list[str]

    @classmethod
    def for_provenance(cls, provenance: Provenance | None) -> Equipment:
        """medvis and the libraries that made the result, at the versions that made it."""
        versions = {"medvis": provenance.medvis_version if provenance else __version__}
        if provenance is not None:
            versions |= {k: v for k, v in provenance.versions.items() if k != "medvis-desktop"}
        versions |= {"highdicom": hd.__version__}
        software = [f"{name} {version}"[:LO] for name, version in versions.items() if version]
        # The workstation is the device: its name tells a PACS administrator where a result came from.
        return cls(MANUFACTURER, MODEL_NAME, (socket.gethostname() or "unknown")[:LO], software)

    def new_series(self, series_number: int) -> dict[str, object]:
        """highdicom's arguments for a new series of one instance written by this equipment."""
        return {
            "series_instance_uid": hd.UID(),
            "series_number": series_number,
            "sop_instance_uid": hd.UID(),
            "instance_number": 1,
            "manufacturer": self.manufacturer,
            "manufacturer_model_name": self.model_name,
            "software_versions": self.software_versions,
            "device_serial_number": self.serial_number,
        }


@dataclass(frozen=True)
class Written:
    """Which source slices an object has frames for, and the note saying what was left out."""

    slices: tuple[int, ...]
    note: str | None


def describe(provenance: Provenance, class_name: str | None = None) -> str:
    """'Grad-CAM, layer conv2, class tumour': what the map shows, in words."""
    parts = [provenance.method_label or provenance.method]
    if provenance.layer:
        parts.append(f"layer {provenance.layer}")
    if class_name is not None or provenance.target is not None:
        parts.append(f"class {class_name if class_name is not None else provenance.target}")
    return ", ".join(parts)


def derivation_description(provenance: Provenance, class_name: str | None = None) -> str:
    """The provenance in Derivation Description's 1024 characters: method, model hash, parameters."""
    head = f"{MANUFACTURER} {provenance.medvis_version}: {describe(provenance, class_name)}"
    model = f"model sha256 {provenance.model_sha256 or 'unknown'}"
    if provenance.model_path:
        model += f" ({Path(provenance.model_path).name})"
    parameters = json.dumps(_scalars(provenance.parameters), separators=(",", ":"), default=str)
    text = f"{head}; {model}; parameters {parameters}; made {provenance.created}"
    return text if len(text) <= ST else text[: ST - 1] + "…"


def _scalars(parameters: Mapping[str, object]) -> dict[str, object]:
    """The parameters that fit on a line (the model card travels in the JSON record instead)."""
    return {k: v for k, v in parameters.items() if v is None or isinstance(v, str | int | float | bool)}


def _require_source(volume: Volume, maps: np.ndarray, what: str) -> DicomSource:
    source = volume.dicom
    if source is None:
        raise DicomResultError(
            f"A {what} refers to the DICOM images it was computed from, and this study was not read "
            "from DICOM; save a Secondary Capture (or NIfTI) instead"
        )
    if maps.shape != volume.shape:
        raise DicomResultError(f"Map shape {maps.shape} differs from the volume's {volume.shape}")
    grid = (len(source.slices), source.patient_study.get("Rows"), source.patient_study.get("Columns"))
    if grid != volume.shape:
        raise DicomResultError("The volume's voxels no longer match its DICOM source (cropped or resampled)")
    return source


def computed_slices(maps: np.ndarray) -> np.ndarray:
    """Slices with any value: the runner leaves slices it did not compute all NaN."""
    return np.isfinite(maps).reshape(maps.shape[0], -1).any(axis=1)


def _written(computed: np.ndarray) -> Written:
    slices = tuple(int(z) for z in np.flatnonzero(computed))
    if not slices:
        raise DicomResultError("No slice was computed: there is nothing to write")
    missing = np.flatnonzero(~computed)
    if not missing.size:
        return Written(slices, None)
    note = (
        f"Frames for {len(slices)} of {computed.size} source slices: slices {_ranges(missing)} "
        "(0-based, in the order of position along the slice normal) were not computed and are not written."
    )
    return Written(slices, note)


def _ranges(indices: np.ndarray) -> str:
    """[0, 1, 2, 5, 7, 8] → '0-2, 5, 7-8'."""
    runs: list[list[int]] = []
    for z in (int(i) for i in indices):
        if runs and z == runs[-1][-1] + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _source_images(source: DicomSource, slices: Sequence[int]) -> list[Dataset]:
    """The source headers for highdicom, Type 2 patient/study attributes present (empty if unknown)."""
    images = []
    for header in source.headers_for(slices):
        image = copy.copy(header)
        for keyword in TYPE2_PATIENT_STUDY:
            if keyword not in image:
                setattr(image, keyword, None)
        # Some radiographs store a zero Pixel Spacing; the loader reads that as absent, so do we.
        if "PixelSpacing" in image and not all(float(v) > 0 for v in image.PixelSpacing or [0]):
            del image.PixelSpacing
        images.append(image)
    return images


def _plane_positions(source: DicomSource, slices: Sequence[int]) -> list[hd.PlanePositionSequence] | None:
    """Each written frame at its source slice's stored position (None for images without a frame
    of reference, such as radiographs: highdicom then aligns the single frame to its source)."""
    positions = [source.slices[z].position for z in slices]
    if source.frame_of_reference_uid is None or any(p is None for p in positions):
        return None
    return [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, position) for position in positions]


def _copy_body_part(dataset: Dataset, source: DicomSource | None, *, unknown_laterality: bool) -> None:
    """Body Part Examined and Laterality of the source series, so hanging protocols and the
    laterality rule see the same anatomy. Without either, PM and SC state Laterality as
    unknown (empty), as their General Series asks; SEG leaves it out, as its IOD asks."""
    header = None if source is None else source.patient_study
    if header is not None and header.get("BodyPartExamined"):
        dataset.BodyPartExamined = header.BodyPartExamined
    if header is not None and header.get("Laterality"):
        dataset.Laterality = header.Laterality
    elif unknown_laterality and "BodyPartExamined" not in dataset:
        dataset.Laterality = ""


def _finish(
    dataset: Dataset,
    source: DicomSource,
    provenance: Provenance,
    class_name: str | None,
    written: Written,
    *,
    unknown_laterality: bool,
) -> None:
    """What PM and SEG add: anatomy, provenance, the note of omitted slices."""
    _copy_body_part(dataset, source, unknown_laterality=unknown_laterality)
    dataset.DerivationDescription = derivation_description(provenance, class_name)
    if written.note:
        dataset.ImageComments = written.note


def _lut_label(method: str) -> str:
    return "".join(ch for ch in method.upper() if ch.isalnum())[:16] or "MAP"


def parametric_map(
    volume: Volume,
    heat_map: np.ndarray,
    provenance: Provenance,
    *,
    class_name: str | None = None,
    computed: np.ndarray | None = None,
    palette: bool = True,
    series_number: int = PM_SERIES_NUMBER,
) -> hd.pm.ParametricMap:
    """The heat map (z, y, x on the volume's grid) as a float32 Parametric Map over its source.

    One frame per computed slice, at that slice's own stored position and referencing that
    source instance (and frame), so viewers overlay it exactly and the PACS files it with the
    study. Values are the map's, unscaled (NaN inside a computed slice is written as 0, as the
    NIfTI export does); the real-world value mapping names the quantity (QUANTITIES) with no
    unit. `palette` adds the Hot Iron palette over the map's value range.
    """
    heat_map = np.asarray(heat_map)
    source = _require_source(volume, heat_map, "Parametric Map")
    if source.frame_of_reference_uid is None:
        raise DicomResultError(
            "A Parametric Map must lie in a Frame of Reference and these images (a radiograph or "
            "mammogram?) have none; save a Segmentation or a Secondary Capture instead"
        )
    written = _written(computed_slices(heat_map) if computed is None else np.asarray(computed, dtype=bool))
    frames = np.nan_to_num(heat_map[list(written.slices)].astype(np.float32), nan=0.0)
    low, high = float(frames.min()), float(frames.max())
    what = describe(provenance, class_name)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=_lut_label(provenance.method),
        lut_explanation=f"{what} ({MANUFACTURER})"[:LO],
        unit=codes.UCUM.NoUnits,
        value_range=(low, high),
        quantity_definition=QUANTITIES.get(provenance.method, DEFAULT_QUANTITY),
    )
    # LINEAR_EXACT maps exactly [low, high], and allows the narrow windows of maps within 0-1.
    window = hd.VOILUTTransformation(
        window_center=(low + high) / 2,
        window_width=max(high - low, 1e-6),
        window_explanation="Map range",
        voi_lut_function=hd.VOILUTFunctionValues.LINEAR_EXACT,
    )
    equipment = Equipment.for_provenance(provenance)
    label = provenance.method_label or provenance.method
    pm = hd.pm.ParametricMap(
        source_images=_source_images(source, written.slices),
        pixel_array=frames,
        **equipment.new_series(series_number),
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[window],
        plane_positions=_plane_positions(source, written.slices),
        content_label=_lut_label(provenance.method),
        content_description=(what + ("" if written.note is None else " (computed slices only)"))[:LO],
        series_description=f"{MANUFACTURER} {label} map"[:LO],
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    _finish(pm, source, provenance, class_name, written, unknown_laterality=True)
    if palette:
        add_palette(pm, (low, high))
    return pm


def add_palette(pm: Dataset, value_range: tuple[float, float]) -> None:
    """Hot Iron over `value_range` of the stored float values: PS3.3's COLOR_RANGE presentation.

    highdicom offers palettes for integer maps only; for float pixel data the standard maps a
    stored value range (Stored Value Color Range) onto a Palette Color Lookup Table with 16-bit
    entries, displayed through an ICC profile. The palette's own sRGB profile is used.
    """
    reference = _palette()
    pm.PixelPresentation = "COLOR_RANGE"
    for colour in ("Red", "Green", "Blue"):
        entries = np.frombuffer(reference[f"{colour}PaletteColorLookupTableData"].value, dtype=np.uint8)
        descriptor = reference[f"{colour}PaletteColorLookupTableDescriptor"].value
        pm[f"{colour}PaletteColorLookupTableDescriptor"] = DataElement(
            f"{colour}PaletteColorLookupTableDescriptor", "US", [int(descriptor[0]), int(descriptor[1]), 16]
        )
        pm[f"{colour}PaletteColorLookupTableData"] = DataElement(
            f"{colour}PaletteColorLookupTableData", "OW", (entries.astype("<u2") * 257).tobytes()
        )
    pm.ICCProfile = reference.ICCProfile
    pm.ColorSpace = "SRGB"
    color_range = Dataset()
    color_range.MinimumStoredValueMapped = float(value_range[0])
    color_range.MaximumStoredValueMapped = float(value_range[1])
    pm.SharedFunctionalGroupsSequence[0].StoredValueColorRangeSequence = [color_range]


@cache
def _palette() -> Dataset:
    return pydicom.dcmread(get_palette_files(PALETTE)[0])


def segmentation(
    volume: Volume,
    maps: Mapping[str, np.ndarray],
    provenance: Provenance,
    *,
    threshold: float,
    series_number: int = SEG_SERIES_NUMBER,
) -> hd.seg.Segmentation:
    """BINARY SEG of where each class's map exceeds `threshold` (in the map's own values).

    `maps`: class name → heat map (z, y, x on the volume's grid). One segment per class, made
    AUTOMATIC by medvis, its algorithm identification carrying the model's sha256, the method
    and the parameters. Frames are written for the slices every map computed, empty or not, so
    an empty frame means "computed, nothing above the threshold".
    """
    if not maps:
        raise DicomResultError("No class map to segment")
    arrays = {name: np.asarray(values) for name, values in maps.items()}
    sources = [_require_source(volume, values, "Segmentation") for values in arrays.values()]  # all on grid
    source = sources[0]
    computed = np.logical_and.reduce([computed_slices(values) for values in arrays.values()])
    written = _written(computed)
    z = list(written.slices)
    masks = np.stack([values[z] > threshold for values in arrays.values()], axis=-1)  # NaN is not above
    equipment = Equipment.for_provenance(provenance)
    label = provenance.method_label or provenance.method
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"{label} > {threshold:g}: {name}"[:LO],
            segmented_property_category=SEGMENT_CATEGORY,
            segmented_property_type=QUANTITIES.get(provenance.method, DEFAULT_QUANTITY),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_identification(provenance, name, threshold),
        )
        for number, name in enumerate(arrays, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=_source_images(source, z),
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        **equipment.new_series(series_number),
        plane_positions=_plane_positions(source, z),
        omit_empty_frames=False,
        content_label=f"{_lut_label(provenance.method)}ABOVE"[:16],
        content_description=f"{label} above {threshold:g}"[:LO],
        series_description=f"{MANUFACTURER} {label} regions"[:LO],
    )
    _finish(seg, source, provenance, ", ".join(arrays), written, unknown_laterality=False)
    if source.frame_of_reference_uid is None:  # a radiograph: frames align with it pixel for pixel
        seg.PatientOrientation = source.patient_study.get("PatientOrientation") or None
    return seg


def algorithm_identification(
    provenance: Provenance, class_name: str, threshold: float
) -> hd.AlgorithmIdentificationSequence:
    """medvis and its method as the algorithm; model hash, layer, class and threshold as parameters."""
    parameters = {
        "method": provenance.method,
        "layer": str(provenance.layer),
        "class": class_name,
        "threshold": f"{threshold:g}",
        "model_sha256": provenance.model_sha256 or "unknown",
        **{k: str(v) for k, v in _scalars(provenance.parameters).items()},
    }
    return hd.AlgorithmIdentificationSequence(
        name=f"{MANUFACTURER} {provenance.method_label or provenance.method}"[:LO],
        family=ALGORITHM_FAMILY,
        version=provenance.medvis_version,
        source=MANUFACTURER,
        parameters=parameters,
    )


# Patient orientation letters of the LPS axes, in the positive direction (PS3.3 C.7.6.1.1.1).
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


def orientation_letters(vector: np.ndarray) -> str:
    """Patient direction of a unit vector in LPS: 'L', 'PH', ... strongest axis first."""
    order = np.argsort(-np.abs(vector))
    return "".join(_LETTERS[k][0 if vector[k] > 0 else 1] for k in order if abs(vector[k]) > 0.1)


def slice_orientation(volume: Volume) -> tuple[str, str]:
    """Patient Orientation of an image drawn from a slice of `volume`: along rows, down columns."""
    return orientation_letters(volume.direction[:, 2]), orientation_letters(volume.direction[:, 1])


def secondary_capture(
    rgb_image: np.ndarray,
    volume: Volume | None,
    *,
    burned_in_annotation: bool,
    description: str,
    provenance: Provenance | None = None,
    slices: Sequence[int] = (),
    orientation: tuple[str, str] | None = None,
    series_number: int = SC_SERIES_NUMBER,
) -> hd.sc.SCImage:
    """A screenshot, triptych or comparison row (RGB uint8, rows × columns × 3) as DICOM.

    From a DICOM study it joins the source's patient and study and references the source
    images of `slices` (those shown). From any other (NIfTI, a PNG, nothing) a new study is made
    with empty patient identity, and Image Comments says so. `burned_in_annotation` must say
    whether text (legends, names, scores) is drawn into the pixels. `orientation` is the
    patient direction along rows and down columns; by default that of the volume's slices when
    its geometry is known, otherwise left empty (unknown).
    """
    pixels = np.asarray(rgb_image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise DicomResultError(f"Secondary Capture takes RGB uint8 pixels, not {pixels.dtype} {pixels.shape}")
    source = None if volume is None else volume.dicom
    equipment = Equipment.for_provenance(provenance)
    if orientation is None and volume is not None and _geometry_known(volume):
        orientation = slice_orientation(volume)
    common = {
        "pixel_array": pixels,
        "photometric_interpretation": hd.PhotometricInterpretationValues.RGB,
        "bits_allocated": 8,
        "coordinate_system": hd.CoordinateSystemNames.PATIENT,
        **equipment.new_series(series_number),
        # highdicom takes single letters only; the real value (oblique ones too) is set below.
        "patient_orientation": ("L", "P"),
        "series_description": f"{MANUFACTURER} {description}"[:LO],
        "transfer_syntax_uid": ExplicitVRLittleEndian,
    }
    notes = []
    if source is not None:
        sc = hd.sc.SCImage.from_ref_dataset(ref_dataset=_source_images(source, [0])[0], **common)
        if slices:
            sc.SourceImageSequence = [_image_reference(source, z) for z in slices]
    else:
        now = datetime.now()
        sc = hd.sc.SCImage(
            study_instance_uid=hd.UID(),
            study_id=MANUFACTURER,
            study_date=now.date(),
            study_time=now.time(),
            **common,
        )
        sc.StudyDescription = f"{MANUFACTURER} results (no DICOM source)"
        origin = "no study" if volume is None or volume.source is None else Path(volume.source).name
        notes.append(
            f"Made by {MANUFACTURER} from a study not read from DICOM ({origin}): patient name, ID, "
            "birth date and sex, accession number and the original study are unknown; this object "
            "starts a new study."
        )
    sc.PatientOrientation = None if orientation is None else list(orientation)
    if orientation is None:
        notes.append("Patient orientation unknown.")
    _copy_body_part(sc, source, unknown_laterality=True)
    sc.ConversionType = "WSD"  # made on a workstation (PS3.3 C.8.6.1)
    sc.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    if provenance is not None:
        sc.DerivationDescription = derivation_description(provenance)
    if notes:
        sc.ImageComments = " ".join(notes)
    return sc


def _geometry_known(volume: Volume) -> bool:
    """Patient axes are known for DICOM and NIfTI/MHA/NRRD studies, not for plain pictures."""
    return volume.dicom is not None or (volume.source is not None and itk.handles(Path(volume.source)))


def _image_reference(source: DicomSource, z: int) -> Dataset:
    """A Source Image Sequence item naming the instance (and frame) of Volume slice z."""
    item = Dataset()
    item.ReferencedSOPClassUID = source.slices[z].sop_class_uid
    item.ReferencedSOPInstanceUID = source.slices[z].sop_instance_uid
    if source.slices[z].frame_number is not None:
        item.ReferencedFrameNumber = source.slices[z].frame_number
    return item


PREFIXES = {
    ParametricMapStorage: "PM",
    SegmentationStorage: "SEG",
    SecondaryCaptureImageStorage: "SC",
}


def save(dataset: Dataset, folder: Path | str, *, source: Path | str | None = None) -> Path:
    """Write one object as `<PM|SEG|SC>_<SOP Instance UID>.dcm` in `folder` (DICOM Part 10),
    atomically, never into `source` (the study's own file or folder)."""
    folder = make_folder(folder, source=source)
    prefix = PREFIXES.get(dataset.SOPClassUID, str(dataset.Modality))
    path = folder / f"{prefix}_{dataset.SOPInstanceUID}.dcm"
    with atomic_write(path, source=source) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
    return path
