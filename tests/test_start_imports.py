"""What the window's start imports: the GUI must paint before pydicom, SimpleITK, pynetdicom,
TensorFlow, pyqtgraph, numpy and PIL load (issue #14). Each check runs in a fresh interpreter, whose
sys.modules says what an import really pulled in; the lazy packages still offer every public
name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medvis_desktop import dicomnet, export, imaging
from medvis_desktop.dicomnet.node import DEFAULT_AE
from medvis_desktop.dicomnet.scp import DEFAULT_PORT
from medvis_desktop.gui import pacs_network

HEAVY = (
    "pydicom",
    "SimpleITK",
    "pynetdicom",
    "highdicom",
    "tensorflow",
    "keras",
    "pyqtgraph",
    "numpy",
    "PIL",
)
# What the window builds after its first paint: the views drawn with pyqtgraph, and numpy.
AFTER_PAINT = ("pyqtgraph", "numpy", "PIL")

# The app started as `medvis` starts it, its TensorFlow start replaced by a look at the window:
# prints which of AFTER_PAINT had loaded at the window's first paint, and the slice viewers the
# window held when the start came (the real one loads TensorFlow first thing).
FIRST_PAINT = """
import json, sys
from PySide6.QtCore import QEvent, QObject, QSettings
from PySide6.QtWidgets import QApplication, QMainWindow
from medvis_desktop.cli import build_parser
from medvis_desktop.gui import app

class FirstPaint(QObject):
    loaded = None
    def eventFilter(self, watched, event):
        if self.loaded is None and event.type() == QEvent.Type.Paint and isinstance(watched, QMainWindow):
            self.loaded = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
        return False

seen = {}
def start(script):
    from medvis_desktop.gui.slice_viewer import SliceViewer
    seen["viewers"] = len(script.window.findChildren(SliceViewer))
    QApplication.instance().exit(0)

qt_app = QApplication(sys.argv[:1])
painted = FirstPaint()
qt_app.installEventFilter(painted)
app.Script.start = start
app.run_gui(build_parser().parse_args([]), QSettings(sys.argv[1], QSettings.Format.IniFormat))
print(json.dumps({"loaded_at_first_paint": painted.loaded, **seen}))
"""


def loaded_after(statement: str) -> set[str]:
    """The HEAVY modules in sys.modules of a fresh interpreter after running `statement`."""
    script = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "module",
    [
        "medvis_desktop.imaging",
        "medvis_desktop.export",
        "medvis_desktop.dicomnet",
        "medvis_desktop.about",
        "medvis_desktop.gui.pacs_network",
        "medvis_desktop.gui.series_dialog",
    ],
)
def test_a_module_the_window_imports_loads_none_of_the_heavy_libraries(module):
    assert loaded_after(f"import {module}") == set()


def test_the_main_window_loads_neither_tensorflow_nor_pyqtgraph_nor_the_imaging_and_network_libraries():
    assert loaded_after("import medvis_desktop.gui.app") == set()


def test_the_window_paints_before_pyqtgraph_loads_and_has_its_viewer_before_tensorflow_starts(tmp_path: Path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-c", FIRST_PAINT, str(tmp_path / "medvis.ini"), json.dumps(AFTER_PAINT)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120, env=env)
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen == {"loaded_at_first_paint": [], "viewers": 1}


def test_a_public_name_loads_its_library_when_first_used():
    assert loaded_after("from medvis_desktop.imaging import load") == set()
    assert "pydicom" in loaded_after("from medvis_desktop.imaging import SeriesInfo")
    assert "SimpleITK" in loaded_after("from medvis_desktop.export import save_heatmap")
    assert "pynetdicom" in loaded_after("from medvis_desktop.dicomnet import StorageServer")


@pytest.mark.parametrize("package", [imaging, export, dicomnet], ids=lambda p: p.__name__)
def test_every_public_name_is_offered_and_listed(package):
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_dicomnet_send_is_the_function_even_after_its_module_loaded_for_another_name():
    statement = (
        "from medvis_desktop.dicomnet import SendStatus, send\n"
        "assert callable(send) and send.__module__ == 'medvis_desktop.dicomnet.send', send"
    )
    loaded_after(statement)


@pytest.mark.parametrize(
    ("package", "submodules"),
    [
        (imaging, ("checks", "dicom", "invesalius", "itk", "orientation", "planar", "windowing")),
        (export, ("atomic", "images", "provenance", "volumes")),
        (dicomnet, ("errors", "node", "query", "scp", "store")),
    ],
    ids=lambda p: getattr(p, "__name__", ""),
)
def test_the_submodules_are_still_attributes_of_their_package(package, submodules):
    for name in submodules:
        assert getattr(package, name).__name__ == f"{package.__name__}.{name}"
        assert name in dir(package)


def test_the_network_defaults_repeated_for_the_start_match_dicomnet():
    assert pacs_network.DEFAULT_PORT == DEFAULT_PORT
    assert pacs_network.NetworkConfig().ae_title == DEFAULT_AE
