"""What the window's start imports: the GUI must paint before pydicom, SimpleITK, pynetdicom and
TensorFlow load (issue #14). Each check runs in a fresh interpreter, whose sys.modules says
what an import really pulled in; the lazy packages still offer every public name."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medvis_desktop import dicomnet, export, imaging
from medvis_desktop.dicomnet.node import DEFAULT_AE
from medvis_desktop.dicomnet.scp import DEFAULT_PORT
from medvis_desktop.gui import pacs_network

HEAVY = ("pydicom", "SimpleITK", "pynetdicom", "highdicom", "tensorflow", "keras")


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


def test_the_main_window_loads_neither_tensorflow_nor_the_imaging_and_network_libraries():
    assert loaded_after("import medvis_desktop.gui.app") == set()


def test_a_public_name_loads_its_library_when_first_used():
    assert loaded_after("from medvis_desktop.imaging import load") == set()
    assert loaded_after("from medvis_desktop.imaging import SeriesInfo") == {"pydicom"}
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
