"""pyproject.toml lists its packages by hand (resources/ is mapped into the package): a
subpackage left out of the list would be missing from the wheel, the bundle and the .deb."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "medvis_desktop").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk, "no packages found"
    assert on_disk <= listed, f"not listed in pyproject.toml: {sorted(on_disk - listed)}"
