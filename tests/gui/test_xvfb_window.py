"""The real window under Xvfb, as a user scripts it: open, run Grad-CAM, screenshot, exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medvis_desktop import imaging
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.gui.slice_viewer import SNAPSHOT_LINE, SNAPSHOT_MARGIN, Section
from medvis_desktop.models import load_model

SLICE = 20
LEGEND_LINES = 3  # method and layer, study and slice, model


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_screenshot_from_the_command_line(ct_nifti, tiny_model_path, tmp_path):
    out = tmp_path / "out.png"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("QT_QPA_PLATFORM", None)  # a real X window this time
    command = [
        "xvfb-run", "-a", sys.executable, "-m", "medvis_desktop.gui",
        "--open", str(ct_nifti), "--model", str(tiny_model_path),
        "--method", "grad_cam", "--slice", str(SLICE), "--screenshot", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(out) in done.stdout
    assert out.with_name("out.png.provenance.json").exists()

    volume = imaging.load(ct_nifti)
    heat = explain_volume(volume, load_model(tiny_model_path), "grad_cam", slices=[SLICE]).maps[SLICE]
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    shot = np.asarray(Image.open(out).convert("RGB")).astype(int)
    transform = Section.through(0).transform(volume)
    pixel = min(volume.spacing[1:])
    header = SNAPSHOT_MARGIN + SNAPSHOT_LINE * LEGEND_LINES
    rows, columns = (grid.ravel() for grid in np.mgrid[0 : volume.shape[1] : 4, 0 : volume.shape[2] : 4])
    # Where each sampled voxel's centre lands in the screenshot (mm on screen → PNG pixels).
    centres = np.array([transform.map(c + 0.5, r + 0.5) for r, c in zip(rows, columns, strict=True)])
    pixels = shot[
        (centres[:, 1] / pixel + header).astype(int), (centres[:, 0] / pixel + SNAPSHOT_MARGIN).astype(int)
    ]
    colourful = np.abs(np.diff(pixels, axis=1)).sum(axis=1) > 20
    sampled = heat[rows, columns]
    head = volume.voxels[SLICE][rows, columns] > -200

    assert colourful[sampled > 0.5].mean() > 0.95  # heat-map colours where the map is high
    assert not colourful[sampled < 0.1].any()  # nothing drawn below the threshold
    grey_inside = pixels[head & (sampled < 0.1), 0]
    assert grey_inside.size > 50 and grey_inside.std() > 10  # anatomy visible inside the head
