"""De-identified export for research: DICOM's Basic Application Level Confidentiality Profile.

PS3.15 Annex E, Table E.1-1, basic profile column, with no option (dates are removed or emptied
as the basic profile says, not shifted; no private attribute is kept). It is applied in one go
to a set of files, typically the source series and the Parametric Map, SEG and Secondary
Capture medvis wrote from it, with ONE UID map, so the results still reference their (now
de-identified) source instances, study, series and frame of reference.

The table is the standard's own, as the maintained package dicom-anonymizer publishes it per
edition of the standard (`dicomfields_2026c`). That package's engine is not used: it applies the
table to top-level attributes only (a Referenced SOP Instance UID inside a functional group keeps
its original value), empties every UID inside Source Image Sequence (the references no longer
resolve), replaces removed dates with 00010101, keeps its UID map in a module-level global and
does not set Patient Identity Removed or De-identification Method. dicognito (random fake names,
shifted dates, private attributes kept) and deid (a recipe framework whose default recipe drops
every UID) do not implement the basic profile either. So medvis applies the table itself:

- at every level, inside sequences too, and to the File Meta Information;
- the choices X/Z, X/D, Z/D and X/Z/D are made from the attribute's Type at that place in the
  object's IOD (highdicom's tables of the standard): Type 3 or absent → X, Type 2/2C → Z,
  Type 1/1C → D, so every written object is as conformant as its input;
- X/Z/U* (Referenced Image Sequence, Source Image Sequence) is kept with its UIDs replaced: the
  references between the objects of the set are what the research export is for;
- U, and any other UID-valued attribute whose value the set's map already holds, is replaced
  through the one map (new UIDs are random, 2.25 + UUID: nothing of the original is derivable);
- every private attribute is removed.

Patient Identity Removed = YES, De-identification Method and its Code Sequence (DCM 113100,
"Basic Application Confidentiality Profile") and Longitudinal Temporal Information Modified =
REMOVED are added. Pixel data is never changed: burned-in text is not removed, it is flagged.
A file is flagged when Burned In Annotation says YES (medvis's own Secondary Captures with a
legend do), or when it is not stated and the modality, SOP class or image type is one that often
carries text in its pixels (ultrasound, screen captures, secondary captures, photographs...).
Flagged files are written but listed in `DeidentifiedSet.burned_in` and `warnings`: a person must
look at their pixels before they leave the hospital.
"""

from __future__ import annotations

import copy
import json
import pkgutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pydicom
import pydicom.errors
from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as basic_profile_table
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import generate_uid

from medvis_desktop import __version__
from medvis_desktop.errors import MedvisError
from medvis_desktop.export.atomic import atomic_write, make_folder
from medvis_desktop.imaging.volume import Volume

# The edition of PS3.15 whose Table E.1-1 is applied (dicom-anonymizer's module name).
TABLE_EDITION = "2026c"
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DEIDENTIFICATION_METHOD = (
    "DICOM PS3.15 E.1 Basic Application Confidentiality Profile",  # 58 characters, within LO's 64
    f"medvis {__version__}, Table E.1-1 of {TABLE_EDITION}"[:64],
)
# Dummy values for D (a value is required): consistent with the VR, and saying what they are.
DUMMY_TEXT = "DEIDENTIFIED"  # fits CS, SH, AE (16), upper case for CS
DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
    "OB": b"\x00\x00", "OW": b"\x00\x00", "UN": b"\x00\x00",
    "UR": "",
}
# Burned-in text is likely where Burned In Annotation is not stated in these (PS3.3 defined terms
# for Modality; SC is not one, but old files carry it).
TEXT_PRONE_MODALITIES = {"US", "IVUS", "XC", "ES", "GM", "SM", "OP", "OT", "DOC", "SC", "ECG"}
TEXT_PRONE_IMAGE_TYPES = {"SCREEN SAVE", "SCREENSHOT", "SECONDARY CAPTURE"}
SECONDARY_CAPTURE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
}
PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
PREFIXES = {
    "1.2.840.10008.5.1.4.1.1.30": "PM",
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
    **dict.fromkeys(SECONDARY_CAPTURE_CLASSES, "SC"),
}
# Table E.1-1's action codes, as dicom-anonymizer groups the rows.
_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# Strength of an attribute's Type in an IOD: what a choice action must keep.
_REQUIRED, _TYPE2, _OPTIONAL = 2, 1, 0
_STRENGTH = {"1": _REQUIRED, "1C": _REQUIRED, "2": _TYPE2, "2C": _TYPE2}


