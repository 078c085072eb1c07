"""Exports appear whole or not at all, never over the source study, and a full disk or a
read-only folder is one clear line.

The disk conditions are real: a 64 KiB tmpfs, and a tmpfs remounted read-only, each mounted
in a mount namespace of its own (`unshare --mount`, as root) around a child Python that runs
the exports and reports what it saw. Permission bits would not do: root writes through them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvis_desktop import imaging
from medvis_desktop.export import (
    ExportError,
    atomic_write,
    dicom_results,
    save_heatmap,
    save_png,
)
from medvis_desktop.export.atomic import TEMPORARY_PREFIX
from medvis_desktop.imaging import Volume
from tests.export.ct_study import write_ct_study

ROOT = Path(__file__).resolve().parents[2]
OLD = b"an older export the user kept"

# Run in the child, inside the mount namespace: every kind of export into FOLDER, each over an
# older file of the same name, then (with --read-only) after the tmpfs is remounted read-only.
CHILD = r"""
import json, subprocess, sys
from pathlib import Path
import numpy as np
from PIL import Image
from medvis_desktop.export import ExportError, Provenance, dicom_results, save_heatmap, save_png
from medvis_desktop.export import write_provenance
from medvis_desktop.imaging import Volume

folder, read_only = Path(sys.argv[1]), sys.argv[2:] == ["--read-only"]
rng = np.random.default_rng(0)
noise = rng.random((20, 64, 64), dtype=np.float32)  # incompressible: 320 KiB, the disk has 64
volume = Volume(noise, modality="CT")
pixels = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
sc = dicom_results.secondary_capture(pixels, None, burned_in_annotation=False, description="noise")
record = Provenance.for_run("grad_cam", model_path=None, input_path=None, parameters={"x": "y" * 200_000})
writers = {
    "heat.nii.gz": lambda path: save_heatmap(volume, noise, path),
    "heat.mha": lambda path: save_heatmap(volume, noise, path),
    "view.png": lambda path: save_png(Image.fromarray(pixels), path),
    "view.png.provenance.json": lambda path: write_provenance(record, folder / "view.png"),
    f"SC_{sc.SOPInstanceUID}.dcm": lambda path: dicom_results.save(sc, path.parent),
}
for name in writers:
    (folder / name).write_bytes(b"an older export the user kept")
if read_only:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
seen = {}
for name, write in writers.items():
    try:
        write(folder / name)
        outcome = "written"
    except ExportError as error:
        outcome = str(error)
    seen[name] = {
        "outcome": outcome,
        "older_kept": (folder / name).read_bytes() == b"an older export the user kept",
        "files": sorted(p.name for p in folder.iterdir()),
    }
