"""The worker side: one process loads one input at a time through medvis's public entry points
and says how it ended. Runs under a memory cap; the parent enforces the time limit.

Imported by the parent only for `worker_main`'s name: nothing heavy at module level.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

OK, REFUSED, FAILED = "OK", "REFUSED", "FAILED"
CARD_SUFFIX = ".medvis.json"
_loads = [0]


def worker_main(conn: Any, kind: str, memory_bytes: int, log_path: str) -> None:
    """Loop: receive (case id, path), answer with an outcome dict; 'None' ends the loop."""
    os.setpgrp()  # the parent ends this worker and anything it started as one group
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import warnings

    warnings.simplefilter("ignore")
    loader = _prepare(kind)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        os.ftruncate(2, 0)
        os.lseek(2, 0, os.SEEK_SET)
        conn.send(run_one(loader, kind, Path(task)))


def _prepare(kind: str):
    """Import what the loads need once, so that the time limit covers loading only."""
    if kind == "image":
        import SimpleITK as sitk

        from medvis_desktop import imaging

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        return imaging.load
    if kind == "model":
        import tensorflow as tf

        from medvis_desktop import models

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        return models.load_model
    from medvis_desktop.models import card

    return card.read_card


def run_one(loader: Any, kind: str, path: Path) -> dict[str, Any]:
    """Load `path` and classify: OK, REFUSED (a one-line MedvisError) or FAILED."""
    try:
        return _classify(loader, kind, path)
    finally:
        if kind == "model":
            import keras

            # Keras's global state (layer names, graphs) reset; the garbage collector, which
            # takes about half a second with TensorFlow loaded, runs every few loads only.
            keras.backend.clear_session(free_memory=False)
            _loads[0] += 1
            if _loads[0] % 20 == 0:
                gc.collect()


def _classify(loader: Any, kind: str, path: Path) -> dict[str, Any]:
    from medvis_desktop.errors import MedvisError

    try:
        if kind == "card":
            model_path = path.with_name(path.name[: -len(CARD_SUFFIX)] + ".keras")
            result = loader(model_path)
        else:
            result = loader(path)
    except MedvisError as error:
        message = str(error)
        if not message.strip():
            return _failed("empty-message", error)
        if len(message.splitlines()) > 1:
            return _failed("multi-line", error)
        return {"outcome": REFUSED, "error": f"{type(error).__name__}: {message[:300]}"}
    except MemoryError as error:
        return _failed("memory", error)
    except BaseException as error:  # PanicException, SystemExit, RecursionError...
        return _failed("exception", error)
    try:
        problem = _check_result(kind, result)
    except BaseException as error:
        return _failed("check", error)
    if problem:
        return {"outcome": FAILED, "failure": "bad-result", "error": problem, "where": ""}
    return {"outcome": OK, "error": ""}


def _failed(failure: str, error: BaseException) -> dict[str, Any]:
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    lines = str(error).strip().splitlines()
    first = lines[0][:300] if lines else ""
    suffix = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return {
        "outcome": FAILED,
        "failure": failure,
        "error": f"{name}: {first}{suffix}",
        "where": _where(error),
    }


def _where(error: BaseException) -> str:
    """The innermost frame in medvis, and the innermost frame of all: where to look first."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "medvis_desktop" in f.filename]
    places = []
    for frame in (ours[-1] if ours else None, frames[-1] if frames else None):
        if frame is None:
            continue
        name = frame.filename
        for marker in ("medvis_desktop/", "site-packages/", "lib/python3"):
            if marker in name:
                name = name[name.index(marker) :].replace("site-packages/", "")
                break
        place = f"{name}:{frame.lineno} {frame.name}"
        if place not in places:
            places.append(place)
    return " <- ".join(reversed(places))


def _finite(values: Any) -> bool:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(array)))


def _check_result(kind: str, result: Any) -> str:
    """What is wrong with a loaded result ('' when nothing)."""
    if kind == "image":
        import numpy as np

        from medvis_desktop.imaging import Volume

        if not isinstance(result, Volume):
            return f"imaging.load returned {type(result).__name__}, not a Volume"
        voxels = result.voxels
        if not isinstance(voxels, np.ndarray) or voxels.ndim != 3 or voxels.size == 0:
            return f"voxels of shape {getattr(voxels, 'shape', None)}"
        if len(result.spacing) != 3 or not _finite(result.spacing) or min(result.spacing) <= 0:
            return f"spacing {result.spacing} is not finite and positive"
        if len(result.origin) != 3 or not _finite(result.origin):
            return f"origin {result.origin} is not finite"
        direction = np.asarray(result.direction, dtype=np.float64)
        if direction.shape != (3, 3) or not _finite(direction):
            return "direction is not a finite 3×3 matrix"
        if abs(np.linalg.det(direction)) < 1e-6:
            return "direction is singular (axes parallel or zero)"
        if voxels.dtype.kind == "f":
            # NaN voxels may be meant (outside a brain mask); an infinite one, or no finite
            # value at all, is an overflow or a NaN/inf rescale that got through: min/max
            # windowing and every intensity mapping break on it.
            infinite = int(np.count_nonzero(np.isinf(voxels)))
            if infinite or not np.any(np.isfinite(voxels)):
                what = f"{infinite:,} infinite" if infinite else "no finite"
                return f"voxel values: {what} of {voxels.size:,}"
        for window in result.windows:
            if not (math.isfinite(window.center) and math.isfinite(window.width) and window.width > 0):
                return f"window {window.name!r} is {window.center}/{window.width}"
        return ""
    if kind == "model":
        import keras

        if not isinstance(result, keras.Model):
            return f"load_model returned {type(result).__name__}, not a keras.Model"
        return ""
    from medvis_desktop.models.card import ModelCard

    if not isinstance(result, ModelCard):
        return f"read_card returned {type(result).__name__}, not a ModelCard"
    numbers = [
        result.intensity.center,
        result.intensity.width,
        result.intensity.scale,
        result.intensity.offset,
    ]
    if not _finite(numbers):
        return f"intensity numbers not finite: {numbers}"
    if not all(isinstance(n, int) and n > 0 for n in result.input_shape):
        return f"input_shape {result.input_shape}"
    return ""


if __name__ == "__main__":  # python -m tests.fuzz.worker KIND PATH: one load, in this process
    loader = _prepare(sys.argv[1])
    print(run_one(loader, sys.argv[1], Path(sys.argv[2])))
