"""The window's exports: screenshot, triptych, heat map volume and feature maps, each with its
provenance record, and the copy of the view. A mixin of MainWindow, whose study, explanation,
viewer, score track and settings it uses. Figures are drawn at the size and interpolation the
user chose (File > Export > Figure size, kept in the settings under "figure/") by gui/figure.py,
which imports pyqtgraph: it is imported on first use, after the window's first paint."""

from __future__ import annotations

import errno
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu

from medvis_desktop import export, imaging
from medvis_desktop.errors import MedvisError
from medvis_desktop.export.style import LONG_SIDE

if TYPE_CHECKING:
    from PIL import Image

    from medvis_desktop.gui.figure import Figure, FigureOptions, ScoreStrip

PATIENT_KEYS = ("PatientName", "PatientID")
FIGURE_SIZES = (
    ("Long side 1,500 px", LONG_SIDE),
    ("Long side 3,000 px", 3000),
    ("Native (1 px per voxel)", 0),
)


class ExportActions:
    """The export actions of MainWindow (see there for the attributes they use)."""

    def legend(self) -> list[str]:
        """What a figure shows, in words; patient name and ID only when the user asked."""
        from medvis_desktop.imaging.orientation import planar_view

        lines = []
        if self.explanation is not None:
            lines.append(self.explanation.description or self.explanation.method)
        if self.volume is not None:
            name = self.volume.source.name if self.volume.source else "study"
            slice_text = (
                planar_view(self.volume) or f"slice {self.viewer.cursor[0] + 1}/{self.volume.shape[0]}"
            )
            lines.append(f"{name}, {slice_text}, window {self.viewer.window.name}")
        if self.model_path is not None:
            lines.append(f"model {self.model_path.name}")
        if self.viewer.reference is not None:
            lines.append(f"magenta outline: {self.viewer.reference_label}")
        if self.include_patient.isChecked() and self.volume is not None:
            lines.append(
                "  ".join(f"{k}: {self.volume.meta[k]}" for k in PATIENT_KEYS if k in self.volume.meta)
            )
        return lines

    def figure_options(self) -> FigureOptions:
        """The figure size and interpolation the user chose (defaults: FigureOptions; a stray
        size in the settings file falls back to the default)."""
        from medvis_desktop.gui.figure import FigureOptions

        try:
            long_side = int(self.settings.value("figure/long_side", FigureOptions.long_side))
        except (TypeError, ValueError):
            long_side = FigureOptions.long_side
        return FigureOptions(
            long_side=max(long_side, 0),
            smooth=self.settings.value("figure/smooth", FigureOptions.smooth, type=bool),
        )

    def view_figure(self, *, all_views: bool = False, options: FigureOptions | None = None) -> Figure:
        """The active view (or the three sections side by side) with the legend and the score
        along the study, at `options` (default: the user's choice)."""
        self._require(self.volume, "a study")
        return self.viewer.snapshot(
            self.legend(),
            all_views=all_views,
            options=options or self.figure_options(),
            scores=self._score_strip(),
        )

    def export_screenshot(
        self, path: Path | str, *, all_views: bool = False, options: FigureOptions | None = None
    ) -> Path:
        """The view's figure (view_figure) as a PNG that records its pixel size."""
        path = Path(path)
        shot = self.view_figure(all_views=all_views, options=options).image
        with export.atomic_write(path, source=self.volume.source) as temporary:
            if not shot.save(str(temporary), "PNG"):  # Qt says only "no"; atomic_write says why
                raise OSError(errno.EIO, "the PNG could not be written")
        self._write_provenance(path)
        return path

    def copy_view(self) -> None:
        """The screenshot's figure onto the clipboard, to paste into a report or a slide."""
        try:
            shot = self.view_figure().image
        except MedvisError as error:
            self.report_error("Copy view failed", str(error))
            return
        QGuiApplication.clipboard().setImage(shot)
        self.statusBar().showMessage(f"Copied the view ({shot.width()}×{shot.height()} px)", 10000)

    def _score_strip(self) -> ScoreStrip | None:
        """The score along the study as the score track shows it; None without scores."""
        import numpy as np

        from medvis_desktop.gui.figure import ScoreStrip

        if self.explanation is None:
            return None
        scores = self.explanation.slice_scores()
        if not np.isfinite(scores).any():
            return None
        what = self.explanation.class_name or ""
        return ScoreStrip(scores, self.track.threshold, self.viewer.cursor[0], what)

    def triptych_figure(self) -> Image.Image:
        """Image | heat map | overlay of the slice on screen, laid out as the axial view shows
        it, with the legend, at the user's figure size."""
        from medvis_desktop.export.images import axial_layout

        self._require(self.explanation, "an explanation")
        z, volume, options = self.viewer.cursor[0], self.volume, self.figure_options()
        return export.triptych(
            imaging.to_display(volume.voxels[z], self.viewer.window),
            self.explanation.maps[z],
            scale=self.viewer.scale,
            legend=self.legend(),
            long_side=options.long_side,
            smooth=options.smooth,
            **axial_layout(volume),
        )

    def export_triptych(self, path: Path | str) -> Path:
        figure = self.triptych_figure()
        return self._write_provenance(export.save_png(figure, path, source=self.volume.source))

    def export_heatmap(self, path: Path | str) -> Path:
        self._require(self.explanation, "an explanation")
        return self._write_provenance(export.save_heatmap(self.volume, self.explanation.maps, path))

    def export_activations(self, path: Path | str) -> Path:
        mosaic = self.activations.mosaic
        self._require(mosaic, "feature maps (run Activation maps)")
        figure = export.activation_grid(
            mosaic.maps, mosaic.dead, legend=[f"{mosaic.layer}, slice {mosaic.slice + 1}"]
        )
        saved = export.save_png(figure, path, source=self.volume.source)
        return self._write_provenance(saved, layer=mosaic.layer)

    def _write_provenance(self, path: Path, layer: str | None = None) -> Path:
        export.write_provenance(self.provenance(layer), path)
        self.statusBar().showMessage(f"Saved {path}", 10000)
        return path

    def provenance(self, layer: str | None = None) -> export.Provenance:
        """How what is on screen was made: model, input, method, view settings."""
        e = self.explanation
        return export.Provenance.for_run(
            e.method if e is not None else "view",
            model_path=self.model_path,
            input_path=self.volume.source if self.volume is not None else None,
            layer=layer or (e.layer if e is not None else None),
            target=e.class_name if e is not None else None,
            method_label=e.label if e is not None else None,
            parameters={
                "slice": self.viewer.cursor[0],
                "window": [self.viewer.window.center, self.viewer.window.width],
                "overlay": asdict(self.viewer.style),
                "filter": e.filter if e is not None else None,
                **(e.parameters if e is not None else {}),
                **self.quality_record(),  # what was measured on this result (quality_menu.py)
            },
        )

    def _add_figure_menu(self, menu: QMenu, before: QAction) -> None:
        """Figure size, inserted into `menu` before `before`: the long side of the exported
        images (or native) and the interpolation, kept in the settings; screenshots, the copy of
        the view and triptychs follow it."""
        sizes = QMenu("Figure size", menu)
        menu.insertMenu(before, sizes)
        chosen = self.figure_options()
        group = QActionGroup(sizes)
        for label, long_side in FIGURE_SIZES:
            action = sizes.addAction(label, self._make_figure_size(long_side))
            action.setCheckable(True)
            action.setChecked(long_side == chosen.long_side)
            group.addAction(action)
        sizes.addSeparator()
        smooth = sizes.addAction("Smooth interpolation")
        smooth.setCheckable(True)
        smooth.setChecked(chosen.smooth)
        smooth.toggled.connect(self._set_smooth_figures)

    def _make_figure_size(self, long_side: int):
        return lambda: self.settings.setValue("figure/long_side", long_side)

    def _set_smooth_figures(self, smooth: bool) -> None:
        self.settings.setValue("figure/smooth", smooth)

    @staticmethod
    def _require(value: object, what: str) -> None:
        if value is None:
            raise MedvisError(f"Nothing to export yet: needs {what}")

    def _export_with_dialog(self, exporter, title: str, suffix: str) -> None:
        folder = self.settings.value("folders/export", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(
            self, title, str(Path(folder) / f"medvis{suffix}"), f"*{suffix}"
        )
        if not path:
            return
        try:
            exporter(path)
        except (MedvisError, OSError, ValueError) as error:
            self.report_error(f"{title} failed", str(error))
            return
        self.settings.setValue("folders/export", str(Path(path).parent))
