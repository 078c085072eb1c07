"""What `medvis evaluate` leaves behind: the table, the curves, the cascade figure and one
self-contained HTML report, each with its provenance record.

Pillow draws the plots (no plotting library). The report inlines its pictures as data URIs and
its provenance as JSON, and loads nothing from anywhere else, so it can be mailed or archived
as one file. `evaluation` is an `evaluate.Evaluation`, taken as it comes, so that export stays
below the engine. Nothing identifying the patient is written.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medvis_desktop import colormaps
from medvis_desktop.export.atomic import atomic_write, make_folder
from medvis_desktop.export.images import save_png
from medvis_desktop.export.provenance import Provenance, sha256_of, write_provenance

COLUMNS = (
    "slice", "method", "score", "deletion_auc", "insertion_auc", "mu_fidelity", "pointing_game",
    "energy_inside", "seconds", "model_input",
)  # fmt: skip
# One colour per method, in --methods order (Tableau 10): the plots, the legends and the tables.
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
PAPER, INK, GRID = (255, 255, 255), (30, 30, 30), (222, 222, 222)
TILE = 96
LEGEND_LINE = 18
NAMES = {
    "csv": "evaluation.csv", "cascade_csv": "cascade.csv", "deletion": "deletion.png",
    "insertion": "insertion.png", "cascade": "cascade.png", "html": "report.html",
}  # fmt: skip


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def _cell(value: object) -> str:
    """A CSV cell: floats in full (repr round-trips), NaN empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_csv(rows: Sequence[Any], path: Path, *, source: Path | None = None) -> Path:
    """A row per slice and method, COLUMNS in order; empty where a value is not defined."""
    with atomic_write(path, source=source) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([_cell(getattr(row, name)) for name in COLUMNS] for row in rows)
    return path


def write_cascade_csv(methods: Sequence[Any], path: Path, *, source: Path | None = None) -> Path:
    """Per method and cascade step: the layer re-initialised (with all above it), Spearman, SSIM."""
    with atomic_write(path, source=source) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("method", "step", "layer", "spearman", "ssim"))
        for result in methods:
            for step, row in enumerate(result.cascade.rows, start=1):
                ssim = _cell(float(np.mean(row.ssim)))
                writer.writerow((result.method, step, row.layer, _cell(row.spearman_mean), ssim))
    return path


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _tint(rgb: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(round(c + (255 - c) * amount) for c in rgb)


def _fitted(text: str, width: float, font: ImageFont.ImageFont) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    while text and font.getlength(text) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def _value_range(values: np.ndarray) -> tuple[float, float]:
    """[0, 1] for scores that lie in it, else the data's range with zero in it."""
    finite = values[np.isfinite(values)]
    if not finite.size or (finite.min() >= 0 and finite.max() <= 1):
        return 0.0, 1.0
    low, high = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
    return low, high if high > low else low + 1.0


def _chart(
    image: Image.Image,
    box: tuple[int, int, int, int],
    series: Sequence[tuple[str, tuple[int, int, int], np.ndarray, np.ndarray]],
    *,
    x_ticks: Sequence[tuple[float, str]],
    y_range: tuple[float, float],
    x_label: str,
    y_label: str,
) -> None:
    """Axes in `box` (left, top, right, bottom of the plotting area) with each series
    (legend, colour, x (K,), y (N, K)): N thin tinted lines and their mean drawn thick."""
    draw = ImageDraw.Draw(image)
    font = _font(12)
    left, top, right, bottom = box
    x_low, x_high = min(x for x, _ in x_ticks), max(x for x, _ in x_ticks)
    y_low, y_high = y_range

    def at(x: float, y: float) -> tuple[float, float]:
        u = (x - x_low) / ((x_high - x_low) or 1.0)
        v = (y - y_low) / (y_high - y_low)
        return left + u * (right - left), bottom - v * (bottom - top)

    for k in range(5):
        y = y_low + k * (y_high - y_low) / 4
        _, row = at(x_low, y)
        draw.line([(left, row), (right, row)], fill=GRID, width=1)
        draw.text((left - 6, row), f"{y:.3g}", fill=INK, font=font, anchor="rm")
    for x, label in x_ticks:
        column, _ = at(x, y_low)
        draw.line([(column, bottom), (column, bottom + 4)], fill=INK, width=1)
        draw.text((column, bottom + 6), label, fill=INK, font=font, anchor="ma")
    draw.rectangle([left, top, right, bottom], outline=INK, width=1)
    draw.text(((left + right) / 2, bottom + 24), x_label, fill=INK, font=font, anchor="ma")
    draw.text((left, top - 6), y_label, fill=INK, font=font, anchor="ld")
    for _, rgb, xs, ys in series:
        for line in ys if len(ys) > 1 else []:
            if np.isfinite(line).all():
                draw.line([at(x, y) for x, y in zip(xs, line, strict=True)], fill=_tint(rgb, 0.6), width=1)
    for _, rgb, xs, ys in series:
        mean = np.nanmean(ys, axis=0) if np.isfinite(ys).any() else ys[0]
        points = [at(x, y) for x, y in zip(xs, mean, strict=True) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=rgb, width=3, joint="curve")
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=rgb)
    legend_top = bottom + 46  # below the axes, one method a line: never over a curve
    for text, rgb, _, _ in series:
        draw.line([(left, legend_top + 7), (left + 24, legend_top + 7)], fill=rgb, width=4)
        draw.text((left + 32, legend_top), text, fill=INK, font=font)
        legend_top += LEGEND_LINE


