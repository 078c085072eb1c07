"""What medvis is made of and under which licences, for the About dialog.

medvis is installed on offline hospital workstations: every bundled component's licence must be
readable on the machine itself, from the files that were installed with it. Nothing here raises
when something is missing (a frozen app may lack package metadata): the text says what is missing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import medvis_desktop
from medvis_desktop.package_data import resource

UNKNOWN = "unknown"
NO_LICENCE_FILE = "No licence file found"
DEMO_ROLE = "demo data"
# The standard texts medvis ships (resources/licenses/<SPDX id>.txt), shown, labelled as such,
# when a distribution installs none of its own (the TensorFlow, PySide6 and shiboken6 wheels do
# not) and for Python in a frozen app, which has no standard library folder to read.
STANDARD_TEXTS = "licenses"
LICENCE_NAME = re.compile(r"(LICEN[CS]E|COPYING|NOTICE)", re.IGNORECASE)
METADATA_FOLDERS = (".dist-info", ".egg-info")
SPDX_OPERATORS = {"AND", "OR", "WITH"}


@dataclass(frozen=True)
class Component:
    """One row of the About dialog."""

    name: str
    role: str
    version: str  # UNKNOWN when it cannot be found; empty for data, which has no version
    licence: str  # SPDX expression
    text: str  # the installed licence texts, or why there are none
    files: tuple[Path, ...]  # where `text` was read from


@dataclass(frozen=True)
class Bundled:
    """A Python distribution medvis ships. The SPDX expression is written here, not read at run
    time: a frozen app may lack the metadata, and free-text License fields ("GPL V3.0") need a
    person to translate them. tests/test_about.py checks it against the installed metadata."""

    name: str
    distribution: str
    module: str  # whose __version__ stands in when the metadata is missing
    role: str
    licence: str


MEDVIS = Bundled("medvis", "medvis-desktop", "medvis_desktop", "this application", "MIT")
QT_FOR_PYTHON = "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only"
BUNDLED = (
    Bundled("TensorFlow", "tensorflow", "tensorflow", "runs the models and the explanations", "Apache-2.0"),
    Bundled("Keras", "keras", "keras", "loads and describes the models", "Apache-2.0"),
    Bundled(
        "PySide6-Essentials",
        "PySide6-Essentials",
        "PySide6",
        "Qt for Python: the Qt 6 libraries and their bindings",
        QT_FOR_PYTHON,
    ),
    Bundled("shiboken6", "shiboken6", "shiboken6", "Qt for Python: the bindings' runtime", QT_FOR_PYTHON),
    Bundled("pyqtgraph", "pyqtgraph", "pyqtgraph", "slice and plot display", "MIT"),
    Bundled("NumPy", "numpy", "numpy", "arrays", "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0"),
    Bundled("pydicom", "pydicom", "pydicom", "reads DICOM", "MIT"),
    Bundled("pylibjpeg", "pylibjpeg", "pylibjpeg", "finds the DICOM pixel decoders", "MIT"),
    Bundled("pylibjpeg-libjpeg", "pylibjpeg-libjpeg", "libjpeg", "JPEG and JPEG-LS decoder", "GPL-3.0-only"),
    Bundled("pylibjpeg-openjpeg", "pylibjpeg-openjpeg", "openjpeg", "JPEG 2000 decoder", "MIT"),
    Bundled("pylibjpeg-rle", "pylibjpeg-rle", "rle", "DICOM RLE decoder", "MIT"),
    Bundled("SimpleITK", "SimpleITK", "SimpleITK", "reads and writes NIfTI, MHA, NRRD", "Apache-2.0"),
    Bundled("Pillow", "pillow", "PIL", "PNG and JPEG images", "MIT-CMU"),
    Bundled("h5py", "h5py", "h5py", "reads Keras 2 .h5 models", "BSD-3-Clause"),
    Bundled("highdicom", "highdicom", "highdicom", "writes DICOM results (Parametric Map, SEG, SC)", "MIT"),
    Bundled("pynetdicom", "pynetdicom", "pynetdicom", "DICOM networking", "MIT"),
    Bundled(
        "dicom-anonymizer",
        "dicom-anonymizer",
        "dicomanonymizer",
        "the DICOM de-identification table (PS3.15 Annex E)",
        "BSD-3-Clause",
    ),
)


def components() -> tuple[Component, ...]:
    """medvis, Python, the bundled distributions, then the demo data."""
    return (
        distribution_component(MEDVIS, version=medvis_desktop.__version__),
        python_component(),
        *(distribution_component(bundled) for bundled in BUNDLED),
        *demo_components(),
    )


def version_of(distribution: str, module: str) -> str:
    """The installed version: from the metadata, else the module's __version__, else UNKNOWN."""
    with contextlib.suppress(Exception):  # not installed, or metadata without a Version
        version = importlib.metadata.version(distribution)
        if version:
            return version
    with contextlib.suppress(Exception):  # any import failure, or no __version__
        return str(importlib.import_module(module).__version__)
    return UNKNOWN


