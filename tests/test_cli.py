"""`medvis info` as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import medvis_desktop
from tests.imaging.dicom_factory import SeriesSpec, write_series

MEDVIS = Path(sys.executable).parent / "medvis"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MEDVIS), *args], capture_output=True, text=True, timeout=120)


def test_info_on_the_real_head_ct(head_ct_path):
    result = run("info", str(head_ct_path))
    assert result.returncode == 0, result.stderr
    assert "Modality: CT" in result.stdout
    assert "Shape (z, y, x): 108 × 256 × 256" in result.stdout
    assert "Spacing (z, y, x): 1.500 × 0.957 × 0.957 mm" in result.stdout
    assert "Value range: -1024 to 2986 HU" in result.stdout


def test_info_lists_series_and_warnings_without_patient_identity(tmp_path, head_ct_block):
    write_series(head_ct_block[:10], tmp_path / "a", SeriesSpec(patient_name="Doe^Jane"))
    write_series(head_ct_block[:4], tmp_path / "b", SeriesSpec(series_description="Head 5mm"))
    (tmp_path / "junk.txt").write_text("x")
    result = run("info", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Series: 2" in result.stdout
    assert "10 images 256×256" in result.stdout and "4 images 256×256" in result.stdout
    assert "1 file(s) that are not DICOM were skipped" in result.stdout
    assert "Doe^Jane" not in result.stdout and "PID-0042" not in result.stdout
    shown = run("info", "--show-patient", str(tmp_path))
    assert "Doe^Jane" in shown.stdout


def test_info_failure_is_one_line_and_non_zero(tmp_path):
    result = run("info", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"medvis: The folder {tmp_path} is empty"]
    assert "Traceback" not in result.stderr


def test_module_entry_point_matches_the_script(head_ct_path):
    result = subprocess.run(
        [sys.executable, "-m", "medvis_desktop", "info", str(head_ct_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Modality: CT" in result.stdout


def test_version_names_the_package_without_loading_tensorflow_or_qt():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"medvis {medvis_desktop.__version__}\n"
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom medvis_desktop.cli import main\ntry:\n    main(['--version'])\n"
         "except SystemExit:\n    pass\nprint('tensorflow' in sys.modules, 'PySide6' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.splitlines()[-1] == "False False"
