"""The peer side of benchmarks/explain_methods.py: tf-keras-vis and Xplique on the same models,
inputs and parameters, each method timed as a multiple of a compiled forward pass measured in
this same process.

It runs in its own virtual environment (Xplique 2.x pins TensorFlow <= 2.20; the project has a
newer one), never imports medvis_desktop, and is started by benchmarks/explain_methods.py:

    .venv-peers/bin/python benchmarks/peers/run_peers.py WORKDIR

WORKDIR holds what the medvis side wrote: config.json (methods, rounds, parameters), each
model as a .keras file, its inputs and its outputs (.npy). The answer goes to
WORKDIR/peers.json. Set up the environment with (see requirements.txt for why --no-deps):

    python3.11 -m venv .venv-peers
    .venv-peers/bin/pip install --no-deps -r benchmarks/peers/requirements.txt
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as medvis_desktop runs TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

Run = Callable[[], object]
# (logits model, inputs, one-hot targets, layer, config, model config) -> the timed call
Peers = Callable[..., Run]


def tkv_score(target: int, count: int):
    from tf_keras_vis.utils.scores import CategoricalScore

    return CategoricalScore([target] * count)


def tkv_cam(kind: str) -> Peers:
    def build(model, x, onehot, layer, cfg, mcfg):
        import tf_keras_vis.gradcam as gradcam
        import tf_keras_vis.gradcam_plus_plus as gradcam_plus_plus
        import tf_keras_vis.layercam as layercam

        cls = {
            "Gradcam": gradcam.Gradcam,
            "GradcamPlusPlus": gradcam_plus_plus.GradcamPlusPlus,
            "Layercam": layercam.Layercam,
        }[kind]
        # The model already scores logits (softmax taken off below): no modifier, no clone.
        explainer = cls(model, model_modifier=None, clone=False)
        score = tkv_score(cfg["target"], len(x))
        return lambda: explainer(score, x, penultimate_layer=layer, normalize_cam=False)

    return build


def tkv_scorecam(model, x, onehot, layer, cfg, mcfg):
    from tf_keras_vis.scorecam import Scorecam

    explainer = Scorecam(model, model_modifier=None, clone=False)
    score = tkv_score(cfg["target"], len(x))
    size = cfg["params"]["batch_size"]
    return lambda: explainer(score, x, penultimate_layer=layer, batch_size=size, normalize_cam=False)


def tkv_saliency(smooth: bool) -> Peers:
    def build(model, x, onehot, layer, cfg, mcfg):
        from tf_keras_vis.saliency import Saliency

        explainer = Saliency(model, model_modifier=None, clone=False)
        score = tkv_score(cfg["target"], len(x))
        noise = cfg["params"]["noise"]
        count = cfg["params"]["samples"] if smooth else 0
        # Signed, per channel, not normalised: the raw gradient, as medvis returns it.
        return lambda: explainer(
            score,
            x,
            smooth_samples=count,
            smooth_noise=noise,
            gradient_modifier=None,
            keepdims=True,
            normalize_map=False,
        )

    return build


def xplique(kind: str, **options: object) -> Peers:
    def build(model, x, onehot, layer, cfg, mcfg):
        import xplique.attributions as attributions

        cls = getattr(attributions, kind)
        size = max(cfg["params"]["batch_size"], len(x))
        kwargs: dict[str, object] = {"batch_size": size}
        for key, value in options.items():
            kwargs[key] = resolve(value, layer, cfg, mcfg)
        explainer = cls(model, **kwargs)
        inputs = tf.constant(x)
        targets = tf.constant(onehot)
        return lambda: np.asarray(explainer.explain(inputs, targets))

    return build


def resolve(value: object, layer: str, cfg: dict, mcfg: dict) -> object:
    """Option values named after the shared configuration: "$layer", "$steps", "$window"..."""
    if not (isinstance(value, str) and value.startswith("$")):
        return value
    key = value[1:]
    if key == "layer":
        return layer
    if key in ("window", "stride"):
        return mcfg["occlusion"][key]
    return cfg["params"][key]


# medvis method -> its counterparts: (name, builder). Methods not here have none in either
# toolkit (HiResCAM, XGrad-CAM, Eigen-CAM, Guided Grad-CAM).
PEERS: dict[str, list[tuple[str, Peers]]] = {
    "grad_cam": [
        ("tf-keras-vis Gradcam", tkv_cam("Gradcam")),
        ("Xplique GradCAM", xplique("GradCAM", conv_layer="$layer")),
    ],
    "grad_cam_plus_plus": [
        ("tf-keras-vis GradcamPlusPlus", tkv_cam("GradcamPlusPlus")),
        ("Xplique GradCAMPP", xplique("GradCAMPP", conv_layer="$layer")),
    ],
    "layer_cam": [("tf-keras-vis Layercam", tkv_cam("Layercam"))],
    "score_cam": [("tf-keras-vis Scorecam", tkv_scorecam)],
    "gradient": [("tf-keras-vis Saliency", tkv_saliency(False)), ("Xplique Saliency", xplique("Saliency"))],
    "input_x_gradient": [("Xplique GradientInput", xplique("GradientInput"))],
    "integrated_gradients": [
        ("Xplique IntegratedGradients", xplique("IntegratedGradients", steps="$steps", baseline_value=0.0))
    ],
    "smooth_grad": [
        ("tf-keras-vis Saliency smooth_samples", tkv_saliency(True)),
        ("Xplique SmoothGrad", xplique("SmoothGrad", nb_samples="$samples", noise="$noise")),
    ],
    "occlusion": [
        (
            "Xplique Occlusion",
            xplique("Occlusion", patch_size="$window", patch_stride="$stride", occlusion_value=0.0),
        )
    ],
    "guided_backprop": [("Xplique GuidedBackprop", xplique("GuidedBackprop"))],
}


def short(error: BaseException) -> str:
    """The error in one line; for a failure inside a tf.function, its last line (the error
    itself, after TensorFlow's 'in user code:' trace), with the peer's file and line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0] == "in user code:":
        where = next((line for line in lines if line.startswith("File ")), "")
        where = where.split("site-packages/")[-1].split(", in ")[0].replace('", line ', ":")
        return f"{lines[-1][:240]} ({where})"
    return f"{type(error).__name__}: {' '.join(lines)}"[:300]


