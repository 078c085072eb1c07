"""NIfTI, MHA/MHD and NRRD through SimpleITK, in the Volume's (z, y, x) LPS convention.

The header is read first (`ImageFileReader.ReadImageInformation`) and checked before a voxel
is read: ITK's MetaIO and NIfTI readers otherwise ask for tens of GB from a 100-byte header
(ITK#6853, nifti_clib#196). Checked: dimension 2–4, one component, the voxel bytes against
the file size (when stored raw in the same file) and the memory budget, spacing, origin and
direction finite and sane. ITK turns a NaN NIfTI pixdim into 1 mm without a word, so those
are read from the NIfTI header itself.

Before ITK sees the file at all, its raw header is checked here (`check_before_itk`): ITK
never returns from a NIfTI with an infinite srow/qoffset, crashes on a MetaImage NDims of
1000 or -1, and reads whatever an MHA ElementDataFile or a NRRD data file names (/dev/zero).
Float voxels holding ±inf after reading (and rescaling) are refused, not clipped.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.volume import Volume

SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
# The array axes are flipped and permuted (never resampled) to lie closest to this
# orientation, so axial slices read like a DICOM axial series: x to the patient's left,
# y to the back, slices from feet to head.
CANONICAL_ORIENTATION = "LPS"


# Enough of an MHA or NRRD file to hold its text header.
HEADER_PEEK_BYTES = 64 * 1024
NIFTI1_HEADER, NIFTI2_HEADER = 348, 540
# What a line of a NRRD or MetaImage text header may hold: printable ASCII and tabs.
HEADER_TEXT = re.compile(r"^[\t\r\x20-\x7e]*$")
# What the data of a text-encoded (ASCII) NRRD or MetaImage may hold: numbers and spacing.
TEXT_DATA = re.compile(rb"^[\s0-9eE+\-.,naNinfINF]*$")


def handles(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def _itk_message(error: BaseException) -> str:
    """ITK's own reason without its source paths and object addresses, on one line."""
    for line in str(error).splitlines():
        if "ITK ERROR:" in line:
            return re.sub(r"^.*ITK ERROR:\s*\w+\(0x[0-9a-f]+\):\s*", "", line).strip()
    return checks.one_line(error)


def _component_bytes(pixel_id: int) -> int:
    """Bytes per component, from ITK's pixel type name ("vector of 32-bit float" → 4)."""
    name = sitk.GetPixelIDValueAsString(pixel_id)
    bits = re.search(r"(\d+)-bit", name)
    size = int(bits.group(1)) // 8 if bits else 8
    return 2 * size if name.startswith("complex") else size


def _stored_raw_inline(path: Path) -> bool:
    """True when the voxels follow the header uncompressed in this very file."""
    name = path.name.lower()
    if name.endswith(".nii"):
        return True
    if not name.endswith((".mha", ".nrrd")):
        return False
    with path.open("rb") as handle:
        head = handle.read(HEADER_PEEK_BYTES).decode("latin-1")
    flags = re.MULTILINE | re.IGNORECASE
    if name.endswith(".mha"):
        local = re.search(r"^ElementDataFile\s*=\s*LOCAL\s*$", head, flags)
        return bool(local) and not re.search(r"^CompressedData\s*=\s*True", head, flags)
    raw = re.search(r"^encoding:\s*raw\s*$", head, flags)
    return bool(raw) and not re.search(r"^data ?file:", head, flags)


# Field offsets (bytes) in the NIfTI-1 and NIfTI-2 headers: (format char, offset, count).
_NIFTI_FIELDS = {
    NIFTI1_HEADER: {
        "ndim": ("h", 40, 1),
        "pixdim": ("f", 76, 8),
        "quatern": ("f", 256, 3),
        "qoffset": ("f", 268, 3),
        "srow": ("f", 280, 12),
    },
    NIFTI2_HEADER: {
        "ndim": ("q", 16, 1),
        "pixdim": ("d", 104, 8),
        "quatern": ("d", 352, 3),
        "qoffset": ("d", 376, 3),
        "srow": ("d", 400, 12),
    },
}