def curve_plot(title: str, series: Sequence[tuple[str, np.ndarray]], *, width: int = 560) -> Image.Image:
    """Deletion or insertion: per method (legend, curves (slices, steps + 1)), the score against
    the fraction of voxels moved; each slice thin, the mean over slices thick."""
    image = Image.new("RGB", (width, 360 + LEGEND_LINE * len(series)), PAPER)
    ImageDraw.Draw(image).text((16, 12), title, fill=INK, font=_font(15))
    values = np.concatenate([np.ravel(curves) for _, curves in series]) if series else np.zeros(1)
    lined = [
        (label, colour(k), np.linspace(0.0, 1.0, curves.shape[1]), np.asarray(curves, dtype=np.float64))
        for k, (label, curves) in enumerate(series)
    ]
    ticks = [(f, f"{f:g}") for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    _chart(
        image, (70, 64, width - 20, 310), lined, x_ticks=ticks, y_range=_value_range(values),
        x_label="fraction of the voxels moved, highest-ranked first", y_label="model output for the class",
    )  # fmt: skip
    return image


def _coloured(map_2d: np.ndarray) -> Image.Image:
    """A map min-max scaled on its own, resized to a tile, coloured with turbo (constant: its lowest)."""
    values = np.nan_to_num(np.asarray(map_2d, dtype=np.float32))
    span = values.max() - values.min()
    unit = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    tile = np.asarray(
        Image.fromarray(unit.astype(np.float32)).resize((TILE, TILE), Image.Resampling.BILINEAR)
    )
    index = np.clip(np.round(tile * (colormaps.SIZE - 1)), 0, colormaps.SIZE - 1).astype(np.intp)
    return Image.fromarray(np.ascontiguousarray(colormaps.lookup_table("turbo")[index]))


def cascade_figure(methods: Sequence[Any], key_slice: int) -> Image.Image:
    """Top, a grid: a row per method, its key-slice map with the original weights, then with one
    more layer re-initialised per column, from the output down. Below, the rank correlation with
    the original map at each step: a method that passes the sanity check falls towards 0."""
    layers = [row.layer for row in methods[0].cascade.rows] if methods else []
    font, gap, label_width, grid_top, columns = _font(12), 6, 130, 64, len(layers) + 1
    width = max(label_width + columns * (TILE + gap) + 20, 640)
    chart_top = grid_top + len(methods) * (TILE + gap) + 60
    image = Image.new("RGB", (width, chart_top + 320 + LEGEND_LINE * len(methods)), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((16, 12), f"Randomisation cascade on slice {key_slice}", fill=INK, font=_font(15))
    for c, name in enumerate(["original", *layers]):
        centre = label_width + c * (TILE + gap) + TILE / 2
        draw.text((centre, grid_top - 6), _fitted(name, TILE, font), fill=INK, font=font, anchor="md")
    for r, result in enumerate(methods):
        top = grid_top + r * (TILE + gap)
        label = _fitted(result.label, label_width - 16, font)
        draw.text((10, top + TILE / 2), label, fill=colour(r), font=font, anchor="lm")
        for c, map_2d in enumerate(result.cascade.maps[:, 0]):
            image.paste(_coloured(map_2d), (label_width + c * (TILE + gap), top))
    series = [
        (result.label, colour(r), np.arange(columns, dtype=np.float64),
         np.array([[1.0, *(row.spearman_mean for row in result.cascade.rows)]]))
        for r, result in enumerate(methods)
    ]  # fmt: skip
    ticks = [(float(c), str(c)) for c in range(columns)] if columns > 1 else [(0.0, "0"), (1.0, "1")]
    _chart(
        image, (70, chart_top, width - 20, chart_top + 260), series, x_ticks=ticks, y_range=(-1.0, 1.0),
        x_label="layers re-initialised, from the output down (0: the trained model)",
        y_label="Spearman rank correlation with the original map",
    )  # fmt: skip
    return image


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _span(slices: Sequence[int]) -> str:
    """'4–7' for a run of slices, else each one."""
    if list(slices) == list(range(slices[0], slices[0] + len(slices))):
        return f"{slices[0]}–{slices[-1]}"
    return ", ".join(map(str, slices))


def _values(row: Any) -> list[float]:
    """score to energy_inside: the columns shown as numbers."""
    return [getattr(row, name) for name in COLUMNS[2:8]]


def _ssim(step: Any) -> str:
    return _number(float(np.mean(step.ssim)))


def _number(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of cells already escaped, under `header` (none when empty)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


STYLE = """
body{font-family:sans-serif;margin:24px;color:#1e1e1e;background:#fff;max-width:1150px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:6px 0}
.facts td{text-align:left}.curves{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#8a1c1c;font-weight:bold}.help{font-size:13px;color:#444;max-width:900px}
pre{font-size:11px;background:#f7f7f7;padding:8px;overflow-x:auto}
"""


def report_html(evaluation: Any, pictures: dict[str, bytes], record: dict[str, Any]) -> str:
    """One HTML page: facts, a summary per method, the pictures, the table per slice, provenance."""
    methods = evaluation.methods
    rows_of = {m.method: [r for r in evaluation.rows if r.method == m.method] for m in methods}
    settings = evaluation.settings
    reference = record["parameters"].get("reference", {})
    segment = "" if reference.get("segment") is None else f", segment {reference['segment']}"
    facts = [
        ("Model", Path(str(record.get("model_path") or "")).name),
        ("Study", Path(str(record.get("input_path") or "")).name),
        ("Slices", f"{len(evaluation.slices)}: {_span(evaluation.slices)} (0 = the first)"),
        ("Class explained", f"{evaluation.class_name} (output {evaluation.target})"),
        ("Reference", f"{reference.get('name') or 'none'}{segment}"),
        ("Metrics", f"{settings['steps']} deletion/insertion steps, {settings['samples']} MuFidelity "
                    f"samples, baseline {settings['baseline']}, score: the model's output"),
        ("Made", f"medvis {record.get('medvis_version')}, {record.get('created')}"),
    ]  # fmt: skip
    summary = []
    for k, result in enumerate(methods):
        rows = rows_of[result.method]
        spearman = result.cascade.rows[-1].spearman_mean if result.cascade.rows else math.nan
        swatch = f'<span style="color:rgb{colour(k)}">■</span> {html.escape(result.label)}'
        means = [_number(_mean([getattr(r, name) for r in rows])) for name in COLUMNS[3:8]]
        seconds = f"{_mean([r.seconds for r in rows]):.3f}"
        summary.append([swatch, html.escape(result.layer or "–"), *means, seconds, _number(spearman)])
    per_slice = [
        [str(r.slice), html.escape(r.method), *map(_number, _values(r)), f"{r.seconds:.3f}", r.model_input]
        for r in evaluation.rows
    ]
    cascade_rows = [
        [html.escape(m.label), str(step), html.escape(row.layer), _number(row.spearman_mean), _ssim(row)]
        for m in methods
        for step, row in enumerate(m.cascade.rows, start=1)
    ]
    curves = "".join(
        f'<img src="{data_uri(pictures[name])}" alt="{name} curves">' for name in ("deletion", "insertion")
    )
    cascade = data_uri(pictures["cascade"])
    payload = json.dumps(record, indent=2, default=str)
    embedded = payload.replace("<", "\\u003c")  # no "</script>" can end the block early
    summary_header = (
        "method", "layer", "deletion AUC ↓", "insertion AUC ↑", "MuFidelity ↑", "pointing game ↑",
        "energy inside ↑", "seconds per slice", "cascade ρ at the last layer ↓",
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>medvis evaluation</title><style>{STYLE}</style></head>
<body>
<h1>Evaluation of {html.escape(", ".join(m.label for m in methods))}</h1>
<p class="note">Research use only, not for diagnosis.</p>
<div class="facts">{_table((), [(html.escape(k), html.escape(v)) for k, v in facts])}</div>
<h2>Summary: mean over the slices</h2>
{_table(summary_header, summary)}
<p class="help">Deletion: the model's output as the voxels the map ranks highest are set to the baseline
(a lower area means the map found what the model uses); insertion: as they are revealed from it (higher is
better). MuFidelity: rank correlation between the map's sum over random cells and the output's drop when
they are removed. Pointing game: the map's maximum lies within {settings["pointing_tolerance_mm"]:g} mm of the
reference mask; energy inside: the share of the map's positive mass inside it (empty without a reference, or
where the mask is empty on the slice). Cascade: rank correlation with the original map
once every layer is re-initialised; maps that stay alike (ρ ≥ {settings["insensitive_spearman"]:g}) do not
depend on what the model learnt.</p>
<h2>Deletion and insertion</h2>
<div class="curves">{curves}</div>
<h2>Randomisation cascade</h2>
<img src="{cascade}" alt="randomisation cascade">
{_table(("method", "step", "layer re-initialised", "Spearman ρ", "SSIM"), cascade_rows)}
<h2>Per slice</h2>
{_table(("slice", "method", "score", *COLUMNS[3:8], "seconds", "model input"), per_slice)}
<h2>Provenance</h2>
<pre>{html.escape(payload)}</pre>
<script type="application/json" id="provenance">{embedded}</script>
</body></html>
"""


def write_report(
    evaluation: Any,
    out: Path,
    *,
    model_path: Path | None,
    input_path: Path | None,
    reference_path: Path | None = None,
    reference_segment: int | None = None,
    source: Path | None = None,
) -> list[Path]:
    """Every output in `out` (never inside `source`, the study), each with its provenance record.
    `reference_segment`: the segment of a DICOM SEG reference that was used (None: all, or not a SEG)."""
    make_folder(out, source=source)
    methods = evaluation.methods
    record = Provenance.for_run(
        "evaluate",
        model_path=model_path,
        input_path=input_path,
        target=evaluation.target,
        method_label="Evaluation: " + ", ".join(m.label for m in methods),
        parameters={
            "methods": {m.method: {"label": m.label, "layer": m.layer, **m.parameters} for m in methods},
            "slices": list(evaluation.slices),
            "key_slice": evaluation.key_slice,
            **evaluation.settings,
            "reference": {
                "name": None if reference_path is None else Path(reference_path).name,
                "sha256": None if reference_path is None else sha256_of(reference_path),
                "segment": reference_segment,
            },
            "card": asdict(evaluation.card),
            "assumptions": list(evaluation.assumptions),
        },
    )
    record.outputs = list(NAMES.values())
    written = [write_csv(evaluation.rows, out / NAMES["csv"], source=source)]
    written.append(write_cascade_csv(methods, out / NAMES["cascade_csv"], source=source))
    steps = evaluation.settings["steps"]

    def legend(result: Any, name: str) -> str:
        auc = _mean([getattr(r, f"{name}_auc") for r in evaluation.rows if r.method == result.method])
        return f"{result.label}  AUC {auc:.3f}"

    figures = {
        name: curve_plot(f"{name.title()} ({steps} steps): {better} area is better", [
            (legend(m, name), getattr(m, name)) for m in methods
        ])
        for name, better in (("deletion", "lower"), ("insertion", "higher"))
    }  # fmt: skip
    figures["cascade"] = cascade_figure(methods, evaluation.key_slice)
    pictures = {}
    for name, figure in figures.items():
        written.append(save_png(figure, out / NAMES[name], source=source))
        pictures[name] = written[-1].read_bytes()
    page = report_html(evaluation, pictures, asdict(record))
    with atomic_write(out / NAMES["html"], source=source) as temporary:
        temporary.write_text(page, encoding="utf-8")
    written.append(out / NAMES["html"])
    return written + [write_provenance(record, path) for path in written]
