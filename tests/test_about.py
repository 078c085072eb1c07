"""The About dialog's components, checked against the files and metadata actually installed."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sysconfig
from email.parser import Parser
from pathlib import Path

import pytest

import medvis_desktop
from medvis_desktop import about
from medvis_desktop.package_data import resource

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
DEMO = resource("demo")
LICENCE_LIKE = re.compile(r"(licen[cs]e|copying|notice)", re.IGNORECASE)


@pytest.fixture(scope="module")
def components() -> dict[str, about.Component]:
    return {component.name: component for component in about.components()}


def dist_info(distribution: str) -> Path:
    """The installed .dist-info folder, found by its file name (wheels normalise the name)."""
    stem = re.sub(r"[-_.]+", "_", distribution).lower()
    found = [p for p in SITE_PACKAGES.glob("*.dist-info") if p.name.lower().startswith(f"{stem}-")]
    assert len(found) == 1, f"{distribution}: {found}"
    return found[0]


def metadata(distribution: str):
    return Parser().parsestr((dist_info(distribution) / "METADATA").read_text())


def installed_licence_files(distribution: str) -> list[Path]:
    folder = dist_info(distribution)
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and ("licenses" in path.relative_to(folder).parts or LICENCE_LIKE.match(path.name))
    ]


def test_every_component_has_a_licence_text(components):
    assert len(components) == 2 + len(about.BUNDLED) + len(list(DEMO.glob("*.json")))
    for component in components.values():
        assert component.text.strip(), component.name
        assert component.licence, component.name


@pytest.mark.parametrize("bundled", about.BUNDLED, ids=lambda b: b.name)
def test_a_distribution_shows_every_licence_file_it_installed(components, bundled):
    component = components[bundled.name]
    files = installed_licence_files(bundled.distribution)
    for path in files:
        assert path.read_text(errors="replace").strip() in component.text, path
    if not files:
        assert component.text.startswith("No licence file found"), component.text[:200]


def test_medvis_and_python_show_their_own_licence(components):
    repo_licence = (Path(__file__).resolve().parents[1] / "LICENSE").read_text().strip()
    assert repo_licence.startswith("MIT License")
    assert repo_licence in components["medvis"].text
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in components["Python"].text


def test_tensorflow_and_pyside6_licences_agree_with_their_metadata(components):
    tensorflow = metadata("tensorflow")
    assert tensorflow["License"] == "Apache 2.0"
    assert "License :: OSI Approved :: Apache Software License" in tensorflow.get_all("Classifier")
    assert components["TensorFlow"].licence == "Apache-2.0"
    for distribution, name in (("PySide6-Essentials", "PySide6-Essentials"), ("shiboken6", "shiboken6")):
        assert components[name].licence == metadata(distribution)["License"]


# What the free-text License fields and the licence classifiers of the installed versions mean in SPDX.
FREE_TEXT = {
    "Apache 2.0": "Apache-2.0",
    "Apache License 2.0": "Apache-2.0",
    "Apache": "Apache-2.0",
    "MIT": "MIT",
    "GPL V3.0": "GPL-3.0-only",
    "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only": "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only",
}
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    # Only dicom-anonymizer declares this one; its LICENSE file is the 3-clause text (checked below).
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
}


def declared_licence(distribution: str) -> str:
    """License-Expression, else the License field, else the licence classifier, in SPDX."""
    fields = metadata(distribution)
    if fields["License-Expression"]:
        return fields["License-Expression"]
    if fields["License"]:
        return FREE_TEXT[fields["License"]]
    (classifier,) = (c for c in fields.get_all("Classifier") if c.startswith("License ::"))
    return CLASSIFIERS[classifier]


@pytest.mark.parametrize("bundled", about.BUNDLED, ids=lambda b: b.name)
def test_every_licence_id_agrees_with_the_installed_metadata(bundled):
    assert bundled.licence == declared_licence(bundled.distribution)


def test_versions_are_the_installed_ones(components):
    assert components["medvis"].version == medvis_desktop.__version__
    assert components["medvis"].version == importlib.metadata.version("medvis-desktop")
    for bundled in about.BUNDLED:
        assert components[bundled.name].version == importlib.metadata.version(bundled.distribution)
        assert components[bundled.name].version == metadata(bundled.distribution)["Version"]


def test_a_missing_distribution_is_unknown_and_says_so():
    missing = about.Bundled("Nothing", "medvis-no-such-distribution", "medvis_no_such_module", "none", "MIT")
    component = about.distribution_component(missing)
    assert component.version == "unknown"
    assert component.text.startswith("No licence file found")
    assert "medvis-no-such-distribution is not installed" in component.text
    assert component.files == ()


def test_without_metadata_the_modules_version_stands_in():
    frozen = about.Bundled("medvis", "medvis-no-such-distribution", "medvis_desktop", "app", "MIT")
    assert about.distribution_component(frozen).version == medvis_desktop.__version__


def test_a_missing_distribution_shows_the_shipped_standard_text_labelled():
    shipped = resource("licenses", "Apache-2.0.txt")
    missing = about.Bundled(
        "Nothing", "medvis-no-such-distribution", "medvis_no_such_module", "none", "Apache-2.0"
    )
    component = about.distribution_component(missing)
    assert component.files == (shipped,)
    assert "as medvis ships it" in component.text
    assert "Apache License" in component.text and "Version 2.0, January 2004" in component.text


def test_the_shipped_standard_texts_are_the_licences_they_are_named_after():
    titles = {
        "Apache-2.0": "Apache License",
        "GPL-2.0-only": "GNU GENERAL PUBLIC LICENSE\n                       Version 2",
        "GPL-3.0-only": "GNU GENERAL PUBLIC LICENSE\n                       Version 3",
        "LGPL-3.0-only": "GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 3",
        "PSF-2.0": "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2",
    }
    for spdx, title in titles.items():
        assert title in resource("licenses", f"{spdx}.txt").read_text(), spdx


def test_demo_data_carry_their_licence_files(components):
    sidecars = sorted(DEMO.glob("*.json"))
    assert sidecars
    for sidecar in sidecars:
        source = json.loads(sidecar.read_text())["source"]
        component = components[source["title"]]
        assert component.role == "demo data"
        assert component.licence == source["licence"]
        assert component.files == tuple(DEMO / name for name in source["licence_files"])
        for name in source["licence_files"]:
            assert (DEMO / name).read_text().strip() in component.text


def test_licence_folders_name_site_packages_and_the_demo_folder(components):
    folders = about.licence_folders(components.values())
    assert SITE_PACKAGES in folders
    assert DEMO in folders


def test_the_bsd_classifier_stands_for_the_three_clause_text():
    (licence,) = installed_licence_files("dicom-anonymizer")
    text = " ".join(licence.read_text().split())
    assert "Neither the name of the copyright holder nor the names of its contributors" in text
