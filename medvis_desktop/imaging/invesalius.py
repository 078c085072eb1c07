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
from medvis_desktop.imaging import checks
from medvis_desktop.imaging.volume import Volume, Window

SUFFIX = ".inv3"


def handles(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == SUFFIX


def _member(archive: tarfile.TarFile, name: str, budget: int) -> bytes:
    """A member's bytes, its declared size checked against the budget before it is read."""
    for member in archive.getmembers():
        if PurePosixPath(member.name).name == name and member.isfile():
            checks.within_budget(member.size, budget, f"The member {name}")
            return archive.extractfile(member).read()
    raise LoadError(f"{archive.name}: no {name} inside; not an InVesalius project")


def load_inv3(path: Path, memory_budget: int | None = None) -> Volume:
    budget = checks.memory_budget(memory_budget)
    try:
        with tarfile.open(path, "r:gz") as archive:
            project = plistlib.loads(_member(archive, "main.plist", budget))
            matrix = project["matrix"]
            shape = tuple(checks.count(n, "Matrix size") for n in matrix["shape"])
            dtype = np.dtype(matrix["dtype"])
            raw = _member(archive, matrix["filename"], budget)
            if len(shape) != 3 or len(raw) != np.prod(shape) * dtype.itemsize:
                raise checks.HeaderError(f"the matrix holds {len(raw):,} bytes, not a {shape} {dtype} array")
            spacing_x, spacing_y, spacing_z = checks.spacing(project["spacing"], "Spacing")
            voxels = np.frombuffer(raw, dtype=dtype).reshape(shape)
    except checks.HeaderError as error:
        raise LoadError(f"{path.name}: {error}") from None
    except LoadError:
        raise
    except Exception as error:
        # An untrusted archive fails in many ways: tarfile, gzip (zlib.error, EOFError),
        # plistlib (ExpatError, InvalidFileException), a plist of the wrong shape (KeyError,
        # TypeError), an unknown dtype. Listing them one by one always misses one.
        why = checks.one_line(error)
        raise LoadError(f"{path.name} is not a readable InVesalius project ({why})") from None
    if voxels.dtype.kind not in "biuf":
        raise LoadError(f"{path.name}: voxels of type {voxels.dtype} are not supported")
    checks.refuse_infinite_voxels(voxels, path.name)
    # InVesalius stores rows bottom-up (VTK's convention): flip them back so rows run
    # front to back, as in the DICOM series the project was made from.
    voxels = np.ascontiguousarray(voxels[:, ::-1, :])
    windows = []
    study_window = checks.window(project.get("window_level"), project.get("window_width"))
    if study_window is not None:
        windows.append(Window("Study", *study_window))
    return Volume(
        voxels=voxels,
        spacing=(float(spacing_z), float(spacing_y), float(spacing_x)),
        modality=str(project.get("modality", "OT")),
        meta={"Format": "InVesalius project", "StudyDescription": str(project.get("name", ""))},
        windows=windows,
        source=path,
    )
