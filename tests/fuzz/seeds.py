"""Seed inputs of every format medvis reads, made by code on this machine (nothing downloaded).

Pixels come from the real head CT Debian ships (invesalius-examples), or a synthetic phantom
where that is not installed. DICOM is written by tests/imaging/dicom_factory.py and compressed
by pydicom's own encoders (RLE natively, JPEG-LS through pyjpegls, JPEG 2000 through
pylibjpeg-openjpeg); JPEG baseline frames come from Pillow. pydicom's own test files and the
project's demo models, cards and Keras 2 fixtures are on disk already.

Every seed is byte-identical from run to run (UIDs derive from a counter, archives carry no
times), so a (family, case, seed) named in a report is the same input everywhere.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import plistlib
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HEAD_CT_INV3 = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
DEMO_MODELS = REPO / "resources" / "models"
KERAS2_FIXTURES = REPO / "tests" / "models" / "fixtures"
CARD_SUFFIX = ".medvis.json"

# What each family's inputs are loaded as: "image" (imaging.load), "model" (models.load_model)
# or "card" (models.card.read_card).
FAMILY_KIND = {
    "dicom": "image",
    "dicom_series": "image",
    "dicomdir": "image",
    "nifti": "image",
    "mha": "image",
    "nrrd": "image",
    "raster": "image",
    "inv3": "image",
    "keras": "model",
    "h5": "model",
    "card": "card",
}
FAMILIES = tuple(FAMILY_KIND)


@dataclass(frozen=True)
class Seed:
    family: str
    name: str
    path: Path  # a file, or a folder (a series, a DICOMDIR media)
    syntax: str = ""  # DICOM transfer syntax, for the notes


# --- pixels --------------------------------------------------------------------------------


def ct_block(slices: int = 8, side: int = 64) -> np.ndarray:
    """`slices` × `side`² int16 HU: real head CT when installed, a phantom otherwise."""
    if HEAD_CT_INV3.exists():
        with tarfile.open(HEAD_CT_INV3, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers()}
            project = plistlib.load(io.BytesIO(archive.extractfile(members["main.plist"]).read()))
            raw = archive.extractfile(members["matrix.dat"]).read()
        matrix = np.frombuffer(raw, dtype=np.int16).reshape(project["matrix"]["shape"])[:, ::-1, :]
        step = matrix.shape[1] // side
        return np.ascontiguousarray(matrix[50 : 50 + slices, ::step, ::step][:, :side, :side])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] - side / 2
    radius = np.hypot(yy, xx)
    image = np.where(radius < side * 0.45, 1000, -1000)
    image = np.where(radius < side * 0.40, 40, image)
    block = np.stack([image + rng.integers(-20, 20, image.shape) for _ in range(slices)])
    return block.astype(np.int16)


# --- deterministic UIDs ----------------------------------------------------------------------


@contextlib.contextmanager
def fixed_uids() -> Iterator[None]:
    """generate_uid() counts instead of drawing random numbers, while seeds are written."""
    import pydicom.fileset
    import pydicom.uid

    import tests.imaging.dicom_factory as factory

    counter = itertools.count(1)
    original = pydicom.uid.generate_uid

    def counted(prefix: str | None = pydicom.uid.PYDICOM_ROOT_UID, entropy_srcs: object = None) -> str:
        return original(prefix=prefix, entropy_srcs=[f"medvis-fuzz-seed-{next(counter)}"])

    saved = (factory.generate_uid, pydicom.fileset.generate_uid, pydicom.uid.generate_uid)
    factory.generate_uid = pydicom.fileset.generate_uid = pydicom.uid.generate_uid = counted
    try:
        yield
    finally:
        factory.generate_uid, pydicom.fileset.generate_uid, pydicom.uid.generate_uid = saved


# --- DICOM ---------------------------------------------------------------------------------


def _compress_file(path: Path, syntax: str) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    ds.compress(syntax, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def _jpeg_baseline_file(path: Path) -> None:
    """An 8-bit JPEG baseline CT slice: windowed to 8 bits, encoded by Pillow, encapsulated."""
    import pydicom
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    low, high = -160.0, 240.0
    grey = np.clip((hu - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    frames = grey if grey.ndim == 3 else grey[np.newaxis]
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame, mode="L").save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.RescaleSlope = (high - low) / 255
    ds.RescaleIntercept = low
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path, enforce_file_format=True)


COMPRESSIONS = {
    "raw": "",
    "rle": "1.2.840.10008.1.2.5",
    "jpegls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "jpeg": "1.2.840.10008.1.2.4.50",
}


def _encode(paths: list[Path], kind: str) -> None:
    for path in paths:
        if kind == "jpeg":
            _jpeg_baseline_file(path)
        elif kind != "raw":
            _compress_file(path, COMPRESSIONS[kind])


# pydicom's own test files (on disk with pydicom): other vendors' encodings of the same formats.
PYDICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "emri_small_RLE.dcm",
)


def _pydicom_file(name: str) -> Path | None:
    from pydicom.data import get_testdata_file

    try:
        found = get_testdata_file(name, download=False)
    except Exception:  # an absent external data source must not stop the seeds
        return None
    return Path(found) if found else None


def dicom_seeds(root: Path, block: np.ndarray) -> dict[str, list[Seed]]:
    from pydicom.fileset import FileSet

    from tests.imaging.dicom_factory import SeriesSpec, write_enhanced_ct, write_series

    singles, series, dicomdirs = [], [], []
    with fixed_uids():
        for kind, syntax in COMPRESSIONS.items():
            folder = root / "dicom" / f"single_{kind}"
            path = write_series(
                block[3:4], folder, SeriesSpec(series_uid=f"1.2.826.0.1.3680043.8.498.9.{len(kind)}")
            )[0]
            _encode([path], kind)
            singles.append(Seed("dicom", f"ct_{kind}.dcm", path, syntax))
            folder = root / "dicom_series" / kind
            paths = write_series(
                block, folder, SeriesSpec(series_uid=f"1.2.826.0.1.3680043.8.498.7.{len(kind)}")
            )
            _encode(paths, kind)
            if kind in ("raw", "rle", "jpeg", "j2k"):
                series.append(Seed("dicom_series", f"series_{kind}", folder, syntax))
        for kind in ("raw", "rle"):
            path = root / "dicom" / f"enhanced_ct_{kind}.dcm"
            write_enhanced_ct(block, path, SeriesSpec(series_uid=f"1.2.826.0.1.3680043.8.498.8.{len(kind)}"))
            _encode([path], kind)
            singles.append(Seed("dicom", path.name, path, COMPRESSIONS[kind]))
        for kind in ("raw", "rle"):
            fileset = FileSet()
            import pydicom

            for path in sorted((root / "dicom_series" / kind).iterdir()):
                fileset.add(pydicom.dcmread(path))
            media = root / "dicomdir" / kind
            fileset.write(media)
            dicomdirs.append(Seed("dicomdir", f"dicomdir_{kind}", media, COMPRESSIONS[kind]))
    for name in PYDICOM_FILES:
        found = _pydicom_file(name)
        if found is not None:
            target = root / "dicom" / name
            shutil.copy(found, target)
            singles.append(Seed("dicom", name, target))
    return {"dicom": singles, "dicom_series": series, "dicomdir": dicomdirs}


# --- NIfTI, MHA, NRRD ----------------------------------------------------------------------


def itk_seeds(root: Path, block: np.ndarray) -> dict[str, list[Seed]]:
    import SimpleITK as sitk

    folder = root / "itk"
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(block)
    image.SetSpacing((0.9, 0.9, 2.5))
    image.SetOrigin((-30.0, -28.5, 12.0))
    angle = np.radians(10)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0))
    float_image = sitk.Cast(image, sitk.sitkFloat32)
    byte_image = sitk.Cast(sitk.RescaleIntensity(image, 0, 255), sitk.sitkUInt8)
    found: dict[str, list[Seed]] = {"nifti": [], "mha": [], "nrrd": []}
    for family, suffix in (("nifti", ".nii"), ("nifti", ".nii.gz"), ("mha", ".mha"), ("nrrd", ".nrrd")):
        for label, item in (("int16", image), ("float32", float_image), ("uint8", byte_image)):
            for compressed in (False, True) if suffix in (".mha", ".nrrd") else (False,):
                name = f"{label}{'_z' if compressed else ''}{suffix}"
                path = folder / name
                sitk.WriteImage(item, str(path), useCompression=compressed)
                if suffix == ".nii.gz":
                    _regzip(path)
                found[family].append(Seed(family, name, path))
    return found


def _regzip(path: Path) -> None:
    """The same data, gzipped without a time stamp (ITK writes the current time)."""
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data, mtime=0))


# --- raster images ---------------------------------------------------------------------------


def raster_seeds(root: Path, block: np.ndarray) -> list[Seed]:
    from PIL import Image

    folder = root / "raster"
    folder.mkdir(parents=True, exist_ok=True)
    hu = block[4].astype(np.float64)
    grey = np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)
    grey16 = np.clip(hu + 1024, 0, 65535).astype(np.uint16)
    rgb = np.stack([grey, grey[::-1], grey.T], axis=-1)
    images = {
        "grey.png": Image.fromarray(grey, mode="L"),
        "grey16.png": Image.fromarray(grey16),
        "rgb.png": Image.fromarray(rgb, mode="RGB"),
        "palette.png": Image.fromarray(rgb, mode="RGB").convert("P"),
        "grey.jpg": Image.fromarray(grey, mode="L"),
        "rgb.jpg": Image.fromarray(rgb, mode="RGB"),
        "progressive.jpg": Image.fromarray(rgb, mode="RGB"),
        "grey16.tif": Image.fromarray(grey16),
        "grey.bmp": Image.fromarray(grey, mode="L"),
    }
    seeds = []
    for name, image in images.items():
        path = folder / name
        options = {"progressive": True} if name.startswith("progressive") else {}
        image.save(path, **options)
        seeds.append(Seed("raster", name, path))
    return seeds


# --- InVesalius ------------------------------------------------------------------------------


def inv3_project(block: np.ndarray) -> dict:
    """main.plist of a small project, the keys and types of the real Cranium.inv3 one."""
    project = {
        "name": "fuzz head",
        "modality": "CT",
        "spacing": [0.9, 0.9, 2.5],
        "window_level": 40.0,
        "window_width": 80.0,
        "matrix": {"filename": "matrix.dat", "shape": list(block.shape), "dtype": "int16"},
    }
    if HEAD_CT_INV3.exists():
        with tarfile.open(HEAD_CT_INV3, "r:gz") as archive:
            member = next(m for m in archive.getmembers() if Path(m.name).name == "main.plist")
            real = plistlib.load(io.BytesIO(archive.extractfile(member).read()))
        real = {k: v for k, v in real.items() if not isinstance(v, dict) or k == "matrix"}
        real.update(project)
        project = real
    return project


def write_inv3(path: Path, members: dict[str, bytes], *, gzip_level: int = 6) -> None:
    """A gzipped tar with `members` in order, deterministic (no times, no owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=gzip_level, mtime=0))