def _nifti_header(path: Path) -> dict[str, tuple] | None:
    """The geometry fields of a NIfTI-1 or -2 header, or None when it cannot be parsed here."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(NIFTI2_HEADER)
    except (OSError, EOFError, zlib.error):
        return None
    if len(head) < NIFTI1_HEADER:
        return None  # ITK says what is missing
    # The layout by the magic, the byte order by dim[0] (1 to 7), as the NIfTI library decides
    # them; then the header size must agree, or ITK reads a geometry this check never saw (and
    # can loop for ever on it).
    if head[4:7] in (b"n+2", b"ni2"):
        size, dim0 = NIFTI2_HEADER, ("q", 16)
    elif head[344:347] in (b"n+1", b"ni1"):
        size, dim0 = NIFTI1_HEADER, ("h", 40)
    else:
        raise checks.HeaderError("no NIfTI-1 or NIfTI-2 magic in the header")
    if len(head) < size:
        return None
    code, offset = dim0
    endian = next((e for e in "<>" if 1 <= struct.unpack_from(f"{e}{code}", head, offset)[0] <= 7), "<")
    declared = struct.unpack_from(f"{endian}i", head)[0]
    if declared != size:
        raise checks.HeaderError(
            f"the NIfTI header size ({declared}) does not match its magic (NIfTI-{size // 270})"
        )
    return {
        name: struct.unpack_from(f"{endian}{number}{code}", head, offset)
        for name, (code, offset, number) in _NIFTI_FIELDS[size].items()
    }


def _nifti_pixdim(path: Path) -> list[float] | None:
    """The spatial pixdim of a NIfTI-1 or -2 header, or None when it cannot be parsed here."""
    fields = _nifti_header(path)
    if fields is None:
        return None
    ndim = fields["ndim"][0]
    return list(fields["pixdim"][1 : 1 + max(1, min(int(ndim), 3))])


def check_nifti_geometry(path: Path) -> None:
    """Refuse a non-finite quatern/qoffset/srow field before ITK reads the header.

    ITK's NIfTI reader never returns from a header with an infinite srow_* or qoffset_* (it
    loops orthogonalising the matrix), so these are read here, whatever qform/sform code.
    """
    fields = _nifti_header(path)
    if fields is None:
        return
    for name, count in (("quatern_b/c/d", 3), ("qoffset_x/y/z", 3), ("srow_x/y/z", 12)):
        checks.finite(fields[name.split("_")[0]], count, f"NIfTI {name}")


# MetaImage (MHA/MHD) element types of one scalar each; ITK reads no others sensibly.
META_ELEMENT_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def _text_header_lines(path: Path, separator: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a MetaImage or NRRD text header, from its first 64 kB. A header
    line with bytes that are not printable ASCII is refused: ITK's NRRD reader crashed
    (SIGSEGV) on a line of 0xff bytes."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_PEEK_BYTES).decode("latin-1")
    pairs = []
    for line in head.split("\n"):
        if separator == ":" and not line.strip():
            break  # NRRD: an empty line ends the header
        if not HEADER_TEXT.match(line):
            raise checks.HeaderError("the text header holds bytes that are not printable ASCII")
        key, found, value = line.partition(separator)
        if found:
            pairs.append((key.strip().lower(), value.strip()))
            if separator == "=" and key.strip().lower() == "elementdatafile":
                break  # MetaImage: the data follow this line
    return pairs


def _numbers(value: str, what: str) -> list[float]:
    try:
        return [float(word) for word in value.split()]
    except ValueError:
        raise checks.HeaderError(f"{what} is not a list of numbers ({value[:40]!r})") from None


def check_data_file(path: Path, name: str, what: str) -> Path | None:
    """The separate data file a header names: a regular file in the header's folder (or below).

    None for the header's own file (MetaImage's LOCAL). Lists and numbered patterns of files,
    devices (/dev/zero never ends) and paths leading out of the folder are refused.
    """
    name = name.strip()
    if name.upper() == "LOCAL":
        return None
    if not name:
        raise checks.HeaderError(f"{what} is empty")
    if name.upper().startswith("LIST") or "%" in name or len(name.split()) > 1:
        raise checks.HeaderError(f"{what} {name[:60]!r}: lists and patterns of data files are not supported")
    folder = path.parent.resolve()
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise checks.HeaderError(f"{what} {name[:60]!r} lies outside the header's folder")
    if not target.is_file():
        raise checks.HeaderError(f"{what} {name[:60]!r} is not a regular file next to the header")
    return target


def check_metaimage_header(path: Path, budget: int) -> None:
    """Refuse a MetaImage header ITK's reader would crash on (NDims 1000 or -1 end in SIGSEGV)."""
    pairs = _text_header_lines(path, "=")
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    if "ndims" not in fields:
        raise checks.HeaderError("no NDims in the MetaImage header")
    if "elementdatafile" not in fields:
        raise checks.HeaderError("no ElementDataFile in the MetaImage header")
    dims = {checks.count(value, "NDims", maximum=4) for value in fields["ndims"]}
    if len(dims) != 1 or min(dims) < 2:
        raise checks.HeaderError(f"NDims {', '.join(fields['ndims'])}: 2, 3 or 4 dimensions are supported")
    ndims = dims.pop()
    if "dimsize" not in fields:
        raise checks.HeaderError("no DimSize in the MetaImage header")
    sizes: list[int] = []
    for value in fields["dimsize"]:
        numbers = _numbers(value, "DimSize")
        if len(numbers) != ndims:
            raise checks.HeaderError(f"DimSize ({value[:60]}) does not give {ndims} sizes")
        sizes = [checks.count(n, f"DimSize along axis {k}") for k, n in enumerate(numbers)]
    for key in ("elementspacing", "elementsize", "offset", "position", "origin"):
        for value in fields.get(key, []):
            checks.finite(_numbers(value, key), ndims, f"MetaImage {key}")
    for key in ("transformmatrix", "rotation", "orientation"):
        for value in fields.get(key, []):
            checks.finite(_numbers(value, key), ndims * ndims, f"MetaImage {key}")
    for value in fields.get("elementnumberofchannels", []):
        if value != "1":
            raise checks.HeaderError(f"ElementNumberOfChannels {value[:20]!r}: only 1 is supported")
    element_bytes = 0
    for value in fields.get("elementtype", ["(none)"]):
        if value.upper() not in META_ELEMENT_BYTES:
            raise checks.HeaderError(f"ElementType {value[:30]!r} is not a supported scalar type")
        element_bytes = META_ELEMENT_BYTES[value.upper()]
    for value in fields.get("headersize", []):
        try:
            skip = int(value)
        except ValueError:
            raise checks.HeaderError(f"HeaderSize {value[:20]!r} is not a whole number") from None
        if skip < -1:
            raise checks.HeaderError(f"HeaderSize {skip} is negative")
    nbytes = math.prod(sizes) * element_bytes
    compressed = any(value.lower() == "true" for value in fields.get("compresseddata", []))
    binary = not any(value.lower() == "false" for value in fields.get("binarydata", []))
    stored = nbytes if binary else math.prod(sizes)  # as text, at least one character a value
    files = [check_data_file(path, value, "ElementDataFile") or path for value in fields["elementdatafile"]]
    for data in files if not compressed else []:
        checks.bytes_present(stored, data.stat().st_size, "Voxel data")
    checks.within_budget(nbytes, budget, f"A {'×'.join(map(str, sizes))} image")
    for data in files if compressed else []:  # after the budget, which names the size plainly
        checks.inflates_to(stored, data.stat().st_size, "Voxel data")