class DeidentificationError(MedvisError):
    """A set that cannot be de-identified as asked (unreadable file, two patients, one pseudonym...)."""


@dataclass(frozen=True)
class DeidentifiedFile:
    """One written object: where it came from, where it went, and whether its pixels may show text."""

    source: Path | None  # None for a dataset passed in memory
    path: Path
    sop_class_uid: str
    burned_in: str | None  # why its pixels may carry text; None when nothing suggests it


@dataclass(frozen=True)
class DeidentifiedSet:
    """The result of `deidentify`: the written files in input order, the UID map and the warnings."""

    files: tuple[DeidentifiedFile, ...]
    uid_map: Mapping[str, str]  # original UID → new UID, one map for the whole set
    warnings: tuple[str, ...] = field(default=())

    @property
    def paths(self) -> list[Path]:
        return [written.path for written in self.files]

    @property
    def burned_in(self) -> tuple[DeidentifiedFile, ...]:
        """The files whose pixel data may carry burned-in text: look before releasing them."""
        return tuple(written for written in self.files if written.burned_in)


@dataclass(frozen=True)
class _Rule:
    action: str
    group: int
    element: int
    group_mask: int = 0xFFFF
    element_mask: int = 0xFFFF

    def matches(self, tag: BaseTag) -> bool:
        group, element = tag.group & self.group_mask, tag.element & self.element_mask
        return group == self.group and element == self.element


@cache
def basic_profile() -> tuple[dict[int, str], tuple[_Rule, ...]]:
    """Table E.1-1's basic profile column: tag → action, and the repeating-group rows (50xx, 60xx)."""
    exact: dict[int, str] = {}
    repeating: list[_Rule] = []
    for category, action in _CATEGORIES.items():
        for row in getattr(basic_profile_table, category):
            if len(row) == 2:
                exact[int(Tag(*row))] = action
            else:
                group, element, group_mask, element_mask = row
                repeating.append(_Rule(action, group & group_mask, element & element_mask, group_mask,
                                       element_mask))
    return exact, tuple(repeating)


def action_for(tag: BaseTag) -> str | None:
    """The basic profile's action for a public attribute, None when the table does not list it (K)."""
    exact, repeating = basic_profile()
    if int(tag) in exact:
        return exact[int(tag)]
    return next((rule.action for rule in repeating if rule.matches(tag)), None)


@cache
def _standard(name: str) -> dict:
    data = pkgutil.get_data("highdicom", f"_standard/{name}.json")
    if data is None:
        raise FileNotFoundError(f"highdicom's table {name} of the standard is missing")
    return json.loads(data)


@cache
def iod_types(sop_class_uid: str) -> Mapping[tuple[str, ...], int]:
    """(enclosing sequences..., keyword) → how strongly the IOD of `sop_class_uid` requires it."""
    iod = _standard("sop_class_iod_map").get(str(sop_class_uid))
    if iod is None:
        return {}
    modules = _standard("module_attribute_map")
    types: dict[tuple[str, ...], int] = {}
    for module in _standard("iod_module_map")[iod]:
        for attribute in modules.get(module["key"], ()):
            place = (*attribute["path"], attribute["keyword"])
            types[place] = max(types.get(place, _OPTIONAL), _STRENGTH.get(attribute["type"], _OPTIONAL))
    return types


def resolve(action: str, strength: int) -> str:
    """A choice of the table (X/Z, Z/D...) made for an attribute of the given Type strength."""
    if action == "Z" and strength == _REQUIRED:  # Z allows a dummy; Type 1 needs one
        return "D"
    if "/" not in action or action == "X/Z/U*":
        return action
    choices = action.split("/")
    if strength == _REQUIRED and "D" in choices:
        return "D"
    if strength >= _TYPE2 and "Z" in choices:
        return "Z"
    if strength >= _TYPE2 and "D" in choices:  # X/D of a Type 2 attribute
        return "D"
    return "X" if "X" in choices else choices[0]


