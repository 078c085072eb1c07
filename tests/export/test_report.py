"""`medvis evaluate`'s outputs from a made-up evaluation: the CSV, the plots drawn with Pillow, the
self-contained HTML report (opened in headless Chromium) and the provenance beside each file."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from medvis_desktop import colormaps
from medvis_desktop.export.atomic import ExportError
from medvis_desktop.export.report import (
    COLUMNS,
    NAMES,
    PALETTE,
    cascade_figure,
    curve_plot,
    report_html,
    write_csv,
    write_report,
)
from medvis_desktop.models.card import ModelCard

CHROMIUM = "/usr/bin/chromium"
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def screenshot(page: Path, folder: Path) -> np.ndarray:
    """The page as headless Chromium draws it, RGB (1600, 1200, 3): nothing may be fetched."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make test`'s set-up (packaging/system_deps.sh installs the Debian "
            "package chromium)"
        )
    shot = folder / "screenshot.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={folder / 'chromium-profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
        page.resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB"))


def pixels_of(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 3) -> int:
    return int((np.abs(image.astype(int) - rgb) <= tolerance).all(axis=-1).sum())


def assert_drawn(image: np.ndarray, colours: list[tuple[int, int, int]]) -> None:
    """Not blank: many colours, and each method's own colour drawn somewhere."""
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 200
    for rgb in colours:
        assert pixels_of(image, rgb) >= 40, f"colour {rgb} not drawn"


def self_contained(page: str) -> None:
    """Every picture inlined, nothing fetched: no URL but data URIs (base64 may spell 'http')."""
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    rest = DATA_URI.sub("", page)
    assert "http" not in rest.lower() and "//" not in rest and "url(" not in rest and "<link" not in rest


def cascade(rng: np.random.Generator, layers: list[str], falls: bool) -> SimpleNamespace:
    rhos = [0.2, -0.1, 0.05] if falls else [0.95, 0.9, 0.92]
    rows = [
        SimpleNamespace(layer=name, spearman=np.array([rho]), ssim=np.array([0.5]), spearman_mean=rho)
        for name, rho in zip(layers, rhos, strict=True)
    ]
    return SimpleNamespace(rows=tuple(rows), maps=rng.random((len(layers) + 1, 1, 32, 32)).astype(np.float32))


def made_up_evaluation(steps: int = 4) -> SimpleNamespace:
    """Two methods, three slices, a reference on two of them: what evaluate.evaluate returns."""
    rng = np.random.default_rng(0)
    slices, layers = [3, 4, 5], ["dense", "conv2", "conv1"]
    methods, rows = [], []
    for k, (name, label) in enumerate([("grad_cam", "Grad-CAM"), ("gradient", "Gradient")]):
        falling = np.linspace(0.9, 0.1 + 0.2 * k, steps + 1)
        methods.append(
            SimpleNamespace(
                method=name, label=label, layer="conv2" if k == 0 else "", signed=k == 1,
                parameters={"region": "all"}, deletion=falling + rng.normal(0, 0.02, (3, steps + 1)),
                insertion=falling[::-1] + rng.normal(0, 0.02, (3, steps + 1)),
                cascade=cascade(rng, layers, falls=k == 0),
            )
        )  # fmt: skip
        for z in slices:
            rows.append(
                SimpleNamespace(
                    slice=z, method=name, model_input="slice", score=0.8, deletion_auc=0.3 + 0.1 * k,
                    insertion_auc=0.7, mu_fidelity=0.4, pointing_game=math.nan if z == 5 else 1.0,
                    energy_inside=math.nan if z == 5 else 0.25, seconds=0.01,
                )
            )  # fmt: skip
    return SimpleNamespace(
        slices=slices, target=1, class_name="lesion", key_slice=4, rows=rows, methods=methods,
        card=ModelCard(input_mode="2d", input_shape=(32, 32, 1), class_names=["normal", "lesion"]),
        settings={"steps": steps, "samples": 16, "baseline": 0.0, "pointing_tolerance_mm": 5.0,
                  "insensitive_spearman": 0.5},
        assumptions=[],
    )  # fmt: skip


@pytest.fixture
def written(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"model bytes")
    study = tmp_path / "study.nii.gz"
    study.write_bytes(b"study bytes")
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(b"mask bytes")
    out = tmp_path / "out"
    paths = write_report(
        made_up_evaluation(), out, model_path=model, input_path=study, reference_path=mask, source=study
    )
    return out, paths