def check_nrrd_header(path: Path) -> None:
    """Refuse a NRRD "data file" that is a device, a list, or lies outside the header's folder,
    and text-encoded data that is not text: ITK's reader crashes (SIGSEGV) parsing binary bytes
    as ASCII numbers."""
    fields = dict(_text_header_lines(path, ":"))
    data = path
    for key in ("data file", "datafile"):
        if key in fields:
            data = check_data_file(path, fields[key], "NRRD data file") or path
    if fields.get("encoding", "").lower() in ("text", "txt", "ascii"):
        content = data.read_bytes()
        if data == path:
            content = content.split(b"\n\n", 1)[1] if b"\n\n" in content else b""
        if not TEXT_DATA.match(content):
            raise checks.HeaderError("the header says the voxels are text, but the data is not text")
        sizes = [checks.count(n, "NRRD sizes") for n in _numbers(fields.get("sizes", "0"), "NRRD sizes")]
        if len(content.split()) < math.prod(sizes):
            raise checks.HeaderError(
                f"the text data holds fewer than the {math.prod(sizes):,} values declared"
            )


def check_before_itk(path: Path, budget: int) -> None:
    """The checks made on the raw header, before ITK parses it at all."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti_geometry(path)
    elif name.endswith((".mha", ".mhd")):
        check_metaimage_header(path, budget)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd_header(path)


def read_header(path: Path) -> sitk.ImageFileReader:
    """A reader holding the file's header only; no voxel has been read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise LoadError(
            f"{path.name} could not be read as a NIfTI/MHA/NRRD image: {_itk_message(error)}"
        ) from None
    return reader


