"""The README's picture of a DICOM result: the CT demo's Grad-CAM written as a Parametric Map by
`medvis explain --dicom-out`, read back with pydicom and drawn over the CT slice it references.

    .venv/bin/python tools/dicom_results_figure.py [docs/parametric_map_over_ct.png]

Five slices of the demo head CT around its first lesion slice go out as a real CT series (as
tests/export/ct_study.py writes one: every module of the CT Image IOD), the CLI explains them
with the demo model, and the figure shows what the Parametric Map file itself holds: the frame
whose position is the key slice's, its float values, and the colour bar in those values.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom

from medvis_desktop import imaging
from medvis_desktop.cli import main as medvis
from medvis_desktop.demo import cases
from medvis_desktop.export.images import save_png, triptych

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.export.ct_study import write_ct_study  # noqa: E402 (the checkout's test writer)

SLICES_AROUND = 2


def main(out: Path) -> None:
    volume, _mask, model_path, case = cases.load_case("ct")
    key = case.first_slice
    slab = volume.voxels[key - SLICES_AROUND : key + SLICES_AROUND + 1]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        study = write_ct_study(np.round(slab).astype(np.int16), work / "series", angle_degrees=0.0)
        code = medvis(
            ["explain", "--model", str(model_path), "--input", str(study.folder), "--method", case.method,
             "--layer", case.layer, "--out", str(work / "out"), "--dicom-out", str(work / "dicom")]
        )  # fmt: skip
        if code != 0:
            raise SystemExit(f"medvis explain failed ({code})")
        parametric_map = pydicom.dcmread(next((work / "dicom").glob("PM_*.dcm")))
        ct = imaging.load(study.folder)
        key_position = np.asarray(study.positions[SLICES_AROUND])
        frames = parametric_map.PerFrameFunctionalGroupsSequence
        index = next(
            k
            for k, frame in enumerate(frames)
            if np.allclose(frame.PlanePositionSequence[0].ImagePositionPatient, key_position, atol=1e-3)
        )
        heat = parametric_map.pixel_array[index].astype(np.float32)
        grey = imaging.to_display(ct.voxels[SLICES_AROUND], imaging.default_window(ct))
        legend = [
            f"Parametric Map read back with pydicom: frame {index + 1} of {len(frames)}, "
            f"at the CT slice's position {tuple(round(float(v), 1) for v in key_position)} mm",
            f"{parametric_map.ContentDescription}",
            f"{parametric_map.SeriesDescription}; same study and Frame of Reference as the CT",
        ]
        figure = triptych(grey, heat, spacing_yx=ct.spacing[1:], legend=legend)
    print(save_png(figure, out))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "parametric_map_over_ct.png")
