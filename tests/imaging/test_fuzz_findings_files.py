"""Regressions for the fuzz findings in the NIfTI/MHA/NRRD, InVesalius, raster and .h5 loaders.

One test per failure signature found by tests/fuzz (seed 13): each input is made here by code,
the way the fuzzer damaged it, and must be refused with a one-line LoadError naming the file.
Inputs that once hung or crashed the interpreter (ITK) are loaded in a child process, bounded
by the subprocess timeout only.
"""

from __future__ import annotations

import gzip
import io
import plistlib
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
from tests.fuzz.seeds import write_inv3

# Generous: the refusal takes milliseconds; only a hang or a crash comes near it.
CHILD_TIMEOUT_S = 120
# NIfTI-1 header offsets.
SCL_SLOPE, QOFFSET_X, SROW_X = 112, 268, 280


def refusal(path: Path) -> str:
    """The LoadError message of loading `path` in this process, checked: one line, naming the file."""
    with pytest.raises(LoadError) as caught:
        imaging.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert path.name in message
    return message


CHILD = """
import sys
from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
try:
    imaging.load(sys.argv[1])
except LoadError as error:
    print("REFUSED", error)
else:
    print("LOADED")
"""


def refusal_in_child(path: Path) -> str:
    """As `refusal`, in a child process: a regression would hang or crash (SIGSEGV) it."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("REFUSED "), done.stdout
    message = lines[0].removeprefix("REFUSED ")
    assert path.name in message
    return message


def small_image(pixel: int = sitk.sitkInt16) -> sitk.Image:
    array = (np.arange(4 * 5 * 6) * 7).reshape(4, 5, 6)
    return sitk.Cast(sitk.GetImageFromArray(array.astype(np.int16)), pixel)


def nifti(tmp_path: Path, name: str, **fields: tuple[int, str, float]) -> Path:
    """A small NIfTI-1 file with the given header fields overwritten ((offset, format, value))."""
    path = tmp_path / name
    sitk.WriteImage(small_image(), str(path))
    data = bytearray(gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes())
    for offset, code, value in fields.values():
        struct.pack_into("<" + code, data, offset, value)
    path.write_bytes(gzip.compress(bytes(data)) if name.endswith(".gz") else bytes(data))
    return path


# --- 1. NIfTI with an infinite srow/qoffset: ITK never returned ---------------------------------


@pytest.mark.parametrize(
    ("field", "offset"), [("srow", SROW_X), ("srow", SROW_X + 16 + 12), ("qoffset", QOFFSET_X)]
)
def test_nifti_with_an_infinite_affine_field_is_refused_before_itk(tmp_path, field, offset):
    path = nifti(tmp_path, "affine.nii.gz", edit=(offset, "f", float("inf")))
    message = refusal_in_child(path)
    assert field in message and "not finite" in message


# --- 2. MHA with NDims 1000 or -1: ITK's MetaIO crashed (SIGSEGV) -------------------------------


def mha(tmp_path: Path, old: bytes, new: bytes, name: str = "image.mha") -> Path:
    path = tmp_path / name
    sitk.WriteImage(small_image(), str(path), useCompression=False)
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    return path


@pytest.mark.parametrize("ndims", [b"1000", b"-1"])
def test_mha_with_an_impossible_ndims_is_refused_before_itk(tmp_path, ndims):
    path = mha(tmp_path, b"NDims = 3", b"NDims = " + ndims)
    assert "NDims" in refusal_in_child(path)


@pytest.mark.parametrize(
    ("data_file", "match"),
    [
        (b"/dev/zero", "outside"),
        (b"../outside.raw", "outside"),
        (b"LIST", "not supported"),
        (b"image%03d.raw 1 1000000 1", "not supported"),
        (b"missing.raw", "not a regular file"),
    ],
)
def test_mha_data_file_outside_the_folder_or_a_device_is_refused(tmp_path, data_file, match):
    (tmp_path / "outside.raw").write_bytes(bytes(1000))
    folder = tmp_path / "study"
    folder.mkdir()
    path = mha(folder, b"ElementDataFile = LOCAL", b"ElementDataFile = " + data_file)
    assert match in refusal(path)


def test_mha_with_an_unknown_element_type_is_refused(tmp_path):
    path = mha(tmp_path, b"ElementType = MET_SHORT", b"ElementType = MET_STRING")
    assert "ElementType" in refusal(path)


def test_nrrd_data_file_on_a_device_is_refused(tmp_path):
    path = tmp_path / "image.nhdr"
    sitk.WriteImage(small_image(), str(path))
    text = path.read_text(encoding="latin-1")
    assert "data file:" in text
    lines = ["data file: /dev/zero" if line.startswith("data file:") else line for line in text.split("\n")]
    path.write_text("\n".join(lines), encoding="latin-1")
    assert "outside" in refusal_in_child(path)


def test_a_sane_mha_and_nhdr_still_load(tmp_path):
    for name in ("image.mha", "image.mhd", "image.nhdr"):
        path = tmp_path / name
        sitk.WriteImage(small_image(), str(path))
        assert imaging.load(path).voxels.shape == (4, 5, 6)


# --- 3. ±inf voxels: refused, not clipped -------------------------------------------------------


def test_nifti_whose_rescale_slope_overflows_is_refused(tmp_path):
    path = nifti(tmp_path, "slope.nii.gz", slope=(SCL_SLOPE, "f", 1e38))
    assert "infinite" in refusal(path)


def inv3_project(voxels: np.ndarray) -> dict[str, bytes]:
    project = {
        "name": "fuzz",
        "modality": "CT",
        "spacing": [1.0, 1.0, 2.0],
        "matrix": {"filename": "matrix.dat", "shape": list(voxels.shape), "dtype": voxels.dtype.str},
    }
    return {"main.plist": plistlib.dumps(project), "matrix.dat": voxels.tobytes()}


def test_inv3_with_infinite_float_voxels_is_refused(tmp_path):
    voxels = np.zeros((2, 3, 4), dtype=np.float32)
    voxels[1, 2, 3] = -np.inf
    path = tmp_path / "inf.inv3"
    write_inv3(path, inv3_project(voxels))
    assert "infinite" in refusal(path)


def test_nan_voxels_are_still_loaded(tmp_path):
    voxels = np.zeros((2, 3, 4), dtype=np.float32)
    voxels[0, 0, 0] = np.nan
    path = tmp_path / "nan.inv3"
    write_inv3(path, inv3_project(voxels))
    assert np.isnan(imaging.load(path).voxels).sum() == 1


# --- 4. InVesalius: errors of plistlib (expat) and gzip (zlib) ----------------------------------


def test_inv3_with_broken_plist_xml_is_refused(tmp_path):
    members = inv3_project(np.zeros((2, 3, 4), dtype=np.int16))
    members["main.plist"] = members["main.plist"].replace(b"</dict>", b"</dixt>", 1)
    path = tmp_path / "expat.inv3"
    write_inv3(path, members)
    assert "ExpatError" in refusal(path)


def test_inv3_with_a_broken_deflate_stream_is_refused(tmp_path):
    path = tmp_path / "zlib.inv3"
    # A gzip header, then a deflate block of the reserved type 3: zlib.error "invalid block type".
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 64)
    assert "not a readable InVesalius project" in refusal(path)


# --- 5. Raster: Pillow's SyntaxError on a damaged PNG chunk length ------------------------------


def test_png_with_a_damaged_chunk_length_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT") - 4
    struct.pack_into(">I", data, idat, 0)
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    assert "broken PNG file" in refusal(path)


def test_float_tiff_with_infinite_pixels_is_refused(tmp_path):
    pixels = np.zeros((8, 8), dtype=np.float32)
    pixels[3, 3] = np.inf
    path = tmp_path / "inf.tif"
    Image.fromarray(pixels, mode="F").save(path)
    assert "infinite" in refusal(path)


# --- 10,000 per family (seed 31): hangs and crashes ITK's readers still had ---------------------


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("size540.nii", 540, "(540) does not match its magic (NIfTI-1)"),  # read as NIfTI-2: looped
        ("size347.nii", 347, "(347) does not match its magic"),
        ("swapped.nii.gz", 0x5C010000, "does not match its magic"),  # seed 31: 348 if read big-endian
    ],
)
def test_a_nifti_header_size_that_disagrees_with_its_magic_is_refused(tmp_path, name, size, message):
    path = nifti(tmp_path, name, size=(0, "i", size), srow=(SROW_X + 16 + 12, "f", float("inf")))
    assert message in refusal_in_child(path)


def test_a_compressed_nifti_declaring_more_than_it_can_inflate_to_is_refused(tmp_path):
    """dim[3] 32767 of uint64 in a few hundred gzip bytes: 1 GB, within the budget, read for minutes."""
    path = nifti(tmp_path, "long.nii.gz", dim3=(46, "h", 32767), datatype=(70, "h", 1280), bits=(72, "h", 64))
    assert "more than the file's" in refusal_in_child(path)


def test_a_compressed_text_mha_declaring_a_billion_values_is_refused(tmp_path):
    path = tmp_path / "text.mha"
    sitk.WriteImage(small_image(), str(path), useCompression=True)
    data = path.read_bytes().replace(b"BinaryData = True", b"BinaryData = False", 1)
    path.write_bytes(data.replace(b"DimSize = 6 5 4", b"DimSize = 1e9 1 1", 1))
    assert "more than the file's" in refusal_in_child(path)


@pytest.mark.parametrize("encoding", ["text", "ascii"])
def test_a_nrrd_whose_binary_data_is_called_text_is_refused(tmp_path, encoding):
    """ITK's NRRD reader crashed (SIGSEGV) parsing raw float bytes as ASCII numbers."""
    path = tmp_path / "image.nrrd"
    sitk.WriteImage(sitk.Cast(small_image(), sitk.sitkFloat32), str(path), useCompression=False)
    data = path.read_bytes()
    assert b"encoding: raw" in data
    path.write_bytes(data.replace(b"encoding: raw", b"encoding: " + encoding.encode(), 1))
    assert "the data is not text" in refusal_in_child(path)


def test_a_real_text_nrrd_still_loads(tmp_path):
    path = tmp_path / "text.nrrd"
    values = np.arange(2 * 3 * 4, dtype=np.int16)
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nencoding: text\n\n"
    path.write_bytes(header.encode() + " ".join(map(str, values)).encode() + b"\n")
    np.testing.assert_array_equal(imaging.load(path).voxels.ravel(), values)


def test_a_nrrd_header_line_of_binary_bytes_is_refused(tmp_path):
    """Seed 31, nrrd case 7940: 4096 bytes 0xff inside `space origin:` crashed ITK (SIGSEGV)."""
    path = tmp_path / "image.nrrd"
    sitk.WriteImage(small_image(), str(path), useCompression=True)
    data = path.read_bytes()
    at = data.index(b"space origin: ") + len(b"space origin: ")
    path.write_bytes(data[:at] + b"\xff" * 4096 + data[at:])
    assert "not printable ASCII" in refusal_in_child(path)
