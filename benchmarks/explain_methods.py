"""Every explanation method against its peers in tf-keras-vis and Xplique, side by side.

Each method is timed as a multiple of one compiled forward pass of the same model on the same
batch, measured in the same process and run: a warm-up call each (compiling), then --rounds
rounds in which every contender runs once in turn (interleaved, so that load from other
processes on this shared machine falls on all of them alike), and the median of the rounds.
The peers run in their own virtual environment (.venv-peers: Xplique 2.x pins TensorFlow
<= 2.20, older than the project's), as a subprocess after the medvis side, so each side
measures its own forward pass and only the ratios are compared.

Models, written once by this script to a temporary folder (.keras files) with their inputs and
outputs, and loaded by the peer side, which checks it gets the same outputs:
  vgg16  keras.applications.VGG16(weights=None): random seeded weights, nothing downloaded,
         224×224×3 (--size), batch 8 (--batch), target class 1, layer block5_conv3
  cnn3d  a small seeded Conv3D classifier on 64³×1 patches (--patch), batch 8, target 1,
         layer conv3 (16³×64)

Multi-pass methods run on --heavy-batch images (default 1), against a forward pass of that
many, since on 2 CPU cores a batch of 8 would take minutes per call:
  score_cam             one forward pass per channel and image (block5_conv3: 512), 32 per pass
  occlusion             one per window position: VGG16 window 32 stride 16 (13² = 169 per
                        image), 3D window 16 stride 8 (7³ = 343); 32 occluded images per pass
  integrated_gradients  50 steps, baseline 0, 32 images per pass
  smooth_grad           20 noisy samples, noise σ 0.2 (inputs are in [0, 1]), 32 per pass
Both sides explain the target's logit: the peers get a copy of the model whose output softmax
is made linear (what tf-keras-vis's ReplaceToLinear does), with their map normalisation off
where they have a switch; benchmarks/peers/run_peers.py maps each method to its peers.
The heavy methods skip the warm-up call: their first round includes the tracing (a second or two against
tens of seconds), and the median of three drops it. Whole run at the defaults: about 65 minutes
on 2 busy cores (medvis 30, peers 35); --methods, --models and --size 112 cut it down, and
--peers-json reuses the peers' answer of an earlier run (--keep) made with the same settings.

Methods are looked up as medvis_desktop.explain.<name>, else in any module of that package;
one not found (not written yet) is skipped with a note.

Run: make bench-methods
  or nice -n 5 .venv/bin/python benchmarks/explain_methods.py [--rounds 3] [--size 224]
     [--methods grad_cam,score_cam] [--models vgg16,cnn3d] [--no-peers | --peers-json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from medvis_desktop.models.runtime import start_tensorflow

REPO = Path(__file__).resolve().parents[1]
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
PEERS_SCRIPT = REPO / "benchmarks" / "peers" / "run_peers.py"
TARGET = 1
SEED = 0
METHODS = (
    "grad_cam",
    "grad_cam_plus_plus",
    "hires_cam",
    "layer_cam",
    "xgrad_cam",
    "eigen_cam",
    "score_cam",
    "occlusion",
    "gradient",
    "input_x_gradient",
    "integrated_gradients",
    "smooth_grad",
    "guided_backprop",
    "guided_grad_cam",
)
HEAVY = ("score_cam", "occlusion", "integrated_gradients", "smooth_grad")
PARAMS = {"batch_size": 32, "steps": 50, "samples": 20, "noise": 0.2}
# Keyword names a medvis method may give each shared parameter (the first one it has is used).
ALIASES = {
    "batch_size": ("batch_size",),
    "steps": ("steps",),
    "samples": ("samples", "n_samples", "nb_samples", "sample_count", "count"),
    "noise": ("noise", "sigma", "noise_level", "stdev", "std", "noise_std"),
    "window": ("window", "window_size", "patch_size"),
    "stride": ("stride", "patch_stride", "step"),
    "baseline": ("baseline",),
}
METHOD_PARAMS = {
    "score_cam": ("batch_size",),
    "occlusion": ("window", "stride", "baseline", "batch_size"),
    "integrated_gradients": ("steps", "baseline", "batch_size"),
    "smooth_grad": ("samples", "noise", "batch_size"),
}

Run = Callable[[], object]


def vgg16(size: int) -> keras.Model:
    keras.utils.set_random_seed(SEED)
    return keras.applications.VGG16(weights=None, input_shape=(size, size, 3))


def cnn3d(patch: int) -> keras.Model:
    keras.utils.set_random_seed(SEED)
    layers = keras.layers
    inputs = keras.Input((patch, patch, patch, 1), name="patch")
    x = layers.Conv3D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling3D(2, name="pool1")(x)
    x = layers.Conv3D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling3D(2, name="pool2")(x)
    x = layers.Conv3D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    outputs = layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cnn3d")


def find_method(name: str) -> tuple[Callable | None, str]:
    """medvis_desktop.explain.<name>, else <name> in any module of the package: (function, where)
    or (None, why not)."""
    problems = []
    try:
        package = importlib.import_module("medvis_desktop.explain")
        if callable(getattr(package, name, None)):
            return getattr(package, name), f"medvis_desktop.explain.{name}"
    except Exception as error:  # another helper may be half-way through __init__.py
        problems.append(f"medvis_desktop.explain: {type(error).__name__}")
        package = None
    folder = Path(__file__).resolve().parents[1] / "medvis_desktop" / "explain"
    for module in pkgutil.iter_modules([str(folder)]):
        try:
            loaded = importlib.import_module(f"medvis_desktop.explain.{module.name}")
        except Exception as error:
            problems.append(f"{module.name}: {type(error).__name__}")
            continue
        if callable(getattr(loaded, name, None)) and not inspect.isclass(getattr(loaded, name)):
            return getattr(loaded, name), f"medvis_desktop.explain.{module.name}.{name}"
    why = "not found" + (f" ({'; '.join(problems)})" if problems else "")
    return None, why


def medvis_call(
    function: Callable, method: str, model: keras.Model, batch: np.ndarray, mcfg: dict
) -> tuple[Run, str]:
    """A call of `function` on the batch with the shared parameters, by its signature's names;
    and a note of the parameters given (or left at the method's default)."""
    signature = inspect.signature(function)
    names = list(signature.parameters)
    values = {"layer": mcfg["layer"], "target": TARGET}
    positional: list[object] = [model, batch]
    for name in names[2:]:
        parameter = signature.parameters[name]
        if parameter.kind is parameter.KEYWORD_ONLY or parameter.default is not parameter.empty:
            break
        if name not in values:
            raise TypeError(f"needs '{name}', which this benchmark does not know")
        positional.append(values[name])
    wanted = dict(
        PARAMS, window=mcfg["occlusion"]["window"], stride=mcfg["occlusion"]["stride"], baseline=0.0
    )
    kwargs: dict[str, object] = {}
    notes = []
    for shared in METHOD_PARAMS.get(method, ()):
        keyword = next((alias for alias in ALIASES[shared] if alias in signature.parameters), None)
        if keyword is None:
            notes.append(f"{shared}: default")
        else:
            kwargs[keyword] = wanted[shared]
            notes.append(f"{keyword}={wanted[shared]}")
    return (lambda: function(*positional, **kwargs)), ", ".join(notes)


def interleaved(runs: dict[str, Run], heavy: set[str], rounds: int, label: str) -> dict[str, object]:
    """A warm-up call each (not the heavy ones), then `rounds` rounds of every run in turn:
    the times of each, or the error that dropped it."""
    times: dict[str, object] = {key: [] for key in runs}
    for key, run in runs.items():
        if key not in heavy:
            try:
                run()
            except Exception as error:
                print(f"{label}: {key} failed: {type(error).__name__}: {error}", flush=True)
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
                print(f"{label}: {key} failed: {type(error).__name__}: {error}", flush=True)
                traceback.print_exc(limit=-3)
                times[key] = error
                continue
            times[key].append(time.perf_counter() - started)
        print(
            f"{label}: round {index + 1}/{rounds} in {time.perf_counter() - started_round:.0f} s", flush=True
        )
    return times


def bench_medvis(
    name: str, model: keras.Model, batch: np.ndarray, mcfg: dict, methods: list[str], rounds: int
) -> dict:
    forward = tf.function(lambda x: model(x, training=False))
    sizes = sorted({mcfg["batch"], mcfg["heavy_batch"]})
    runs: dict[str, Run] = {}
    for size in sizes:
        x = tf.constant(batch[:size])
        runs[f"forward@{size}"] = lambda x=x: forward(x).numpy()
    entries: dict[str, dict] = {}
    for method in methods:
        function, where = find_method(method)
        if function is None:
            entries[method] = {"skipped": where}
            continue
        size = mcfg["heavy_batch"] if method in HEAVY else mcfg["batch"]
        try:
            run, notes = medvis_call(function, method, model, batch[:size], mcfg)
        except TypeError as error:
            entries[method] = {"error": str(error)}
            continue
        runs[method] = run
        entries[method] = {"batch": size, "params": notes, "from": where}
    heavy = {method for method in methods if method in HEAVY}
    times = interleaved(runs, heavy, rounds, label=f"[medvis] {name}")
    forward_ms = {size: statistics.median(times[f"forward@{size}"]) * 1000 for size in sizes}
    for method, entry in entries.items():
        values = times.get(method)
        if isinstance(values, BaseException):
            entry["error"] = f"{type(values).__name__}: {values}".replace("\n", " ")[:300]
        elif values:
            entry["ms"] = statistics.median(values) * 1000
            entry["ratio"] = entry["ms"] / forward_ms[entry["batch"]]
    return {"forward_ms": {str(k): v for k, v in forward_ms.items()}, "methods": entries}


def run_peers(workdir: Path, python: Path) -> dict | None:
    print(f"[peers] {python} {PEERS_SCRIPT.relative_to(REPO)} {workdir}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(python), str(PEERS_SCRIPT), str(workdir)], check=False)
    print(f"[peers] finished in {time.perf_counter() - started:.0f} s, exit {done.returncode}", flush=True)
    answer = workdir / "peers.json"
    return json.loads(answer.read_text()) if answer.exists() else None


def reused_peers(path: Path, config: dict) -> dict:
    """An earlier run's peers.json, if its settings are this run's (its config.json beside it
    when the file does not hold them). Ratios stay comparable across runs: each side is
    measured against its own forward pass."""
    answer = json.loads(path.read_text())
    earlier = answer.get("config") or json.loads((path.parent / "config.json").read_text())
    same = ("seed", "target", "params", "heavy")
    model_keys = ("layer", "batch", "heavy_batch", "occlusion", "title")
    differ = [key for key in same if earlier.get(key) != config[key]]
    for name, mcfg in config["models"].items():
        old = earlier["models"].get(name, {})
        differ += [f"{name}.{key}" for key in model_keys if old.get(key) != mcfg[key]]
    missing = set(config["methods"]) - set(earlier["methods"])
    if differ or missing:
        sys.exit(
            f"{path} was made with other settings ({', '.join(differ + sorted(missing))}): "
            "run the peers again (leave out --peers-json)."
        )
    return answer


def table(name: str, title: str, mine: dict, theirs: dict | None, peers_note: str) -> None:
    print(f"\n{title}")
    forward = ", ".join(f"batch {k}: {v:.0f} ms" for k, v in mine["forward_ms"].items())
    print(f"medvis compiled forward pass: {forward}")
    if theirs and "forward_ms" in theirs:
        forward = ", ".join(f"batch {k}: {v:.0f} ms" for k, v in theirs["forward_ms"].items())
        print(f"peers  compiled forward pass: {forward}  (outputs vs medvis: {theirs['check']})")
    elif theirs and "error" in theirs:
        print(f"peers failed on this model: {theirs['error']}")
    header = (
        f"| {'method':<21}| batch | medvis × forward | fastest peer × forward "
        f"| {'peer name':<37}| medvis speed-up |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    notes = []
    for method, entry in mine["methods"].items():
        batch = str(entry.get("batch", ""))
        if "ratio" in entry:
            medvis = f"{entry['ratio']:.2f}"
        elif "skipped" in entry:
            medvis = "skipped"
            notes.append(f"{method}: skipped, {entry['skipped']}")
        else:
            medvis = "failed"
            notes.append(f"{method}: medvis failed: {entry.get('error', '?')}")
        if entry.get("params"):
            notes.append(f"{method}: medvis {entry['params']}")
        peer_cell, ratio_cell, speedup = "—", "—", "—"
        if theirs is None:
            peer_cell = peers_note
        elif "methods" in theirs:
            found = theirs["methods"].get(method, [])
            timed = [item for item in found if "ratio" in item]
            for item in found:
                if "error" in item:
                    notes.append(f"{method}: {item['peer']} failed: {item['error']}")
                elif len(timed) > 1:
                    notes.append(f"{method}: {item['peer']} {item['ratio']:.2f} × forward")
            if timed:
                best = min(timed, key=lambda item: item["ratio"])
                ratio_cell, peer_cell = f"{best['ratio']:.2f}", best["peer"]
                if "ratio" in entry:
                    speedup = f"{best['ratio'] / entry['ratio']:.2f}×"
            elif found:
                peer_cell = "all failed (notes)"
            else:
                peer_cell = "none in tf-keras-vis/Xplique"
        print(
            f"| {method:<21}| {batch:>5} | {medvis:>16} | {ratio_cell:>22} | {peer_cell:<37}| {speedup:>15} |"
        )
    for note in notes:
        print(f"  - {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=224, help="VGG16 input side")
    parser.add_argument("--patch", type=int, default=64, help="3D patch side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heavy-batch", type=int, default=1, help=f"images for {', '.join(HEAVY)}")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--models", default="vgg16,cnn3d", help="comma-separated: vgg16, cnn3d")
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--peers-json",
        type=Path,
        help="reuse the peers.json of an earlier run (kept with --keep) made with the same settings, "
        "instead of running the peers again (~35 min at the defaults)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (models, JSON)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods: {', '.join(sorted(unknown))}")
    device = start_tensorflow(quiet=True)
    workdir = Path(tempfile.mkdtemp(prefix="medvis-bench-methods-"))
    try:
        run(args, methods, str(device), workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir)


def run(args: argparse.Namespace, methods: list[str], device: str, workdir: Path) -> None:
    rng = np.random.default_rng(SEED)
    builders = {
        "vgg16": (
            lambda: vgg16(args.size),
            (args.size, args.size, 3),
            "block5_conv3",
            {"window": 32, "stride": 16},
            f"VGG16 {args.size}×{args.size}×3, layer block5_conv3",
        ),
        "cnn3d": (
            lambda: cnn3d(args.patch),
            (args.patch,) * 3 + (1,),
            "conv3",
            {"window": 16, "stride": 8},
            f"3D CNN {args.patch}³×1, layer conv3",
        ),
    }
    config = {
        "seed": SEED,
        "target": TARGET,
        "rounds": args.rounds,
        "methods": methods,
        "heavy": list(HEAVY),
        "params": PARAMS,
        "models": {},
    }
    models = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        build, shape, layer, occlusion, title = builders[name]
        model = build()
        batch = rng.random((args.batch, *shape), dtype=np.float32)
        model.save(workdir / f"{name}.keras")
        np.save(workdir / f"{name}_inputs.npy", batch)
        np.save(workdir / f"{name}_outputs.npy", np.asarray(model(tf.constant(batch), training=False)))
        mcfg = {
            "file": f"{name}.keras",
            "inputs": f"{name}_inputs.npy",
            "outputs": f"{name}_outputs.npy",
            "layer": layer,
            "batch": args.batch,
            "heavy_batch": min(args.heavy_batch, args.batch),
            "occlusion": occlusion,
            "title": title,
        }
        config["models"][name] = mcfg
        models[name] = (model, batch)
    (workdir / "config.json").write_text(json.dumps(config, indent=1))
    reused = reused_peers(args.peers_json, config) if args.peers_json else None  # checked first
    print(f"{device}; models and inputs in {workdir}", flush=True)

    mine = {}
    for name, (model, batch) in models.items():
        keras.utils.set_random_seed(SEED)  # SmoothGrad's noise, if the method draws from Keras
        mine[name] = bench_medvis(name, model, batch, config["models"][name], methods, args.rounds)
    (workdir / "medvis.json").write_text(json.dumps(mine, indent=1))

    theirs, peers_note = None, ""
    if reused is not None:
        theirs = reused
        print(f"[peers] reused {args.peers_json}", flush=True)
    elif args.no_peers:
        peers_note = "not run (--no-peers)"
    elif not args.peers_python.exists():
        peers_note = f"not run: no {args.peers_python}"
    else:
        theirs = run_peers(workdir, args.peers_python)
        if theirs is None:
            peers_note = "peer script failed (see its output above)"
    if theirs is None:
        print(
            f"\nPeers {peers_note}. Set them up with:\n"
            f"  python3.11 -m venv .venv-peers && "
            f".venv-peers/bin/pip install --no-deps -r benchmarks/peers/requirements.txt"
        )
    else:
        rounds = theirs.get("config", {}).get("rounds", "?")
        source = f", reused from {args.peers_json}" if reused is not None else ""
        print(f"\npeer side: {theirs['versions']}; median of {rounds} rounds{source}")
    print(
        f"medvis side: tensorflow {tf.__version__}, keras {keras.__version__}, {device}; "
        f"median of {args.rounds} rounds; target class {TARGET}"
    )
    for name in models:
        mcfg = config["models"][name]
        title = (
            f"{mcfg['title']}: batch {mcfg['batch']}, heavy methods batch {mcfg['heavy_batch']}; "
            f"occlusion window {mcfg['occlusion']['window']} stride {mcfg['occlusion']['stride']}"
        )
        table(name, title, mine[name], None if theirs is None else theirs["models"].get(name), peers_note)
    print(
        "\nratio = the method's median time / the compiled forward pass's on the same batch, in the "
        "same process; medvis speed-up = fastest peer's ratio / medvis's ratio (> 1: medvis is faster)."
    )


if __name__ == "__main__":
    main()
