"""Copy the licence texts of every Python distribution whose code is inside the frozen app.

    python packaging/deb/bundled_licences.py FROZEN_DIR OUT_DIR

Run with the Python the app was frozen from (it reads that environment's metadata). The modules
are listed from the app itself: the folders of _internal/ and the PYZ archive inside the
executable, so a distribution is listed exactly when some of its code was bundled. Each one's
licence files (its .dist-info/licenses/ folder and LICENSE/COPYING/NOTICE files beside it, and
licence files its RECORD lists elsewhere) go to OUT_DIR/<distribution>-<version>/. CPython's own
licence goes to OUT_DIR/python-<version>/. Prints one line per distribution: name version licence.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
import sysconfig
from pathlib import Path

from PyInstaller.archive.readers import pkg_archive_contents

LICENCE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)


def bundled_top_level(frozen: Path) -> set[str]:
    names = {name.split(".")[0] for name in pkg_archive_contents(str(frozen / frozen.name))}
    for path in (frozen / "_internal").iterdir():
        if not path.name.endswith((".dist-info", ".egg-info", ".libs")):
            names.add(path.name.split(".")[0])
    return names


def licence_files(dist: importlib.metadata.Distribution) -> list[tuple[Path, str]]:
    """(source, path relative to the distribution's folder in OUT_DIR)."""
    found = []
    for file in dist.files or ():
        parts = Path(str(file)).parts
        in_metadata = parts[0].endswith(".dist-info")
        if in_metadata and ((len(parts) > 2 and parts[1] == "licenses") or LICENCE_NAME.match(parts[-1])):
            found.append((Path(str(dist.locate_file(file))), str(Path(*parts[1:]))))
        elif not in_metadata and LICENCE_NAME.match(parts[-1]) and "include" not in parts:
            found.append((Path(str(dist.locate_file(file))), str(Path("files", *parts))))
    return found


def main(frozen: Path, out: Path) -> None:
    top_level = bundled_top_level(frozen)
    owners = importlib.metadata.packages_distributions()
    names = sorted({dist for module in top_level for dist in owners.get(module, ())}, key=str.lower)
    for name in names:
        dist = importlib.metadata.distribution(name)
        meta = dist.metadata
        licence = meta.get("License-Expression") or (meta.get("License") or "").splitlines()[0:1]
        if isinstance(licence, list):
            licence = licence[0] if licence and len(licence[0]) < 80 else "see the licence files"
        folder = out / f"{dist.name}-{dist.version}"
        files = [(source, relative) for source, relative in licence_files(dist) if source.is_file()]
        for source, relative in files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / relative)
        note = "" if files else " (no licence file in its wheel)"
        print(f"{dist.name} {dist.version} {licence or 'unknown'}{note}")
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    version = sysconfig.get_python_version()
    if python_licence.is_file():
        (out / f"python-{version}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(python_licence, out / f"python-{version}" / "LICENSE.txt")
        print(f"python {sys.version.split()[0]} PSF-2.0")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
