"""InVesalius 3 projects (.inv3): a gzipped tar holding `main.plist` and a raw voxel matrix.

Debian's `invesalius-examples` ships a real head CT in this form, which is where the
project's demo and test CT comes from.
"""

from __future__ import annotations

import plistlib
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from medvis_desktop.errors import LoadError
from medvis_desktop.imaging.volume import Volume, Window

SUFFIX = ".inv3"


def handles(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == SUFFIX


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    for member in archive.getmembers():
        if PurePosixPath(member.name).name == name and member.isfile():
            return archive.extractfile(member).read()
    raise LoadError(f"{archive.name}: no {name} inside; not an InVesalius project")


def load_inv3(path: Path) -> Volume:
    try:
        with tarfile.open(path, "r:gz") as archive:
            project = plistlib.loads(_member(archive, "main.plist"))
            matrix = project["matrix"]
            shape = tuple(int(n) for n in matrix["shape"])
            raw = _member(archive, matrix["filename"])
    except (tarfile.TarError, OSError, plistlib.InvalidFileException, KeyError) as error:
        raise LoadError(f"{path.name} is not a readable InVesalius project ({error})") from error
    voxels = np.frombuffer(raw, dtype=np.dtype(matrix["dtype"])).reshape(shape)
    # InVesalius stores rows bottom-up (VTK's convention): flip them back so rows run
    # front to back, as in the DICOM series the project was made from.
    voxels = np.ascontiguousarray(voxels[:, ::-1, :])
    spacing_x, spacing_y, spacing_z = (float(s) for s in project["spacing"])
    windows = []
    if "window_level" in project and "window_width" in project:
        windows.append(Window("Study", float(project["window_level"]), float(project["window_width"])))
    return Volume(
        voxels=voxels,
        spacing=(spacing_z, spacing_y, spacing_x),
        modality=str(project.get("modality", "OT")),
        meta={"Format": "InVesalius project", "StudyDescription": str(project.get("name", ""))},
        windows=windows,
        source=path,
    )