def logits_model(path: Path) -> keras.Model:
    """The model with its output softmax/sigmoid taken off, as medvis scores (and as both
    toolkits' docs advise): the same change as tf-keras-vis's ReplaceToLinear."""
    model = keras.models.load_model(path, compile=False)
    model.layers[-1].activation = keras.activations.linear
    return model


def bench_model(name: str, mcfg: dict, cfg: dict, workdir: Path) -> dict:
    model = keras.models.load_model(workdir / mcfg["file"], compile=False)
    linear = logits_model(workdir / mcfg["file"])
    batch = np.load(workdir / mcfg["inputs"])
    expected = np.load(workdir / mcfg["outputs"])
    got = np.asarray(model(tf.constant(batch), training=False))
    scale = float(np.max(np.abs(expected))) or 1.0
    check = {
        "max_abs_diff": float(np.max(np.abs(got - expected))),
        "max_rel_diff": float(np.max(np.abs(got - expected)) / scale),
        "argmax_equal": bool(np.array_equal(got.argmax(-1), expected.argmax(-1))),
    }
    print(f"[peers] {name}: outputs against the medvis side's: {check}", flush=True)
    forward = tf.function(lambda x: model(x, training=False))
    sizes = sorted({mcfg["batch"], mcfg["heavy_batch"]})
    runs: dict[str, Run] = {}
    heavy_runs: set[str] = set()
    for size in sizes:
        x = tf.constant(batch[:size])
        runs[f"forward@{size}"] = lambda x=x: forward(x).numpy()
    entries: dict[str, list[dict]] = {}
    owner: dict[str, tuple[str, int]] = {}
    classes = int(model.outputs[0].shape[-1])
    for method in cfg["methods"]:
        heavy = method in cfg["heavy"]
        size = mcfg["heavy_batch"] if heavy else mcfg["batch"]
        x = batch[:size]
        onehot = np.eye(classes, dtype=np.float32)[[cfg["target"]] * size]
        entries[method] = []
        for peer, build in PEERS.get(method, []):
            try:
                run = build(linear, x, onehot, mcfg["layer"], cfg, mcfg)
            except Exception as error:  # a peer that cannot even be set up on this model
                print(f"[peers] {name}: {peer} cannot be set up: {short(error)}", flush=True)
                entries[method].append({"peer": peer, "error": short(error)})
                continue
            key = f"{method}|{peer}"
            runs[key] = run
            owner[key] = (method, size)
            if heavy:
                heavy_runs.add(key)
    times = interleaved(runs, heavy_runs, cfg["rounds"], label=f"[peers] {name}")
    forward_ms = {size: statistics.median(times[f"forward@{size}"]) * 1000 for size in sizes}
    for key, (method, size) in owner.items():
        peer = key.split("|", 1)[1]
        values = times.get(key)
        if isinstance(values, BaseException):
            entries[method].append({"peer": peer, "error": short(values)})
        else:
            ms = statistics.median(values) * 1000
            entries[method].append({"peer": peer, "ms": ms, "batch": size, "ratio": ms / forward_ms[size]})
    return {"check": check, "forward_ms": {str(k): v for k, v in forward_ms.items()}, "methods": entries}