def distribution_component(bundled: Bundled, version: str | None = None) -> Component:
    """`bundled` with the licence files its distribution installed (`version` when the running
    code knows its own better than the metadata does)."""
    version = version or version_of(bundled.distribution, bundled.module)
    try:
        dist = importlib.metadata.distribution(bundled.distribution)
    except importlib.metadata.PackageNotFoundError:
        text, files = _missing(f"the distribution {bundled.distribution} is not installed", bundled.licence)
        return Component(bundled.name, bundled.role, version, bundled.licence, text, files)
    files = _licence_files(dist)
    if files:
        text = _texts(files)
    else:
        text, files = _missing(
            f"{bundled.distribution} {version} installed none with its metadata", bundled.licence
        )
    return Component(bundled.name, bundled.role, version, bundled.licence, text, files)


def python_component() -> Component:
    """The interpreter; its licence lies in the standard library's folder, or (in a frozen app,
    which has none) is the copy medvis ships."""
    licence, role, version = "PSF-2.0", "the interpreter and its standard library", platform.python_version()
    path = Path(os.__file__).parent / "LICENSE.txt"
    if not path.is_file():
        path = resource(STANDARD_TEXTS, f"{licence}.txt")
    return Component("Python", role, version, licence, _texts([path]), (path,))


def demo_components() -> list[Component]:
    """Each demo study's real source data, with the licence files shipped beside it."""
    from medvis_desktop.demo.studies import FOLDER, sources  # SimpleITK: not before the window shows

    folder = resource(FOLDER)
    found = []
    for source in sources().values():
        paths = [folder / name for name in source.licence_files]
        present = tuple(path for path in paths if path.is_file())
        parts = [f"{source.title}\nFrom: {source.origin}"]
        parts += [f"{NO_LICENCE_FILE}: {path} is missing." for path in paths if path not in present]
        if present:
            parts.append(_texts(present))
        found.append(Component(source.title, DEMO_ROLE, "", source.licence, "\n\n".join(parts), present))
    return found


def licence_folders(components: Iterable[Component]) -> tuple[Path, ...]:
    """The folders that hold the licence texts: for a distribution's files, the folder its
    metadata folder lies in (site-packages), so that one line can say where they all are."""
    folders = set()
    for component in components:
        for path in component.files:
            info = next((p for p in path.parents if p.name.endswith(METADATA_FOLDERS)), None)
            folders.add(info.parent if info is not None else path.parent)
    return tuple(sorted(folders))


def _licence_files(dist: importlib.metadata.Distribution) -> tuple[Path, ...]:
    """All of the metadata folder's licenses/ and files named like a licence beside it; else the
    files the License-File field names (an egg-info's lie in the project, not in its folder)."""
    files = list(dist.files or ())
    chosen = [
        file
        for file in files
        if len(file.parts) > 1
        and file.parts[0].endswith(METADATA_FOLDERS)
        and (file.parts[1] == "licenses" or LICENCE_NAME.match(file.name))
    ]
    if not chosen:
        declared = set(dist.metadata.get_all("License-File") or ())
        chosen = [file for file in files if file.as_posix() in declared]
    chosen.sort(key=lambda file: (len(file.parts), file.as_posix()))  # the top-level LICENSE first
    paths = (Path(str(dist.locate_file(file))).resolve() for file in chosen)
    return tuple(path for path in paths if path.is_file())


def _texts(paths: Sequence[Path]) -> str:
    return "\n\n".join(f"── {path} ──\n\n{path.read_text(errors='replace').strip()}" for path in paths)


def _missing(why: str, licence: str) -> tuple[str, tuple[Path, ...]]:
    """Say that no licence file was found, followed by the standard text of `licence` that medvis
    ships (labelled as such: it is not the component's own file)."""
    text = f"{NO_LICENCE_FILE}: {why}."
    ids = [i for i in re.findall(r"[\w.+-]+", licence) if i not in SPDX_OPERATORS]
    paths = (resource(STANDARD_TEXTS, f"{i}.txt") for i in ids)
    standard = tuple(path for path in paths if path.is_file())
    if standard:
        text += f"\n\nThe standard text of {licence}, as medvis ships it:\n\n"
        text += _texts(standard)
    return text, standard
