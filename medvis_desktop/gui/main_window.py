"""The main window: layer tree | slice viewer (or feature maps) | method panel, status bar.

Keras and TensorFlow modules are imported inside the methods that need them, never at the top
of this module: the window must be showing before TensorFlow loads (DESIGN.md, Threads), and
`start_backend` is what loads it, once, on the main thread.

The views drawn with pyqtgraph (slice viewer, feature maps, score track, Quality panel) wait for
the first paint too: importing pyqtgraph and building them takes half a second (issue #14).
`build_views` builds them once, called by the app right after that paint, or by the first use
of `viewer`, `activations`, `track` or `quality` (code and tests use them at once, as before).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from medvis_desktop.dicomnet import DicomNetError
from medvis_desktop.errors import MedvisError
from medvis_desktop.export import OverlayStyle
from medvis_desktop.export.style import SCALES, SIGNS
from medvis_desktop.gui.exports import ExportActions
from medvis_desktop.gui.method_panel import MethodPanel, scrolled
from medvis_desktop.gui.model_tree import ModelTree
from medvis_desktop.gui.pacs_menu import PacsMenu
from medvis_desktop.gui.pacs_network import DicomNetwork
from medvis_desktop.gui.quality_menu import QualityMenu
from medvis_desktop.gui.start_page import StartPage
from medvis_desktop.gui.study_loader import StudyLoading

if TYPE_CHECKING:
    from medvis_desktop.gui.about_dialog import AboutDialog
    from medvis_desktop.gui.activation_view import ActivationView
    from medvis_desktop.gui.score_track import ScoreTrack
    from medvis_desktop.gui.slice_viewer import SliceViewer
    from medvis_desktop.imaging import Volume

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
VOLUME_FILTER = (
    "Studies (*.dcm *.nii *.nii.gz *.mha *.mhd *.nrrd *.inv3 *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)"
)
BOTTOM_DOCK_HEIGHT = 220  # px: the score track and the Quality dock leave the views most of the height
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5)"
RECENT_COUNT = 10
UNITS = {"CT": "HU"}
SLICES_VIEW, MOSAIC_VIEW = "slices", "mosaic"
# Scrolling on the feature-map tab asks for the new slice's maps once the wheel rests.
MOSAIC_DELAY_MS = 150
TREE_WIDTH = 380  # px at first: wide enough for the output shapes and parameter counts


class MainWindow(ExportActions, PacsMenu, QualityMenu, StudyLoading, QMainWindow):
    """`interactive=False` (scripted runs) never opens a dialog that waits for an answer: errors
    are only signalled."""

    result_shown = Signal(object)  # the Explanation now on screen (grows as slices come in)
    error_reported = Signal(str)

    def __init__(
        self, settings: QSettings, *, interactive: bool = True, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.interactive = interactive
        self.setWindowTitle("medvis")
        self.setAcceptDrops(True)
        self.volume: Volume | None = None
        self.model = None  # keras.Model
        self.model_path: Path | None = None
        self.card = None  # ModelCard
        self.relay = None  # worker.Relay, made by start_backend
        self.explanation = None
        self.last_error = ""
        self._job_id: int | None = None
        self._method_labels: dict[str, str] = {}
        self.about_dialog: AboutDialog | None = None

        self._viewer: SliceViewer | None = None  # these three (and the Quality panel): build_views
        self._activations: ActivationView | None = None
        self._track: ScoreTrack | None = None
        self.start_page = StartPage()
        self.slices_page = QStackedWidget()  # the start page until a study is open, then the viewer
        self.slices_page.addWidget(self.start_page)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.slices_page, "Slices")
        self.setCentralWidget(self.tabs)
        self.tree = ModelTree()
        self.panel = MethodPanel()
        tree_dock = self._dock(self.tree, "Model layers", Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock(scrolled(self.panel), "Method", Qt.DockWidgetArea.RightDockWidgetArea)
        self.track_dock = self._dock(None, "Score along the study", Qt.DockWidgetArea.BottomDockWidgetArea)
        self._add_quality_dock()
        self.tabifyDockWidget(self.track_dock, self.quality_dock)  # one strip under the views, two tabs
        self.track_dock.raise_()
        self.resizeDocks([self.track_dock], [BOTTOM_DOCK_HEIGHT], Qt.Orientation.Vertical)
        self.resizeDocks([tree_dock], [TREE_WIDTH], Qt.Orientation.Horizontal)
        self.status = {name: QLabel() for name in ("device", "model", "volume", "slice", "position")}
        for label in self.status.values():
            self.statusBar().addPermanentWidget(label)
        self.status["device"].setText("TensorFlow: starting…")
        self._mosaic_timer = QTimer(self, singleShot=True, interval=MOSAIC_DELAY_MS)
        self._mosaic_timer.timeout.connect(self._mosaic_for_cursor)
        self._mosaic_asked: tuple[str, int] | None = None  # (layer, slice) of the last mosaic job
        self.dicom = DicomNetwork(settings, self)
        self.query_dialog: QDialog | None = None
        self.received_dialog: QDialog | None = None
        self._build_menus()
        self._connect()
        self._restore_settings()
        try:
            self.dicom.start()  # the receiver, if the user turned it on
        except DicomNetError as error:
            self.report_error("The DICOM receiver is off", str(error))

    # --- start-up --------------------------------------------------------------------------

    def build_views(self) -> None:
        """The slice viewer, the feature maps, the score track and the Quality panel, with the
        menu entries that act on them; once (see the module's docstring for when)."""
        if self._viewer is not None:
            return
        from medvis_desktop.gui.activation_view import ActivationView
        from medvis_desktop.gui.score_track import ScoreTrack
        from medvis_desktop.gui.slice_viewer import SliceViewer

        self._viewer, self._activations, self._track = SliceViewer(), ActivationView(), ScoreTrack()
        self._viewer.set_style(self.panel.style)
        self.slices_page.addWidget(self._viewer)
        self.tabs.addTab(self._activations, "Feature maps")
        self.track_dock.setWidget(self._track)
        self._fill_quality_dock()
        self._fill_view_menu()
        self._add_figure_menu(self.export_menu, before=self.include_patient)
        self.panel.style_changed.connect(self._viewer.set_style)
        self.panel.overlay_toggled.connect(self._viewer.set_overlay_visible)
        self._viewer.cursor_changed.connect(self._show_cursor)
        self._viewer.hovered.connect(self._show_hover)
        self._track.slice_chosen.connect(self._viewer.set_slice)
        self._activations.deconvolve_requested.connect(self._deconvolve_filter)

    @property
    def viewer(self) -> SliceViewer:
        self.build_views()
        return self._viewer

    @property
    def activations(self) -> ActivationView:
        self.build_views()
        return self._activations

    @property
    def track(self) -> ScoreTrack:
        self.build_views()
        return self._track

    def start_backend(self) -> None:
        """Load TensorFlow (seconds) and start the worker thread; call once the window shows."""
        from medvis_desktop.explain import METHODS
        from medvis_desktop.gui.worker import Relay
        from medvis_desktop.models.runtime import start_tensorflow

        with self._busy("Starting TensorFlow…"):
            device = start_tensorflow()
        self.status["device"].setText(str(device))
        self.relay = Relay(self)
        self.relay.view_progress.connect(self._show_progress)
        self._connect_quality()
        self.relay.result.connect(self._show_result)
        self.relay.failed.connect(self._job_failed)
        self.relay.finished.connect(self._job_finished)
        self._method_labels = {name: method.label for name, method in METHODS.items()}
        self.panel.set_methods(METHODS)
        from medvis_desktop.demo.cases import CASES

        for name, case in CASES.items():
            self.demo_menu.addAction(case.title, self._make_demo(name))
        self.start_page.set_demos({name: case.title for name, case in CASES.items()})

    # --- opening ---------------------------------------------------------------------------

    def open_path(self, path: Path | str) -> bool:
        """A model by its suffix, anything else as a study."""
        path = Path(path)
        if path.name.lower().endswith(MODEL_SUFFIXES):
            return self.open_model(path)
        return self.open_volume(path)

    def show_volume(self, volume: Volume, name: str) -> None:
        self.stop_loading()
        self._cancel_jobs()
        self.volume = volume
        self.explanation = None
        self.panel.set_signed(False)
        self.track.set_track(None)
        self.viewer.set_volume(volume)
        self.slices_page.setCurrentWidget(self.viewer)
        self._forget_quality()
        self._rebuild_window_menu()
        z, y, x = volume.shape
        self.status["volume"].setText(f"{name}: {volume.modality} {z}×{y}×{x}")
        self._tell_panel_the_study()
        self.statusBar().showMessage("; ".join(volume.warnings), 10000)

    def open_demo(self, name: str) -> bool:
        """A built-in case: its volume, its model and card, the method set up on a lesion slice."""
        from medvis_desktop.demo.cases import load_case

        try:
            with self._busy(f"Preparing the demo case '{name}'…"):
                volume, mask, model_path, case = load_case(name)
        except MedvisError as error:
            self.report_error(f"Could not open the demo '{name}'", str(error))
            return False
        self.show_volume(volume, f"demo {name}")
        if not self.open_model(model_path):
            return False
        self.viewer.set_reference(mask, "the inserted lesions' true extent")
        self.viewer.set_slice(case.first_slice)
        self.statusBar().showMessage(
            "Demo: the magenta outline is the inserted lesions' true extent, in slices the model never saw",
            20000,
        )
        self.panel.select(method=case.method, layer=case.layer, target=case.target, region=case.region)
        self.setWindowTitle(f"medvis: {case.title}")
        return True

    def open_model(self, path: Path | str, *, unsafe: bool = False) -> bool:
        from medvis_desktop import explain, models
        from medvis_desktop.models.layers import layer_tree

        path = Path(path)
        try:
            with self._busy(f"Opening the model {path.name}…"):
                model = models.load_model(path, unsafe=unsafe)
            card = self._card_for(model, path)
        except models.UnsafeModelError as error:
            if self.interactive and self._confirm_unsafe(str(error)):
                return self.open_model(path, unsafe=True)
            self.report_error(f"Refused to open {path.name}", str(error))
            return False
        except (MedvisError, OSError) as error:
            self.report_error(f"Could not open the model {path.name}", str(error))
            return False
        if card is None:
            return False
        self._cancel_jobs()
        self.model, self.model_path, self.card = model, path, card
        predicates = {name: method.can_target for name, method in explain.METHODS.items()}
        self.tree.set_layers(layer_tree(model, predicates), self._method_labels)
        self.panel.set_model(
            {name: explain.target_layers(model, name) for name in predicates},
            card.class_names,
            segmentation=card.task == "segmentation",
        )
        classes = f"{len(card.class_names)} class{'es' * (len(card.class_names) != 1)}"
        self.status["model"].setText(f"{path.name} ({card.input_mode}, {classes})")
        self._remember(path, "model")
        self._tell_panel_the_study()
        return True

    def _tell_panel_the_study(self) -> None:
        """What the method panel needs to show a method's cost and ask for sizes in mm: the
        model input's grid, the images in the whole study, each layer's channels, and the size
        in mm of one voxel of the model's input."""
        if self.model is None or self.volume is None:
            return
        from medvis_desktop.explain.graph import resolve
        from medvis_desktop.explain.runner import patch_corners
        from medvis_desktop.models.layers import output_shape

        card, shape, spacing = self.card, self.volume.shape, self.volume.spacing
        grid, extent = card.spatial_shape, card.patch_extent(spacing)
        if extent is not None:
            images, covered = len(patch_corners(shape, extent)), extent
        else:
            images, covered = (1, shape) if card.input_mode == "3d" else (shape[0], shape)
        axes = list(zip(covered[-len(grid) :], spacing[-len(grid) :], grid, strict=True))
        resized = card.resize == "resize"
        mm = min(step * (size / length if resized else 1.0) for size, step, length in axes)
        channels = {}
        for layers in self.panel.layer_choices().values():
            for name in layers:
                channels.setdefault(name, int(output_shape(resolve(self.model, name).layer)[-1]))
        self.panel.set_study(
            tuple(grid), images, channels, mm, unit="slices" if extent is None else "patches"
        )

    def _card_for(self, model, path: Path):
        """The model card: the file beside the model, else the default one; edited when asked.

        Returns None when the user cancels; raises CardError when no usable card can be had.
        """
        from medvis_desktop.models.card import CardError, default_card_for, read_card, write_card

        input_shape, output_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
        try:
            card, reasons = read_card(path), []
        except CardError as error:
            card, reasons = None, [str(error)]
        if card is None:
            card, assumptions = default_card_for(model)
            reasons += ["No model card found; assumed:", *assumptions]
        problems = card.problems(input_shape, int(output_shape[-1]))
        if not problems and not reasons:
            return card
        if not self.interactive:
            if problems:
                raise CardError("The model card does not fit the model: " + "; ".join(problems))
            self.statusBar().showMessage(" ".join(reasons), 10000)
            return card
        from medvis_desktop.gui.card_dialog import CardDialog

        while True:
            dialog = CardDialog(card, reasons + problems, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None if problems else card
            card = dialog.card()
            problems = card.problems(input_shape, int(output_shape[-1]))
            if not problems:
                write_card(card, path)
                return card
            reasons = ["The edited card does not fit the model yet:"]

    @contextmanager
    def _busy(self, message: str) -> Iterator[None]:
        """Loading blocks the GUI thread: say so with a wait cursor and a status message."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.statusBar().showMessage(message)
        self.statusBar().repaint()  # the event loop will not run until the loading is done
        try:
            yield
        finally:
            QApplication.restoreOverrideCursor()
            self.statusBar().clearMessage()

    def _confirm_unsafe(self, message: str) -> bool:
        answer = QMessageBox.warning(
            self,
            "Model that runs code or reads files",
            f"{message}\n\nOpen it anyway? Only do so if you trust where it comes from.",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Open

    # --- running ---------------------------------------------------------------------------

    def run(self) -> int | None:
        """Explain the volume with the panel's settings, the slice on screen first."""
        from medvis_desktop.gui.worker import ExplainJob

        if not self._ready():
            return None
        chosen = self.panel.settings()
        job = ExplainJob(
            view=SLICES_VIEW,
            volume=self.volume,
            model=self.model,
            card=self.card,
            method=chosen.method,
            layer=chosen.layer,
            target=chosen.target,
            filter=chosen.filter,
            first_slice=self.viewer.cursor[0],
            region=chosen.region,
            params=chosen.params,
            batch_size=chosen.batch_size,
        )
        self.panel.set_running(True)
        self._job_id = self.relay.submit(job)
        if chosen.method == "activation_maps":
            self.tabs.setCurrentWidget(self.activations)
            self.run_mosaic()
        return self._job_id

    def run_mosaic(self) -> int | None:
        """Every feature map of the panel's layer for the slice on screen."""
        from medvis_desktop.explain.slice_inputs import SliceInputs
        from medvis_desktop.gui.worker import MosaicJob

        layer = self.panel.settings().layer or (self.explanation.layer if self.explanation else None)
        if not self._ready() or layer is None:
            return None
        self._mosaic_asked = (layer, self.viewer.cursor[0])
        inputs = SliceInputs.of(self.card, self.volume.spacing, self.explanation)
        job = MosaicJob(MOSAIC_VIEW, self.volume, self.model, inputs, layer, self.viewer.cursor[0])
        return self.relay.submit(job)

    def _mosaic_for_cursor(self) -> None:
        """The mosaic for the slice on screen, unless it was asked for already: every redraw
        (each partial result, style change) reports the cursor, moved or not."""
        layer = self.panel.settings().layer or (self.explanation.layer if self.explanation else None)
        if (layer, self.viewer.cursor[0]) != self._mosaic_asked:
            self.run_mosaic()

    def run_on_layer(self, method: str, layer: str, filter: int | None = None) -> int | None:
        self.panel.select(method=method, layer=layer)
        self.panel.filter.setValue(-1 if filter is None else filter)
        self.tabs.setCurrentWidget(self.slices_page)
        return self.run()

    def cancel(self) -> None:
        if self.relay is not None:
            self.relay.cancel(SLICES_VIEW)
        self.panel.set_running(False)
        self.panel.show_stopped()

    def _ready(self) -> bool:
        if not self.study_complete():
            return False
        missing = [
            what for what, value in (("a study", self.volume), ("a model", self.model)) if value is None
        ]
        if self.relay is None:
            missing.append("TensorFlow (still starting)")
        if missing:
            self.report_error("Cannot run yet", "Open " + " and ".join(missing) + " first.")
        return not missing

    def _cancel_jobs(self) -> None:
        self._mosaic_asked = None
        if self.relay is not None:
            for view in (SLICES_VIEW, MOSAIC_VIEW):
                self.relay.cancel(view)
        self.panel.set_running(False)

    def _show_result(self, job_id: int, result: object) -> None:
        if self._show_quality_result(job_id, result):
            return
        if not hasattr(result, "computed"):  # a Mosaic
            self.activations.set_mosaic(result)
            return
        self.explanation = result
        self.viewer.set_explanation(result)
        self.panel.set_signed(result.signed)
        self.track.set_track(result.slice_scores(), result.class_name or "")
        self.result_shown.emit(result)

    def _job_failed(self, job_id: int, message: str) -> None:
        if self._quality_failed(job_id, message):
            return
        self.panel.show_error(message)
        self.report_error("The explanation failed", message)

    def _job_finished(self, job_id: int) -> None:
        if job_id == self._job_id:
            self.panel.set_running(False)
            self.panel.show_stopped()

    # --- status ----------------------------------------------------------------------------

    def _show_cursor(self, z: int, y: int, x: int) -> None:
        self.track.set_current(z)
        if self.volume is not None:
            self.status["slice"].setText(f"slice {z + 1}/{self.volume.shape[0]}")
        if self.tabs.currentWidget() is self.activations and self.explanation is not None:
            self._mosaic_timer.start()

    def _show_hover(self, index: tuple[int, int, int] | None) -> None:
        import numpy as np  # not before the first paint (issue #14); loaded by then

        if index is None or self.volume is None:
            self.status["position"].clear()
            return
        x, y, z = self.volume.index_to_patient(np.asarray(index))
        value = self.volume.voxels[index]
        text = (
            f"L {x:.1f}  P {y:.1f}  S {z:.1f} mm   {value:g} {UNITS.get(self.volume.modality, '')}".rstrip()
        )
        if self.explanation is not None and np.isfinite(self.explanation.maps[index]):
            text += f"   map {self.explanation.maps[index]:.3g}"
        self.status["position"].setText(text)

    def report_error(self, what: str, message: str) -> None:
        """Tell the user what failed and why, without stopping anything."""
        self.last_error = f"{what}: {message}"
        self.statusBar().showMessage(self.last_error, 15000)
        self.error_reported.emit(self.last_error)
        if self.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, "medvis", what, QMessageBox.StandardButton.Ok, self)
            box.setInformativeText(message)
            box.open()

    # --- menus, settings, drag and drop ----------------------------------------------------

    def _dock(self, widget: QWidget | None, title: str, area: Qt.DockWidgetArea) -> QDockWidget:
        """A dock the saved layout finds by its title; empty, to be filled later, without `widget`."""
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        if widget is not None:
            dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Open &study…", QKeySequence.StandardKey.Open, self._ask_volume)
        file_menu.addAction("Open &DICOM folder…", self._ask_folder)
        file_menu.addAction("Open &model…", QKeySequence("Ctrl+M"), self._ask_model)
        file_menu.addAction("Open r&eference mask…", self._ask_reference)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        exports = self.export_menu = file_menu.addMenu("&Export")
        exports.addAction(
            "Screenshot of the view…", QKeySequence("Ctrl+E"),
            lambda: self._export_with_dialog(self.export_screenshot, "Screenshot", ".png"),
        )  # fmt: skip
        exports.addAction(
            "Screenshot of all views…",
            lambda: self._export_with_dialog(
                partial(self.export_screenshot, all_views=True), "Screenshot of all views", ".png"
            ),
        )
        exports.addAction(
            "Triptych of the slice…",
            lambda: self._export_with_dialog(self.export_triptych, "Triptych", ".png"),
        )
        exports.addAction(
            "Heat-map volume…", lambda: self._export_with_dialog(self.export_heatmap, "Heat map", ".nii.gz")
        )
        exports.addAction(
            "Feature-map mosaic…",
            lambda: self._export_with_dialog(self.export_activations, "Feature maps", ".png"),
        )
        exports.addSeparator()  # Figure size comes here with the views (build_views)
        self.include_patient = exports.addAction("Include patient name and ID in images")
        self.include_patient.setCheckable(True)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        self.demo_menu = self.menuBar().addMenu("&Demo cases")  # filled once TensorFlow is up
        self.view_menu = self.menuBar().addMenu("&View")  # filled with the views (build_views)

        self._add_pacs_menu()
        self._add_quality_menu()

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About medvis…", self.show_about)

    def _fill_view_menu(self) -> None:
        """Layouts, window presets and the actions on the views: part of build_views."""
        from medvis_desktop.gui.slice_viewer import SINGLE, THREE

        view_menu = self.view_menu
        layouts = QActionGroup(self)
        for label, mode, axis in (
            ("Single view: slices", SINGLE, 0),
            ("Single view: first reformat", SINGLE, 1),
            ("Single view: second reformat", SINGLE, 2),
            ("Three views", THREE, None),
        ):
            action = view_menu.addAction(label, self._make_layout(mode, axis))
            action.setCheckable(True)
            action.setChecked(mode == SINGLE and axis == 0)
            layouts.addAction(action)
        view_menu.addSeparator()
        self.window_menu = view_menu.addMenu("Window")
        view_menu.addAction("Reset view", QKeySequence("R"), self.viewer.reset_view)
        view_menu.addAction("Copy view", QKeySequence("Ctrl+Shift+C"), self.copy_view)
        view_menu.addAction("Next flagged slice", QKeySequence("N"), partial(self.track.step, 1))
        view_menu.addAction("Previous flagged slice", QKeySequence("P"), partial(self.track.step, -1))

    def show_about(self) -> AboutDialog:
        """Non-modal, made once (reading every licence text takes a moment), raised when asked again."""
        if self.about_dialog is None:
            from medvis_desktop import about  # package metadata: not before the window shows
            from medvis_desktop.gui.about_dialog import AboutDialog

            self.about_dialog = AboutDialog(about.components(), parent=self)
        # The device is known once TensorFlow has started (the label says "starting…" until then).
        self.about_dialog.set_device(self.status["device"].text() if self.relay is not None else None)
        self.about_dialog.show()
        self.about_dialog.raise_()
        self.about_dialog.activateWindow()
        return self.about_dialog

    def _make_demo(self, name: str):
        return lambda: self.open_demo(name) and self.run()

    def _make_layout(self, mode: str, axis: int | None):
        return lambda: self.viewer.set_layout_mode(mode, axis)

    def _rebuild_window_menu(self) -> None:
        self.viewer.fill_presets_menu(self.window_menu)

    def _connect(self) -> None:
        self.panel.run_requested.connect(self.run)
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.method_changed.connect(self.tree.set_method)
        self.panel.layer_changed.connect(self.tree.select_layer)
        self.tree.layer_selected.connect(self._layer_selected)
        self.tree.run_requested.connect(self.run_on_layer)
        self.start_page.open_path.connect(self.open_path)
        self.start_page.open_demo.connect(self.open_demo)
        self.start_page.open_study.connect(self._ask_volume)
        self.start_page.open_folder.connect(self._ask_folder)
        self.start_page.open_model.connect(self._ask_model)

    def _layer_selected(self, path: str) -> None:
        self.panel.select(layer=path)
        if self.tabs.currentWidget() is self.activations:
            self.run_mosaic()

    def _deconvolve_filter(self, index: int) -> None:
        self.run_on_layer("deconvnet", self.activations.mosaic.layer, filter=index)

    def _ask_volume(self) -> None:
        folder = self.settings.value("folders/volume", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open study", folder, VOLUME_FILTER)
        if path:
            self.open_volume(path)

    def _ask_folder(self) -> None:
        folder = self.settings.value("folders/volume", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", folder)
        if path:
            self.open_volume(path)

    def _ask_model(self) -> None:
        folder = self.settings.value("folders/model", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", folder, MODEL_FILTER)
        if path:
            self.open_model(path)

    def _remember(self, path: Path, kind: str) -> None:
        self.settings.setValue(f"folders/{kind}", str(path if path.is_dir() else path.parent))
        recent = [str(path)] + [p for p in self.recent_paths() if p != str(path)]
        self.settings.setValue("recent", recent[:RECENT_COUNT])
        self._rebuild_recent_menu()

    def recent_paths(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _rebuild_recent_menu(self) -> None:
        self.start_page.set_recent(self.recent_paths())
        self.recent_menu.clear()
        for path in self.recent_paths():
            self.recent_menu.addAction(path, self._make_open(path))

    def _make_open(self, path: str):
        return lambda: self.open_path(path)

    def _restore_settings(self) -> None:
        self.restoreGeometry(QByteArray(self.settings.value("window/geometry", QByteArray())))
        self.restoreState(QByteArray(self.settings.value("window/state", QByteArray())))
        style = OverlayStyle(
            colormap=str(self.settings.value("overlay/colormap", OverlayStyle.colormap)),
            opacity=float(self.settings.value("overlay/opacity", OverlayStyle.opacity)),
            threshold=float(self.settings.value("overlay/threshold", OverlayStyle.threshold)),
            sign=sign if (sign := self.settings.value("overlay/sign")) in SIGNS else OverlayStyle.sign,
            scale=scale if (scale := self.settings.value("overlay/scale")) in SCALES else OverlayStyle.scale,
            fixed_low=float(self.settings.value("overlay/fixed_low", OverlayStyle.fixed_low)),
            fixed_high=float(self.settings.value("overlay/fixed_high", OverlayStyle.fixed_high)),
        )
        self.panel.set_style(style)  # the viewer takes the panel's style when built
        self._rebuild_recent_menu()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        for key, value in asdict(self.panel.style).items():  # the viewer follows the panel's
            self.settings.setValue(f"overlay/{key}", value)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.dicom.shutdown()
        if self.relay is not None:
            self.relay.shutdown()
        super().closeEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
        event.acceptProposedAction()