def test_csv_has_a_row_per_slice_and_method_with_exact_numbers(tmp_path):
    evaluation = made_up_evaluation()
    evaluation.rows[0].deletion_auc = 0.1 + 0.2  # 0.30000000000000004: written so that it reads back equal
    path = write_csv(evaluation.rows, tmp_path / "table.csv")
    with path.open() as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == COLUMNS and len(table) == 6
    assert float(table[0]["deletion_auc"]) == 0.1 + 0.2
    assert [(row["slice"], row["pointing_game"], row["energy_inside"]) for row in table[:3]] == [
        ("3", "1.0", "0.25"),
        ("4", "1.0", "0.25"),
        ("5", "", ""),  # not defined: empty, never "nan"
    ]


def test_every_output_is_written_with_its_provenance(written):
    out, paths = written
    assert sorted(p.name for p in paths) == sorted(
        [*NAMES.values(), *(f"{name}.provenance.json" for name in NAMES.values())]
    )
    record = json.loads((out / "report.html.provenance.json").read_text())
    assert record["method"] == "evaluate" and record["target"] == 1
    assert sorted(record["outputs"]) == sorted(NAMES.values())
    assert record["parameters"]["methods"]["grad_cam"]["layer"] == "conv2"
    assert record["parameters"]["reference"]["name"] == "mask.nii.gz"
    assert len(record["parameters"]["reference"]["sha256"]) == 64
    with (out / "cascade.csv").open() as handle:
        steps = list(csv.DictReader(handle))
    assert [(s["method"], s["step"], s["layer"]) for s in steps[:3]] == [
        ("grad_cam", "1", "dense"),
        ("grad_cam", "2", "conv2"),
        ("grad_cam", "3", "conv1"),
    ]


def test_the_report_is_one_self_contained_file_with_its_provenance(written):
    out, _ = written
    page = (out / "report.html").read_text(encoding="utf-8")
    self_contained(page)
    inlined = [base64.b64decode(uri.split(",", 1)[1]) for uri in DATA_URI.findall(page)]
    assert inlined == [(out / name).read_bytes() for name in ("deletion.png", "insertion.png", "cascade.png")]
    embedded = re.search(r'<script type="application/json" id="provenance">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1)) == json.loads((out / "report.html.provenance.json").read_text())
    assert "Research use only, not for diagnosis" in page


def test_provenance_cannot_close_its_script_block():
    """A value holding '</script>' stays inside the JSON block (escaped as \\u003c)."""
    record = {"model_path": "/models/a</script><b>x.keras", "parameters": {}}
    pictures = dict.fromkeys(("deletion", "insertion", "cascade"), b"png")
    page = report_html(made_up_evaluation(), pictures, record)
    block = re.search(r'id="provenance">(.*?)</script>', page, re.S).group(1)
    assert json.loads(block) == record


def test_nothing_is_written_into_the_study_s_folder(tmp_path):
    study = tmp_path / "series"
    study.mkdir()
    with pytest.raises(ExportError, match="would overwrite or add to the study"):
        write_report(made_up_evaluation(), study / "out", model_path=None, input_path=study, source=study)


def test_curves_are_drawn_in_each_method_s_colour_with_scores_outside_zero_one():
    evaluation = made_up_evaluation()
    series = [(m.label, m.deletion * 6 - 2) for m in evaluation.methods]  # logits: below 0, above 1
    image = np.asarray(curve_plot("Deletion", series))
    assert image.shape == (360 + 18 * 2, 560, 3)
    assert_drawn(image, [PALETTE[0], PALETTE[1]])


def test_the_cascade_figure_has_a_tile_per_layer_and_the_correlation_curve():
    evaluation = made_up_evaluation()
    image = np.asarray(cascade_figure(evaluation.methods, evaluation.key_slice))
    turbo = {tuple(int(c) for c in rgb) for rgb in colormaps.lookup_table("turbo")}
    tiles = image[64 : 64 + 2 * 102, 130 : 130 + 4 * 102].reshape(-1, 3)
    assert np.mean([tuple(p) in turbo for p in tiles[::97]]) > 0.5  # mostly turbo colours
    assert_drawn(image, [PALETTE[0], PALETTE[1]])


def test_the_report_opens_in_headless_chromium(written, tmp_path):
    out, _ = written
    image = screenshot(out / "report.html", tmp_path)
    assert image.shape == (1600, 1200, 3)
    assert_drawn(image, [PALETTE[0], PALETTE[1]])  # the curves' colours: the inlined plots showed
