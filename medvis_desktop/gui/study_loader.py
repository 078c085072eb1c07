"""The window's opening of studies: choosing a series, the memory budget, isolation for native
decoders, and a large DICOM series shown while it loads (issue #14). A mixin of MainWindow,
which owns the viewer, the status bar, `show_volume` and the error reporting it uses.

A DICOM folder's headers are read once (imaging.scan_dicom) and serve the series dialog, the
isolation check and the load. An uncompressed series is then opened slice by slice
(imaging.SeriesLoad): the slices around the middle one, which the viewer shows first, are
decoded before the window shows the study; the rest load on a background thread, the view
refreshed and the status bar counting as chunks arrive. Explanations and quality measures wait
for the whole study (`study_complete`, asked by MainWindow._ready). Opening another study or
closing the window stops the load. A compressed series takes the same path: SeriesLoad decodes
it in child processes (a crashing decoder costs a slice, not the session); other studies whose
readers are native (NIfTI, images) are read whole in a child (imaging.load_isolated).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog

from medvis_desktop import imaging
from medvis_desktop.errors import LoadError, MedvisError
from medvis_desktop.gui.series_dialog import SeriesDialog, ask_slice_range

if TYPE_CHECKING:
    from medvis_desktop.imaging import SeriesLoad, Volume  # not before the window shows

# Slices decoded before the study is shown: the one in view and its neighbours, for scrolling.
FIRST_SLICES = 8
# A series of at most this many slices is decoded whole before it is shown (well under a second).
WHOLE_SLICES = 64
WARNINGS_MS = 15000


class LoadSignals(QObject):
    """Carries a background load's callbacks, made on its thread, to the window's thread."""

    chunk = Signal(object, object)  # the SeriesLoad, the slices just decoded
    ended = Signal(object, str)  # the SeriesLoad, "" or why it stopped


class StudyLoading:
    """Opening studies for MainWindow (see there for the attributes used)."""

    _series_load: SeriesLoad | None = None  # the series loading in the background, if any
    _load_error = ""  # why the study on screen did not load whole, if it did not
    _load_signals: LoadSignals | None = None
    _study_text = ""  # the status bar's name of the study, without the loading count

    def open_volume(self, path: Path | str, series_uid: str | None = None) -> bool:
        """A study; a DICOM series over the memory budget offers a range of slices that fits,
        read with the series and headers already found."""
        from medvis_desktop.imaging.volume import Volume  # numpy: not before the first paint

        path = Path(path)
        try:
            study = self._read_study(path, series_uid)
            streamed = not isinstance(study, Volume)
            if streamed:
                self._fill_first(study, path.name)
        except (MedvisError, OSError) as error:
            self.report_error(f"Could not open {path.name}", str(error))
            return False
        if streamed:
            self._show_loading(study, path.name)
        else:
            self.show_volume(study, path.name)
        self._remember(path, "volume")
        return True

    def study_complete(self) -> bool:
        """Whether every slice of the study is in: a load still running is waited for (a
        method must not see undecoded slices); a load that stopped is reported."""
        load = self._series_load
        if load is not None:
            with self._busy("Reading the rest of the study first…"):
                load.wait()
            self._load_ended(load, load.error)
        if self._load_error:
            self.report_error("The study did not load whole", self._load_error)
        return not self._load_error

    def stop_loading(self) -> None:
        """Stop a background load (another study replaces it, or the window closes)."""
        load, self._series_load, self._load_error = self._series_load, None, ""
        if load is not None:
            load.cancel()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_loading()
        super().closeEvent(event)

    def _read_study(self, path: Path, series_uid: str | None) -> Volume | SeriesLoad:
        """The study read whole, or a DICOM series to load slice by slice."""
        found, listed = None, None  # a DICOM study's headers, read once, and its series
        with self._busy(f"Reading the headers in {path.name}…"):
            if imaging.is_dicom(path):
                found = imaging.scan_dicom(path)
                listed = imaging.series_infos(found, path)
        if listed is not None and path.is_dir() and series_uid is None:
            series_uid = self._choose_series(listed)
        # Native readers run in a child process: a file that crashes one costs the load, not
        # the session (a DICOM series' compressed slices: each in its own, see SeriesLoad).
        isolated = found is None and imaging.needs_isolation(path)
        slices = None
        while True:
            try:
                with self._busy(f"Opening {path.name}…"):
                    if found is not None:
                        return imaging.open_series(path, found, series_uid=series_uid, slices=slices)
                    if isolated:
                        return imaging.load_isolated(path, series_uid=series_uid, slices=slices)
                    return imaging.load(path, series_uid=series_uid, slices=slices)
            except imaging.TooLargeError as error:
                slices = ask_slice_range(self, error) if self.interactive and error.fitting else None
                if slices is None:
                    raise

    def _choose_series(self, series: list[imaging.SeriesInfo]) -> str | None:
        """The series to open (None: the only one)."""
        if len(series) <= 1:
            return None
        if not self.interactive:
            chosen = max(series, key=lambda info: info.image_count)
            self.statusBar().showMessage(
                f"{len(series)} series: opened the largest, {chosen.description}", 10000
            )
            return chosen.uid
        dialog = SeriesDialog(series, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            raise MedvisError("No series chosen")
        return dialog.chosen_uid()

    def _fill_first(self, load: SeriesLoad, name: str) -> None:
        """Decode the middle slices, where the viewer opens (all of a short series). A series
        none of whose slices could be decoded is refused, as imaging.load refuses it."""
        count = load.volume.shape[0]
        first = count // 2 - FIRST_SLICES // 2
        with self._busy(f"Opening {name}…"):
            load.fill(range(count) if count <= WHOLE_SLICES else range(first, first + FIRST_SLICES))
        if load.complete and len(load.damaged) == count:
            reasons = [w for w in load.volume.warnings if w.startswith("Damaged file")][:3]
            raise LoadError(f"None of the images in {name} could be read: {'; '.join(reasons)}")

    def _show_loading(self, load: SeriesLoad, name: str) -> None:
        """Show the series with its first slices decoded; load the rest behind."""
        self.show_volume(load.volume, name)
        if load.complete:
            return
        middle = load.volume.shape[0] // 2  # where the viewer opens
        if self._load_signals is None:
            self._load_signals = LoadSignals(self)
            self._load_signals.chunk.connect(self._slices_loaded)
            self._load_signals.ended.connect(self._load_ended)
        signals = self._load_signals
        self._series_load, self._study_text = load, self.status["volume"].text()
        self._show_load_progress(load)
        load.load_rest(
            middle,
            lambda slices: signals.chunk.emit(load, slices),
            lambda error: signals.ended.emit(load, error),
        )

    def _slices_loaded(self, load: SeriesLoad, slices: list[int]) -> None:
        if load.volume is not self.viewer.volume:
            return  # another study replaced it
        self.viewer.refresh_slices(slices)
        if load is self._series_load:
            self._show_load_progress(load)

    def _load_ended(self, load: SeriesLoad, error: str) -> None:
        if load is not self._series_load:
            return  # stopped, or ended already (study_complete waited for it)
        self._series_load, self._load_error = None, error
        self.status["volume"].setText(self._study_text)
        if error:
            self.report_error(
                "The study did not load whole",
                f"{error}. The slices read are shown; explanations need the whole study.",
            )
        elif load.volume.warnings:
            self.statusBar().showMessage("; ".join(load.volume.warnings), WARNINGS_MS)

    def _show_load_progress(self, load: SeriesLoad) -> None:
        total = load.volume.shape[0]
        self.status["volume"].setText(
            f"{self._study_text}: loading {load.done}/{total}, methods wait for the whole study"
        )
