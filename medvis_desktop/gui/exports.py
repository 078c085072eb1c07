"""The window's exports: screenshot, triptych, heat map volume and feature maps, each with its
provenance record. A mixin of MainWindow, whose study, explanation, viewer and settings it uses."""

from __future__ import annotations

import errno
from dataclasses import asdict
from pathlib import Path

from PIL import Image
from PySide6.QtWidgets import QFileDialog

from medvis_desktop import export, imaging
from medvis_desktop.errors import MedvisError

PATIENT_KEYS = ("PatientName", "PatientID")


class ExportActions:
    """The export actions of MainWindow (see there for the attributes they use)."""

    def legend(self) -> list[str]:
        """What a figure shows, in words; patient name and ID only when the user asked."""
        lines = []
        if self.explanation is not None:
            lines.append(self.explanation.description or self.explanation.method)
        if self.volume is not None:
            name = self.volume.source.name if self.volume.source else "study"
            slice_text = f"slice {self.viewer.cursor[0] + 1}/{self.volume.shape[0]}"
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

    def export_screenshot(self, path: Path | str, *, all_views: bool = False) -> Path:
        """The active view, or the three sections side by side, with the legend."""
        path = Path(path)
        self._require(self.volume, "a study")
        shot = self.viewer.snapshot(self.legend(), all_views=all_views)
        with export.atomic_write(path, source=self.volume.source) as temporary:
            if not shot.save(str(temporary), "PNG"):  # Qt says only "no"; atomic_write says why
                raise OSError(errno.EIO, "the PNG could not be written")
        self._write_provenance(path)
        return path

    def triptych_figure(self) -> Image.Image:
        """Image | heat map | overlay of the slice on screen, with the legend."""
        self._require(self.explanation, "an explanation")
        z = self.viewer.cursor[0]
        return export.triptych(
            imaging.to_display(self.volume.voxels[z], self.viewer.window),
            self.explanation.maps[z],
            scale=self.viewer.scale,
            spacing_yx=self.volume.spacing[1:],
            legend=self.legend(),
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
