"""The window's Quality actions: the Quality dock, File › Open reference mask… (a mask volume or
a DICOM SEG), Measure, Sanity check and Compare methods as worker jobs, their results routed to
the dock, and what was measured handed to the provenance of every export made from the result.
A mixin of MainWindow, which owns the study, the model, the explanation, the relay and the error
reporting it uses.

All quality jobs share one view of the relay: the dock has one progress bar and one Cancel,
and a new request replaces the one running. Measurements belong to the Explanation they were
made from: a new run or a new study starts a clean record.
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QFrame, QInputDialog, QScrollArea

from medvis_desktop import export, imaging
from medvis_desktop.errors import MedvisError

if TYPE_CHECKING:  # these load TensorFlow or pyqtgraph: the window loads them later, on purpose
    from medvis_desktop.evaluate import SliceRun
    from medvis_desktop.explain.runner import Explanation
    from medvis_desktop.gui.quality_panel import QualityPanel
    from medvis_desktop.gui.worker import Compared, CompareJob, Job, Measurement
    from medvis_desktop.metrics import Cascade

QUALITY_VIEW = "quality"
REFERENCE_FILTER = "Reference masks (*.nii *.nii.gz *.nrrd *.mha *.mhd *.dcm);;All files (*)"


@dataclass(frozen=True)
class _Asked:
    """A quality job as the window submitted it: what it measures and how to say so."""

    job: Job
    explanation: Explanation
    caption: str
    reference: dict[str, str] | None  # the reference mask used, for the record


class QualityMenu:
    """The Quality actions of MainWindow (see there for the attributes they use)."""

    def _add_quality_dock(self) -> None:
        """The dock, empty until `_fill_quality_dock`, and a clean record."""
        self._quality: QualityPanel | None = None
        self.quality_dock = self._dock(None, "Quality", Qt.DockWidgetArea.BottomDockWidgetArea)
        self._asked: dict[int, _Asked] = {}
        self._quality_job: int | None = None
        self._quality_of: Explanation | None = None  # the result the record below was measured on
        self._quality_record: dict[str, list[dict[str, object]]] = {}
        self._reference_record: dict[str, str | int | None] | None = None
        self._comparison: dict[str, object] | None = None
        self.result_shown.connect(self._follow_result)

    def _fill_quality_dock(self) -> None:
        """The Quality panel (pyqtgraph) into its dock: part of the window's build_views. It
        scrolls inside the dock: its full height (over 300 px) would otherwise make the window
        grow taller once it is built, past small screens."""
        from medvis_desktop.gui.quality_panel import QualityPanel

        self._quality = QualityPanel()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._quality)
        self.quality_dock.setWidget(scroll)
        self._quality.measure_requested.connect(self.measure)
        self._quality.sanity_requested.connect(self.sanity_check)
        self._quality.cancel_requested.connect(self.cancel_quality)
        self._quality.compare.compare_requested.connect(self.compare_methods)
        self._quality.compare.export_requested.connect(
            lambda: self._export_with_dialog(self.export_comparison, "Comparison of methods", ".png")
        )

    @property
    def quality(self) -> QualityPanel:
        self.build_views()
        return self._quality

    def _add_quality_menu(self) -> None:
        menu = self.menuBar().addMenu("&Quality")
        menu.addAction("&Measure the slice", self.measure)
        menu.addAction("&Sanity check of the slice", self.sanity_check)
        menu.addAction("&Compare methods…", self.show_compare)
        menu.addSeparator()
        menu.addAction("C&lose reference mask", self.close_reference)

    def _connect_quality(self) -> None:
        """Once the relay and TensorFlow are up: job ends, and the methods Compare offers."""
        from medvis_desktop.explain import METHODS

        self.relay.finished.connect(self._quality_finished)
        self.quality.compare.set_methods(
            {name: method.label for name, method in METHODS.items() if method.kind != "features"}
        )

    # --- reference mask --------------------------------------------------------------------

    def _ask_reference(self) -> None:
        folder = self.settings.value(
            "folders/reference", self.settings.value("folders/volume", str(Path.home()))
        )
        path, _ = QFileDialog.getOpenFileName(self, "Open reference mask", folder, REFERENCE_FILTER)
        if not path:
            return
        accepted, segment = self.choose_segment(path)
        if accepted and self.open_reference(path, segment=segment):
            self.settings.setValue("folders/reference", str(Path(path).parent))

    def choose_segment(self, path: Path | str) -> tuple[bool, int | None]:
        """Which segment of a DICOM SEG holding several is the reference (None: all of them), asked
        in a list; (False, None) when the user cancels. Any other file: (True, None), unasked."""
        from medvis_desktop.imaging import dicom_seg

        if not dicom_seg.is_seg(path):
            return True, None
        try:
            found = dicom_seg.segments(path)
        except MedvisError:
            return True, None  # open_reference says why the file cannot be read
        if len(found) < 2:
            return True, None
        choices = ["All segments", *(f"{info.number}: {info.label or 'no label'}" for info in found)]
        question = f"{Path(path).name} holds {len(found)} segments. Use:"
        choice, accepted = QInputDialog.getItem(self, "Reference segment", question, choices, 0, False)
        if not accepted:
            return False, None
        index = choices.index(choice)
        return True, None if index == 0 else found[index - 1].number

    def open_reference(self, path: Path | str, segment: int | None = None) -> bool:
        """A mask on the study's grid (NIfTI, NRRD, MHA; nonzero inside) or a DICOM SEG on its
        slices (`segment`: one of its segments, None: all), outlined on every view and used by the
        pointing game and the energy inside."""
        from medvis_desktop.evaluate import load_reference

        path = Path(path)
        if self.volume is None:
            self.report_error(
                "Cannot open a reference mask", "Open a study first: the mask must lie on its grid"
            )
            return False
        try:
            with self._busy(f"Opening the reference mask {path.name}…"):
                read = imaging.load_isolated if imaging.needs_isolation(path) else imaging.load
                mask = load_reference(path, self.volume, segment=segment, read=read)
        except (MedvisError, OSError) as error:
            self.report_error(f"Could not open the reference mask {path.name}", str(error))
            return False
        name = path.name if segment is None else f"{path.name}, segment {segment}"
        self.viewer.set_reference(mask, f"reference mask {name}")
        self._reference_record = {"path": str(path), "sha256": export.sha256_of(path), "segment": segment}
        inside = mask.any(axis=(1, 2)).nonzero()[0] + 1
        where = f", slices {inside[0]}–{inside[-1]}" if inside.size else ", but it is empty"
        self.statusBar().showMessage(f"Reference mask {name} outlined in magenta{where}", 15000)
        return True

    def close_reference(self) -> None:
        self.viewer.set_reference(None)
        self._reference_record = None

    # --- jobs ------------------------------------------------------------------------------

    def measure(self) -> int | None:
        """Deletion and insertion curves, MuFidelity and, with a reference mask, the pointing
        game and the energy inside, of the result on screen for the slice on screen."""
        from medvis_desktop.gui.worker import MeasureJob

        asked = self._slice_run("Cannot measure the slice")
        if asked is None:
            return None
        explanation, z, run = asked
        reference = None if self.viewer.reference is None else self.viewer.reference[z].copy()
        job = MeasureJob(
            QUALITY_VIEW, self.volume, self.model, run, z, explanation.maps[z].copy(), reference,
            **self.quality.settings(),
        )  # fmt: skip
        return self._submit_quality(job, explanation, f"{explanation.description}, {self._where(run, z)}")

    def sanity_check(self) -> int | None:
        """The randomisation cascade of the result's method on the slice on screen."""
        from medvis_desktop.gui.worker import SanityJob

        asked = self._slice_run("Cannot check the method")
        if asked is None:
            return None
        explanation, z, run = asked
        job = SanityJob(QUALITY_VIEW, self.volume, self.model, run, z)
        caption = f"Sanity check of {explanation.description}, {self._where(run, z)}"
        return self._submit_quality(job, explanation, caption)

    def show_compare(self) -> None:
        """The Compare tab, the result's own method ticked."""
        self._open_quality_dock()
        self.quality.tabs.setCurrentWidget(self.quality.compare)
        if self.explanation is not None and not self.quality.compare.chosen():
            self.quality.compare.choose([self.explanation.method])

    def compare_methods(self, names: list[str]) -> int | None:
        """`names` (2 to 4) on the slice on screen, for the result's class and, where they take
        one, its layer (else the model's last spatial layer), each with its default parameters."""
        from medvis_desktop.evaluate import SliceRun, scored_patches
        from medvis_desktop.explain import METHODS
        from medvis_desktop.gui.compare_view import MAX_METHODS, MIN_METHODS
        from medvis_desktop.gui.worker import CompareJob
        from medvis_desktop.models.layers import default_gradcam_layer

        what = "Cannot compare methods"
        shown = self._shown_slice(what)
        if shown is None:
            return None
        explanation, z = shown
        if not MIN_METHODS <= len(names) <= MAX_METHODS:
            return self._refuse(what, f"Choose {MIN_METHODS} to {MAX_METHODS} methods, not {len(names)}.")
        choices = self.panel.layer_choices()
        runs = []
        try:
            for name in names:
                layer = explanation.layer
                if layer not in choices.get(name, []):
                    layer = default_gradcam_layer(self.model)
                params = METHODS[name].parameters({})
                runs.append(
                    SliceRun.make(
                        explanation.card, name, layer=layer, target=explanation.target, params=params,
                        patches=scored_patches(explanation), extent=explanation.patch_extent,
                        region=str(explanation.parameters.get("region", "all")),
                    )
                )  # fmt: skip
        except MedvisError as error:
            return self._refuse(what, str(error))
        class_name = explanation.card.class_name(explanation.target)
        caption = f"{self._study_name()}, {self._where(runs[0], z)}, class {class_name}"
        self.quality.compare.start(caption, [METHODS[name].label for name in names])
        self.quality.tabs.setCurrentWidget(self.quality.compare)
        self._comparison = {
            "slice": z, "class": class_name, **self.quality.settings(), "score": "output", "methods": [],
        }  # fmt: skip
        job = CompareJob(QUALITY_VIEW, self.volume, self.model, runs, z, **self.quality.settings())
        return self._submit_quality(job, explanation, caption)

    def _scroll_to_comparison(self) -> None:
        """The dock scrolled down to put the maps' row at its top, past the check boxes."""
        scroll = self.quality_dock.widget()
        bar = scroll.verticalScrollBar()
        bar.setValue(bar.value() + self.quality.compare.row.mapTo(scroll.viewport(), QPoint(0, 0)).y())

    def cancel_quality(self) -> None:
        if self.relay is not None:
            self.relay.cancel(QUALITY_VIEW)

    def _shown_slice(self, what: str) -> tuple[Explanation, int] | None:
        """The result on screen and the slice on screen, when that slice has been explained."""
        if not self._ready():
            return None
        explanation, z = self.explanation, self.viewer.cursor[0]
        if explanation is None:
            return self._refuse(
                what, "Run a method first: the quality of its result on this slice is measured."
            )
        if not explanation.computed[z]:
            return self._refuse(what, f"Slice {z + 1} is not explained yet: wait for the run to reach it.")
        return explanation, z

    def _slice_run(self, what: str) -> tuple[Explanation, int, SliceRun] | None:
        """The slice on screen and the method call that made the result's map of it."""
        from medvis_desktop.evaluate import SliceRun

        shown = self._shown_slice(what)
        if shown is None:
            return None
        try:
            return (*shown, SliceRun.of(shown[0]))
        except MedvisError as error:
            return self._refuse(what, str(error))

    def _where(self, run: SliceRun, z: int) -> str:
        """The slice, and for a 3D model or a run in patches the model input it is measured on."""
        if run.card.input_mode != "3d" and run.extent is None:
            return f"slice {z + 1}"
        return f"slice {z + 1} ({run.describe_input(run.input_key(z, self.volume.shape))})"

    def _refuse(self, what: str, message: str) -> None:
        self.quality.show_error(message)
        self.report_error(what, message)

    def _submit_quality(self, job: Job, explanation: Explanation, caption: str) -> int:
        reference = None
        if self.viewer.reference is not None:
            reference = self._reference_record or {"label": self.viewer.reference_label}
        self.quality.set_running(True)
        self._quality_job = self.relay.submit(job)
        self._asked[self._quality_job] = _Asked(job, explanation, caption, reference)
        self._open_quality_dock()
        return self._quality_job

    def _open_quality_dock(self) -> None:
        """Shown, in front, and tall enough for the curves and maps (up to half the window):
        at the bottom docks' first height a result lands out of sight under the controls."""
        self.quality_dock.show()
        self.quality_dock.raise_()
        title = self.quality_dock.height() - self.quality_dock.widget().height()  # and frame
        wanted = min(self.quality.sizeHint().height() + title, self.height() // 2)
        if self.quality_dock.height() < wanted:
            self.resizeDocks([self.quality_dock], [wanted], Qt.Orientation.Vertical)

    # --- results (MainWindow routes them here) ---------------------------------------------

    def _show_progress(self, view: str, done: int, total: int) -> None:
        (self.quality if view == QUALITY_VIEW else self.panel).show_progress(done, total)

    def _show_quality_result(self, job_id: int, result: object) -> bool:
        """Show a quality job's result; False when the result is not one."""
        from medvis_desktop.gui.worker import CompareJob, MeasureJob

        asked = self._asked.get(job_id)
        if asked is None:
            return False
        if isinstance(asked.job, MeasureJob):
            self.quality.show_measurement(asked.caption, result, asked.job.reference is not None)
            self._remember_quality(asked, "measured", _measurement_record(asked, result))
        elif isinstance(asked.job, CompareJob):
            self._show_compared(asked.job, result)
        else:
            self.quality.show_sanity(asked.caption, asked.explanation.label, result)
            self._remember_quality(asked, "sanity", _cascade_record(asked, result))
        self._open_quality_dock()  # again: the result's captions and legends add lines
        return True

    def _show_compared(self, job: CompareJob, compared: Compared) -> None:
        from medvis_desktop.explain import METHODS

        run, measures = job.runs[compared.index], compared.measures
        grey = imaging.to_display(job.volume.voxels[job.slice], self.viewer.window)
        signed = METHODS[run.method].signed
        spacing = job.volume.spacing[1:]
        self.quality.compare.show_method(
            compared.index, grey, spacing, compared.study_map, signed, self.viewer.style, measures
        )
        if compared.index == 0:  # the first map is in: show the row, once it is laid out
            QTimer.singleShot(0, self, self._scroll_to_comparison)
        self._comparison["methods"].append(
            {
                "method": run.method, "label": METHODS[run.method].label,
                "layer": run.arguments.get("layer"), "parameters": dict(run.arguments),
                "deletion_auc": measures.deletion_auc, "insertion_auc": measures.insertion_auc,
                "mu_fidelity": _finite(measures.mu_fidelity), "seconds": measures.seconds,
            }
        )  # fmt: skip

    def _quality_failed(self, job_id: int, message: str) -> bool:
        """Say why a quality job failed; False when the job is not one."""
        if job_id not in self._asked:
            return False
        self.quality.show_error(message)
        self.report_error("The quality measure failed", message)
        return True

    def _quality_finished(self, job_id: int) -> None:
        self._asked.pop(job_id, None)
        if job_id == self._quality_job:
            self._quality_job = None
            self.quality.finish()

    def _follow_result(self, explanation: Explanation) -> None:
        """A new run's result: what was measured belongs to the one before."""
        if self._quality_of is not None and explanation is not self._quality_of:
            self._quality_of, self._quality_record = None, {}
            self.quality.clear()

    def _forget_quality(self) -> None:
        """A new study: no reference mask, nothing measured, no quality job running."""
        self.cancel_quality()
        self._quality_of, self._quality_record = None, {}
        self._reference_record = self._comparison = None
        self.quality.clear()

    def _remember_quality(self, asked: _Asked, kind: str, entry: dict[str, object]) -> None:
        if self._quality_of is not asked.explanation:
            self._quality_of, self._quality_record = asked.explanation, {}
        kept = [old for old in self._quality_record.get(kind, []) if old["slice"] != entry["slice"]]
        self._quality_record[kind] = sorted([*kept, entry], key=lambda item: item["slice"])

    # --- provenance and export -------------------------------------------------------------

    def quality_record(self) -> dict[str, object]:
        """What was measured on the result on screen, for the provenance of its exports."""
        if self._quality_of is None or self._quality_of is not self.explanation:
            return {}
        return {"quality": self._quality_record}

    def export_comparison(self, path: Path | str) -> Path:
        """The Compare row as one PNG, with its own provenance record (every method's numbers)."""
        compare = self.quality.compare
        if not compare.tiles or any(tile.measures is None for tile in compare.tiles):
            raise MedvisError(
                "Nothing to export yet: needs a finished comparison (Quality › Compare methods)"
            )
        path = Path(path)
        with export.atomic_write(path, source=self.volume.source) as temporary:
            if not compare.picture().save(str(temporary), "PNG"):  # Qt says only "no"
                raise OSError(errno.EIO, "the PNG could not be written")
        record = export.Provenance.for_run(
            "compare", model_path=self.model_path, input_path=self.volume.source,
            target=self._comparison["class"], method_label="Comparison of methods",
            parameters=self._comparison,
        )  # fmt: skip
        export.write_provenance(record, path)
        self.statusBar().showMessage(f"Saved {path}", 10000)
        return path

    def _study_name(self) -> str:
        return self.volume.source.name if self.volume.source else "study"


def _measurement_record(asked: _Asked, measurement: Measurement) -> dict[str, object]:
    from medvis_desktop.metrics import TOLERANCE_MM

    job, measures = asked.job, measurement.measures
    return {
        "slice": job.slice, "steps": job.steps, "samples": job.samples, "baseline": job.baseline,
        "score": "output", "deletion_auc": measures.deletion_auc, "insertion_auc": measures.insertion_auc,
        "mu_fidelity": _finite(measures.mu_fidelity), "pointing_game": _finite(measurement.pointing_game),
        "energy_inside": _finite(measurement.energy_inside), "pointing_tolerance_mm": TOLERANCE_MM,
        "reference": asked.reference, "seconds": measures.seconds,
        "deletion_curve": measures.deletion.curve[0].tolist(),
        "insertion_curve": measures.insertion.curve[0].tolist(),
    }  # fmt: skip


def _cascade_record(asked: _Asked, cascade: Cascade) -> dict[str, object]:
    import numpy as np

    from medvis_desktop.metrics import INSENSITIVE_SPEARMAN

    return {
        "slice": asked.job.slice,
        "layers": [row.layer for row in cascade.rows],
        "spearman": [_finite(row.spearman_mean) for row in cascade.rows],
        "ssim": [_finite(float(np.nanmean(row.ssim))) for row in cascade.rows],
        "insensitive": cascade.insensitive(),
        "insensitive_spearman": INSENSITIVE_SPEARMAN,
    }


def _finite(value: float) -> float | None:
    """NaN (not defined) as JSON's null."""
    return None if math.isnan(value) else float(value)
