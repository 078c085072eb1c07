"""Regression tests for the DICOM loader failures the fuzz harness found (master seed 13).

Each input is remade by the fuzz harness from (family, seed, case) and loaded in a subprocess
whose timeout is the only time bound: the failures included endless header and directory walks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
from tests.fuzz.harness import make_case
from tests.fuzz.seeds import build_seeds

MASTER_SEED = 13
FAMILIES = ("dicom", "dicom_series", "dicomdir")
TIMEOUT = 60  # seconds; the hangs walked gigabytes or looped for ever

LOAD = """
import json, sys
from medvis_desktop import imaging
from medvis_desktop.errors import LoadError
try:
    volume = imaging.load(sys.argv[1])
    print(json.dumps({"warnings": volume.warnings, "shape": list(volume.voxels.shape)}))
except LoadError as error:
    print(json.dumps({"error": str(error)}))
"""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return build_seeds(tmp_path_factory.mktemp("seeds"), FAMILIES)


def _case(seeds, tmp_path: Path, family: str, index: int) -> Path:
    return make_case(family, index, MASTER_SEED, seeds[family], tmp_path).path


def _load_isolated(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one_line_naming(message: str, name: str) -> None:
    assert "\n" not in message
    assert name in message


@pytest.mark.parametrize(("family", "index"), [("dicom_series", 35), ("dicomdir", 70)])
def test_a_huge_sparse_file_in_the_folder_is_skipped(seeds, tmp_path, family, index):
    """8 GB of hole after 'DICM': refused unread (size, or no File Meta group), not walked."""
    path = _case(seeds, tmp_path, family, index)
    result = _load_isolated(path)
    assert "error" not in result
    assert any(w.startswith("Damaged file skipped: JUNK") for w in result["warnings"])


def test_a_file_larger_than_the_memory_budget_is_refused_unread(tmp_path):
    path = tmp_path / "big.dcm"
    with path.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        handle.truncate(2 * 2**20)
    with pytest.raises(LoadError, match="more than the memory budget") as raised:
        imaging.load(path, memory_budget=2**20)
    _one_line_naming(str(raised.value), "big.dcm")


def test_a_dicomdir_whose_records_loop_is_refused(seeds, tmp_path):
    """OffsetOfTheNextDirectoryRecord pointing back at an earlier record."""
    path = _case(seeds, tmp_path, "dicomdir", 11)
    result = _load_isolated(path)
    _one_line_naming(result["error"], "DICOMDIR")
    assert "linked twice (a loop)" in result["error"]


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (42, "Unknown Value Representation"),  # flipped bytes in the file meta group
        (91, "BytesLengthException"),  # a UI element rewritten as UL
        (203, "no transfer syntax"),  # TransferSyntaxUID emptied
    ],
)
def test_a_damaged_lone_file_is_a_one_line_load_error(seeds, tmp_path, index, reason):
    path = _case(seeds, tmp_path, "dicom", index)
    with pytest.raises(LoadError) as raised:
        imaging.load(path)
    _one_line_naming(str(raised.value), path.name)
    assert reason in str(raised.value)


def test_a_file_without_a_position_is_left_out_of_the_series(seeds, tmp_path):
    """One file of a series lost ImagePositionPatient: skipped with a warning, not a crash."""
    path = _case(seeds, tmp_path, "dicom_series", 65)
    volume = imaging.load(path)
    assert any(w == "Image(s) without a slice position left out: IM00002" for w in volume.warnings)


@pytest.mark.parametrize("index", [18, 453])  # BitsStored set to 65535 (master seed 29)
def test_bits_stored_beyond_bits_allocated_is_a_one_line_load_error(seeds, tmp_path, index):
    path = make_case("dicom", index, 29, seeds["dicom"], tmp_path).path
    with pytest.raises(LoadError) as raised:
        imaging.load(path)
    _one_line_naming(str(raised.value), path.name)
    assert "BitsStored of 65,535 exceeds the limit" in str(raised.value)


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (3008, "compressed as"),  # TransferSyntaxUID read as AE: a string, named and refused
        (7071, "the transfer syntax is not a UID"),  # read as SS: a number
        (9437, "the transfer syntax is not a UID"),  # read as US
    ],
)
def test_a_transfer_syntax_with_another_vr_is_a_one_line_load_error(seeds, tmp_path, index, reason):
    """Master seed 31: the File Meta's (0002,0010) with its VR changed crashed the decoder check."""
    path = make_case("dicom", index, 31, seeds["dicom"], tmp_path).path
    with pytest.raises(LoadError) as raised:
        imaging.load(path)
    _one_line_naming(str(raised.value), path.name)
    assert reason in str(raised.value)