print(json.dumps(seen))
"""


def export_on_tmpfs(tmp_path: Path, *, size: str, read_only: bool) -> dict[str, dict]:
    """Run CHILD with its folder on a fresh tmpfs of `size` in a mount namespace of its own."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a tmpfs in a mount namespace needs root and unshare (util-linux)")
    folder = tmp_path / "disk"
    folder.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    flag = " --read-only" if read_only else ""
    command = (
        f"mount -t tmpfs -o size={size} medvis-test {folder} && exec {sys.executable} {script} {folder}{flag}"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert not any(folder.iterdir()), "the tmpfs was not private to the child"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_refused_cleanly(seen: dict[str, dict], reason: str) -> None:
    """Every export failed with one line naming the file and the reason, and left only the
    older files, untouched: nothing partial, nothing temporary."""
    for name, what in seen.items():
        assert what["outcome"].startswith(f"Could not save {name} in "), (name, what["outcome"])
        assert what["outcome"].endswith(f": {reason}") and "\n" not in what["outcome"], what["outcome"]
        assert what["older_kept"], name
        assert what["files"] == sorted(seen), (name, what["files"])


def test_a_full_disk_is_one_line_and_leaves_the_older_files_whole(tmp_path):
    assert_refused_cleanly(export_on_tmpfs(tmp_path, size="64k", read_only=False), "the disk is full")


def test_a_read_only_folder_is_one_line_and_changes_nothing(tmp_path):
    seen = export_on_tmpfs(tmp_path, size="1m", read_only=True)
    assert_refused_cleanly(seen, "the folder is on a read-only disk")


def test_the_same_exports_fit_a_disk_with_room(tmp_path):
    """The control: the child's exports do succeed on a tmpfs that has the space."""
    seen = export_on_tmpfs(tmp_path, size="8m", read_only=False)
    for name, what in seen.items():
        assert what["outcome"] == "written" and not what["older_kept"], name
    assert not any(name.startswith(TEMPORARY_PREFIX) for name in seen["heat.nii.gz"]["files"])


def test_a_written_heat_map_replaces_the_older_file_and_reads_back(tmp_path):
    volume = Volume(np.zeros((3, 8, 8), np.float32), spacing=(2.0, 1.0, 1.0))
    path = tmp_path / "heat.nii.gz"
    path.write_bytes(OLD)
    maps = np.arange(volume.voxels.size, dtype=np.float32).reshape(volume.shape)
    save_heatmap(volume, maps, path)
    np.testing.assert_array_equal(imaging.load(path).voxels, maps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat.nii.gz"]


@pytest.mark.parametrize("error", [ValueError("a bug in the writer"), KeyboardInterrupt()])
def test_a_failure_mid_write_leaves_the_older_file_and_no_temporary(tmp_path, error):
    """Not a disk problem: the error goes on unchanged, the half-written file is gone."""
    path = tmp_path / "scores.csv"
    path.write_bytes(OLD)
    with pytest.raises(type(error)), atomic_write(path) as temporary:
        temporary.write_text("slice,normal,lesion\n0,0.")
        raise error
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ExportError, match=r"^Could not save a.png in .*: the folder does not exist$"):
        save_png(Image.new("RGB", (4, 4)), tmp_path / "nowhere" / "a.png")


def test_the_source_file_is_never_overwritten(tmp_path):
    """A NIfTI study: its own file is refused, directly or through a link; beside it is fine."""
    source = tmp_path / "head.nii.gz"
    volume = Volume(np.zeros((2, 8, 8), np.float32), source=source)
    imaging.save(volume, source)
    before = source.read_bytes()
    (tmp_path / "link.nii.gz").symlink_to(source)
    for target in (source, tmp_path / "link.nii.gz"):
        with pytest.raises(
            ExportError, match=r"^Refused to write .*: it would overwrite or add to the study"
        ):
            save_heatmap(volume, np.ones(volume.shape, np.float32), target)
    assert source.read_bytes() == before
    save_heatmap(volume, np.ones(volume.shape, np.float32), tmp_path / "heat.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.nii.gz", "heat.nii.gz", "link.nii.gz"]


def test_nothing_is_written_into_a_dicom_source_folder(tmp_path, head_ct_hu):
    """A DICOM series is every file of its folder: exports go elsewhere, the folder stays as read."""
    hu = np.clip(head_ct_hu[50:52, 96:128, 96:128], -1024, 3071).astype(np.int16)
    study = write_ct_study(hu, tmp_path / "study")
    volume = imaging.load(study.folder)
    listing = {p: p.read_bytes() for p in study.folder.rglob("*")}
    heat = np.ones(volume.shape, np.float32)
    sc = dicom_results.secondary_capture(
        np.zeros((8, 8, 3), np.uint8), volume, burned_in_annotation=False, description="test"
    )
    attempts = {
        "heat map": lambda: save_heatmap(volume, heat, study.folder / "heat.nii.gz"),
        "PNG": lambda: save_png(Image.new("RGB", (4, 4)), study.paths[0], source=volume.source),
        "DICOM": lambda: dicom_results.save(sc, study.folder / "results", source=volume.source),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ExportError, match="Refused to write"):
            attempt()
        assert {p: p.read_bytes() for p in study.folder.rglob("*")} == listing, what
    dicomdir_source = Volume(heat, source=study.folder / "DICOMDIR")  # as read through a DICOMDIR
    (study.folder / "DICOMDIR").write_bytes(b"")
    with pytest.raises(ExportError, match="Refused"):
        save_heatmap(dicomdir_source, heat, study.folder / "heat.nii.gz")
    assert dicom_results.save(sc, tmp_path / "results", source=volume.source).is_file()