def check_header(reader: sitk.ImageFileReader, path: Path, budget: int) -> list[str]:
    """Refuse a header that lies about its size or geometry; warnings on what is left out."""
    dimension = reader.GetDimension()
    if not 2 <= dimension <= 4:
        raise checks.HeaderError(f"{dimension} dimensions; 2, 3 or 4 are supported")
    size = [checks.count(n, f"Size along axis {k}") for k, n in enumerate(reader.GetSize())]
    if reader.GetNumberOfComponents() != 1:
        raise checks.HeaderError("multi-component images (colour, vectors) are not supported")
    nbytes = math.prod(size) * _component_bytes(reader.GetPixelID())
    if _stored_raw_inline(path):
        checks.bytes_present(nbytes, path.stat().st_size, "Voxel data")
    checks.within_budget(nbytes, budget, f"A {'×'.join(map(str, size))} image")
    if path.name.lower().endswith(".nii.gz"):  # after the budget, which names the size plainly
        checks.inflates_to(nbytes, path.stat().st_size, "Voxel data")
    spatial = min(dimension, 3)
    checks.spacing(reader.GetSpacing()[:spatial], "Spacing")
    checks.position([*reader.GetOrigin()[:spatial], 0.0, 0.0][:3], "Origin")
    matrix = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    square = np.eye(3)
    square[:spatial, :spatial] = matrix[:spatial, :spatial]
    checks.direction(square, "Direction")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        pixdim = _nifti_pixdim(path)
        if pixdim is not None:
            checks.finite(pixdim, len(pixdim), "NIfTI pixdim")
    if dimension == 4 and size[3] > 1:
        return [f"A 4D image of {size[3]} volumes: only the first is shown"]
    return []


def volume_from_image(image: sitk.Image, *, source: Path | None = None) -> Volume:
    """Convert an ITK image, keeping its geometry exactly (axes reordered to z, y, x)."""
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LoadError(f"{source}: multi-component images (colour, vectors) are not supported")
    image = sitk.DICOMOrient(image, CANONICAL_ORIENTATION)
    voxels = sitk.GetArrayFromImage(image)
    if voxels.dtype not in (np.int16, np.uint8, np.float32):
        voxels = voxels.astype(np.float32)
    direction_xyz = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return Volume(
        voxels=voxels,
        spacing=tuple(reversed(image.GetSpacing())),
        origin=image.GetOrigin(),
        direction=direction_xyz[:, ::-1],
        modality="OT",
        source=source,
    )


def image_from_volume(volume: Volume, voxels: np.ndarray | None = None) -> sitk.Image:
    """An ITK image on the volume's grid holding `voxels` (the volume's own by default)."""
    image = sitk.GetImageFromArray(volume.voxels if voxels is None else voxels)
    image.SetSpacing(tuple(reversed(volume.spacing)))
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction[:, ::-1].ravel()))
    return image


def load_itk(path: Path, memory_budget: int | None = None) -> Volume:
    """Read the header, check it (see the module's docstring), then the voxels."""
    budget = checks.memory_budget(memory_budget)
    try:
        check_before_itk(path, budget)
    except checks.HeaderError as error:
        raise checks.HeaderError(f"{path.name}: {error}") from None
    except OSError as error:
        raise LoadError(f"{path.name} could not be read: {checks.one_line(error)}") from None
    reader = read_header(path)
    try:
        warnings = check_header(reader, path, budget)
    except checks.HeaderError as error:
        raise checks.HeaderError(f"{path.name}: {error}") from None
    if reader.GetDimension() == 4:
        reader.SetExtractSize([*reader.GetSize()[:3], 0])
        reader.SetExtractIndex([0, 0, 0, 0])
    try:
        volume = volume_from_image(reader.Execute(), source=path)
    except LoadError:
        raise
    except Exception as error:  # ITK RuntimeError, MemoryError: a damaged body after a sane header
        raise LoadError(
            f"{path.name} could not be read as a NIfTI/MHA/NRRD image: {_itk_message(error)}"
        ) from None
    checks.refuse_infinite_voxels(volume.voxels, path.name)
    volume.warnings.extend(warnings)
    volume.meta["Format"] = path.name.split(".", 1)[-1].upper()
    return volume


def save_itk(volume: Volume, path: Path, voxels: np.ndarray | None = None) -> None:
    """Write `voxels` (default: the volume's) in the volume's geometry; the suffix picks the format."""
    sitk.WriteImage(image_from_volume(volume, voxels), str(path), useCompression=True)