def inv3_seeds(root: Path, block: np.ndarray) -> list[Seed]:
    folder = root / "inv3"
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.ascontiguousarray(block[:, ::-1, :])
    project = inv3_project(block)
    seeds = []
    for name, prefix in (("head.inv3", "head/"), ("flat.inv3", "")):
        path = folder / name
        write_inv3(
            path,
            {f"{prefix}main.plist": plistlib.dumps(project), f"{prefix}matrix.dat": matrix.tobytes()},
        )
        seeds.append(Seed("inv3", name, path))
    return seeds


# --- models and cards ------------------------------------------------------------------------


def model_seeds(root: Path) -> dict[str, list[Seed]]:
    folder = root / "models"
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[Seed]] = {"keras": [], "h5": [], "card": []}
    for path in sorted(DEMO_MODELS.glob("*.keras")):
        target = folder / path.name
        shutil.copy(path, target)
        found["keras"].append(Seed("keras", path.name, target))
    for path in sorted(KERAS2_FIXTURES.glob("*.h5")):
        target = folder / path.name
        shutil.copy(path, target)
        found["h5"].append(Seed("h5", path.name, target))
    for path in sorted(DEMO_MODELS.glob(f"*{CARD_SUFFIX}")):
        target = folder / path.name
        shutil.copy(path, target)
        found["card"].append(Seed("card", path.name, target))
    minimal = folder / f"minimal{CARD_SUFFIX}"
    minimal.write_text(json.dumps({"input_mode": "3d", "input_shape": [8, 32, 32, 1]}))
    found["card"].append(Seed("card", minimal.name, minimal))
    return found


# --- all of them -----------------------------------------------------------------------------


def build_seeds(root: Path, families: tuple[str, ...] = FAMILIES) -> dict[str, list[Seed]]:
    """Write the seeds of `families` below `root`; family → seeds."""
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(families)
    seeds: dict[str, list[Seed]] = {}
    block = (
        ct_block()
        if wanted & {"dicom", "dicom_series", "dicomdir", "nifti", "mha", "nrrd", "raster", "inv3"}
        else None
    )
    if wanted & {"dicom", "dicom_series", "dicomdir"}:
        seeds.update(dicom_seeds(root, block))
    if wanted & {"nifti", "mha", "nrrd"}:
        seeds.update(itk_seeds(root, block))
    if "raster" in wanted:
        seeds["raster"] = raster_seeds(root, block)
    if "inv3" in wanted:
        seeds["inv3"] = inv3_seeds(root, block)
    if wanted & {"keras", "h5", "card"}:
        seeds.update(model_seeds(root))
    missing = [family for family in families if not seeds.get(family)]
    if missing:
        raise RuntimeError(f"no seeds could be made for {', '.join(missing)}")
    return {family: seeds[family] for family in families}
