"""The real window under Xvfb, as a user scripts it: open, run Grad-CAM, screenshot, exit."""

from __future__ import annotations

import numpy as np

from medvis_desktop import imaging
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.models import load_model
from tests.gui.conftest import screen_samples, xvfb_medvis

SLICE = 20


def test_screenshot_from_the_command_line(ct_nifti, tiny_model_path, tmp_path):
    out = tmp_path / "out.png"
    user_settings = tmp_path / "config" / "medvis" / "medvis_desktop.ini"
    user_settings.parent.mkdir(parents=True)
    user_settings.write_text("[General]\nrecent=/studies/a.nii.gz\n\n[overlay]\ncolormap=turbo\n")
    before = user_settings.read_bytes()
    done = xvfb_medvis(
        tmp_path,
        "--open", str(ct_nifti), "--model", str(tiny_model_path),
        "--method", "grad_cam", "--slice", str(SLICE), "--screenshot", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(out) in done.stdout
    assert out.with_name("out.png.provenance.json").exists()
    assert user_settings.read_bytes() == before  # a scripted run leaves the user's settings alone

    volume = imaging.load(ct_nifti)
    heat = explain_volume(volume, load_model(tiny_model_path), "grad_cam", slices=[SLICE]).maps[SLICE]
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    rows, columns, pixels = screen_samples(out, volume)
    colourful = np.abs(np.diff(pixels, axis=1)).sum(axis=1) > 20
    sampled = heat[rows, columns]
    head = volume.voxels[SLICE][rows, columns] > -200

    assert colourful[sampled > 0.5].mean() > 0.95  # heat-map colours where the map is high
    assert not colourful[sampled < 0.1].any()  # nothing drawn below the threshold
    grey_inside = pixels[head & (sampled < 0.1), 0]
    assert grey_inside.size > 50 and grey_inside.std() > 10  # anatomy visible inside the head