class UIDMap:
    """One map for a whole set: the same original UID always becomes the same new one."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def new(self, uid: str) -> str:
        uid = str(uid).strip("\0 ")
        if not uid:
            return uid
        if uid not in self.mapping:
            self.mapping[uid] = generate_uid(prefix=None)  # 2.25.<UUID4>: random, no root of ours
        return self.mapping[uid]

    def replace(self, element: DataElement) -> None:
        if isinstance(element.value, MultiValue | list | tuple):
            element.value = [self.new(v) for v in element.value]
        elif element.value:
            element.value = self.new(element.value)

    def replace_known(self, element: DataElement) -> None:
        """Map the values this map already holds (UIDs the table does not list, pointing into the set)."""
        value = element.value
        values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        if any(str(v).strip("\0 ") in self.mapping for v in values if v):
            self.replace(element)


class _Cleaner:
    def __init__(self, uids: UIDMap, sop_class_uid: str) -> None:
        self.uids = uids
        self.types = iod_types(sop_class_uid)

    def clean(self, dataset: Dataset, path: tuple[str, ...] = ()) -> None:
        for tag in list(dataset.keys()):
            element = dataset[tag]
            if tag.is_private:  # private attributes: X (no Retain Safe Private option)
                del dataset[tag]
                continue
            if tag.element == 0 and tag.group != 0x0002:  # group lengths: retired, recomputed by nobody
                del dataset[tag]
                continue
            keyword = element.keyword or keyword_for_tag(tag)
            here = (*path, keyword)
            action = action_for(tag)
            if action is None:  # K: kept, its contents cleaned
                if element.VR == "SQ":
                    self._items(element, here)
                continue
            self.apply(dataset, element, resolve(action, self.types.get(here, _OPTIONAL)), here)

    def _items(self, element: DataElement, here: tuple[str, ...]) -> None:
        for item in element.value or ():
            self.clean(item, here)

    def apply(self, dataset: Dataset, element: DataElement, action: str, here: tuple[str, ...]) -> None:
        if action == "X":
            del dataset[element.tag]
        elif action == "Z":
            element.value = [] if element.VR == "SQ" else None
        elif action in ("U", "X/Z/U*"):
            if element.VR == "SQ":
                self._items(element, here)
            elif element.VR == "UI":
                self.uids.replace(element)
            else:
                element.value = None
        elif action == "D":
            if element.VR == "SQ":  # a dummy sequence: its items, cleaned
                self._items(element, here)
            elif element.VR == "UI":
                self.uids.replace(element)
            else:
                element.value = DUMMY_BY_VR.get(element.VR, DUMMY_TEXT)
        else:  # pragma: no cover - the table has no other code
            raise DeidentificationError(f"Unknown action {action!r} for {element.tag}")


def _walk_uids(dataset: Dataset) -> Iterator[DataElement]:
    for element in dataset:
        if element.VR == "UI":
            yield element
        elif element.VR == "SQ":
            for item in element.value or ():
                yield from _walk_uids(item)


def burned_in_reason(dataset: Dataset) -> str | None:
    """Why this object's pixels may carry text (names, dates, legends), or None.

    Burned In Annotation YES says so. NO is believed. When it is absent or empty, the
    modality, SOP class and image type decide: ultrasound, endoscopy, photographs, documents,
    screen saves and secondary captures often show text in their pixels.
    """
    if not any(keyword in dataset for keyword in PIXEL_DATA):
        return None
    stated = str(dataset.get("BurnedInAnnotation", "") or "").strip().upper()
    if stated == "YES":
        return "Burned In Annotation is YES"
    if stated == "NO":
        return None
    modality = str(dataset.get("Modality", "") or "").upper()
    image_type = {str(value).upper() for value in (dataset.get("ImageType") or [])}
    if modality in TEXT_PRONE_MODALITIES:
        return f"Burned In Annotation not stated, and modality {modality} often carries text in its pixels"
    if str(dataset.get("SOPClassUID", "")) in SECONDARY_CAPTURE_CLASSES:
        return "Burned In Annotation not stated in a Secondary Capture"
    if image_type & TEXT_PRONE_IMAGE_TYPES:
        return f"Burned In Annotation not stated, and image type {'/'.join(sorted(image_type))} is a capture"
    return None


def _read(source: Path | str | Dataset) -> tuple[Path | None, Dataset]:
    if isinstance(source, Dataset):
        return None, copy.deepcopy(source)
    path = Path(source)
    try:
        return path, pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as error:
        raise DeidentificationError(f"{path}: not a readable DICOM file ({error})") from error


def _check_pseudonym(pseudonym: str | None, datasets: Sequence[Dataset]) -> None:
    if pseudonym is None:
        return
    if not pseudonym.strip() or len(pseudonym) > 64 or "\\" in pseudonym:
        raise DeidentificationError("The patient pseudonym must be 1 to 64 characters, without a backslash")
    patients = {str(ds.get("PatientID", "") or "") for ds in datasets}
    if len(patients) > 1:
        raise DeidentificationError(
            f"The files belong to {len(patients)} patients (Patient ID): one pseudonym cannot stand for all"
        )
    originals = {str(ds.get(keyword, "") or "").strip().upper() for ds in datasets
                 for keyword in ("PatientID", "PatientName", "OtherPatientIDs", "IssuerOfPatientID")}
    if pseudonym.strip().upper() in originals:
        raise DeidentificationError("The pseudonym is one of the patient's own identifiers")


def _mark(dataset: Dataset) -> None:
    """What the standard asks a de-identifier to add (PS3.15 E.1.1, PS3.3 C.7.1.1)."""
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
    dataset.DeidentificationMethodCodeSequence = [code]
    # The basic profile removes or empties dates and times rather than shifting them.
    dataset.LongitudinalTemporalInformationModified = "REMOVED"


def deidentify(
    sources: Iterable[Path | str | Dataset],
    out_dir: Path | str,
    *,
    patient_pseudonym: str | None = None,
) -> DeidentifiedSet:
    """Write the basic-profile de-identified copy of every object in `sources` into `out_dir`.

    `sources`: DICOM files (paths) or datasets in memory, e.g. a source series together with
    the PM, SEG and SC written from it. They share one UID map, so references between them
    still resolve. `patient_pseudonym` becomes Patient Name and Patient ID (the profile allows a
    dummy value for both); without it they are empty. The inputs are never modified. Files are
    named `<CT|MR|PM|SEG|SC|...>_<new SOP Instance UID>.dcm`; pixel data is copied unchanged.
    """
    loaded = [_read(source) for source in sources]
    if not loaded:
        raise DeidentificationError("Nothing to de-identify")
    datasets = [dataset for _, dataset in loaded]
    _check_pseudonym(patient_pseudonym, datasets)
    instances = [str(ds.get("SOPInstanceUID", "")) for ds in datasets]
    if len(set(instances)) != len(instances):
        raise DeidentificationError("The same SOP instance appears twice among the files to de-identify")
    reasons = [burned_in_reason(ds) for ds in datasets]  # before Modality or Image Type could change
    uids = UIDMap()
    for dataset in datasets:
        cleaner = _Cleaner(uids, str(dataset.get("SOPClassUID", "")))
        if getattr(dataset, "file_meta", None) is not None:
            cleaner.clean(dataset.file_meta)
        cleaner.clean(dataset)
    out = make_folder(out_dir)
    written, warnings = [], []
    for (source, dataset), reason in zip(loaded, reasons, strict=True):
        # UIDs the table does not list but that point at an object of the set: the same map.
        for element in _walk_uids(dataset):
            uids.replace_known(element)
        if getattr(dataset, "file_meta", None) is not None:
            for element in _walk_uids(dataset.file_meta):
                uids.replace_known(element)
        if patient_pseudonym is not None:
            dataset.PatientName = patient_pseudonym
            dataset.PatientID = patient_pseudonym
        _mark(dataset)
        sop_class = str(dataset.SOPClassUID)
        prefix = PREFIXES.get(sop_class) or str(dataset.get("Modality", "") or "DICOM")
        path = out / f"{prefix}_{dataset.SOPInstanceUID}.dcm"
        with atomic_write(path) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        written.append(DeidentifiedFile(source, path, sop_class, reason))
        if reason:
            warnings.append(f"{path.name}: {reason}; its pixels were not checked for burned-in text")
    return DeidentifiedSet(tuple(written), dict(uids.mapping), tuple(warnings))


def source_files(volume: Volume) -> list[Path]:
    """The files, under where `volume` was read from, holding the instances it was made of:
    what a de-identified export sends along with the results that reference them."""
    if volume.dicom is None or volume.source is None:
        return []
    wanted = {piece.sop_instance_uid for piece in volume.dicom.slices}
    location = Path(volume.source)
    if location.is_file() and location.name.upper() == "DICOMDIR":
        location = location.parent
    candidates = [location] if location.is_file() else sorted(p for p in location.rglob("*") if p.is_file())
    found = []
    for path in candidates:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not DICOM (a sidecar, a thumbnail): nothing of the study
        if header.get("SOPInstanceUID") in wanted:
            found.append(path)
    return found


def deidentify_with_source(
    volume: Volume, results: Sequence[Path], out_dir: Path | str, *, patient_pseudonym: str | None = None
) -> DeidentifiedSet:
    """The study's instances behind `volume` and the DICOM `results` written from it, de-identified
    together (one UID map) into `out_dir`."""
    return deidentify([*source_files(volume), *results], out_dir, patient_pseudonym=patient_pseudonym)