def interleaved(runs: dict[str, Run], heavy: set[str], rounds: int, label: str) -> dict:
    """Each run once to compile (not the heavy ones: their first round includes it, and the
    median drops it), then `rounds` rounds of every run in turn. A run that raises is dropped
    and its error kept in place of its times."""
    times: dict[str, object] = {key: [] for key in runs}
    for key, run in runs.items():
        if key in heavy:
            continue
        try:
            run()
        except Exception as error:
            print(f"{label}: {key} failed: {short(error)}", flush=True)
            traceback.print_exc(limit=-3)
            times[key] = error
    for index in range(rounds):
        started_round = time.perf_counter()
        for key, run in runs.items():
            if isinstance(times[key], BaseException):
                continue
            started = time.perf_counter()
            try:
                run()
            except Exception as error:
                print(f"{label}: {key} failed: {short(error)}", flush=True)
                traceback.print_exc(limit=-3)
                times[key] = error
                continue
            times[key].append(time.perf_counter() - started)
        print(
            f"{label}: round {index + 1}/{rounds} in {time.perf_counter() - started_round:.0f} s", flush=True
        )
    return times


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for package in ("tensorflow", "keras", "numpy", "tf-keras-vis", "xplique", "scipy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def main() -> None:
    workdir = Path(sys.argv[1])
    keras.utils.disable_interactive_logging()  # tf-keras-vis's predict() progress bars
    # tf-keras-vis calls the model with a list of one input: Keras says so on every call.
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    cfg = json.loads((workdir / "config.json").read_text())
    keras.utils.set_random_seed(cfg.get("seed", 0))  # SmoothGrad's noise
    answer: dict = {"versions": versions(), "config": cfg, "models": {}}
    print(f"[peers] {answer['versions']}", flush=True)
    for name, mcfg in cfg["models"].items():
        try:
            answer["models"][name] = bench_model(name, mcfg, cfg, workdir)
        except Exception as error:
            traceback.print_exc()
            answer["models"][name] = {"error": short(error)}
    (workdir / "peers.json").write_text(json.dumps(answer, indent=1))


if __name__ == "__main__":
    main()
