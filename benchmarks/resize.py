"""arrays.resize_linear, which orders the axes, against the same resize with the axes taken in
their given order (the build before 2026-12-03).

Each case runs both in the same process, interleaved (median of ROUNDS). The cases are the
viewer's: a CT study's maps from the CT demo model's 128² input back to 512², the study's slices
down to that input, a map from a 16² layer, and a 3D model's 64³ input back to a 300 × 512²
study's grid, a quarter of it at a time.

Run: .venv/bin/python benchmarks/resize.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from explain_speed import interleaved_medians

from medvis_desktop.arrays import _resize_axis, resize_linear

CASES = {
    "maps 300×128² → 512²": ((300, 128, 128), (512, 512)),
    "slices 300×512² → 128²": ((300, 512, 512), (128, 128)),
    "layer 300×16² → 512²": ((300, 16, 16), (512, 512)),
    "3D 64³ → 75×512²": ((1, 64, 64, 64), (75, 512, 512)),
}


def in_given_order(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    result = array
    for axis, size in zip(range(array.ndim - len(shape), array.ndim), shape, strict=True):
        result = _resize_axis(result, axis, size)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"median of {args.rounds} rounds")
    for name, (source, shape) in CASES.items():
        array = rng.random(source, dtype=np.float32)
        median = interleaved_medians(
            {
                "ordered": functools.partial(resize_linear, array, shape),
                "given": functools.partial(in_given_order, array, shape),
            },
            args.rounds,
        )
        ratio = median["ordered"] / median["given"]
        ordered, given = median["ordered"], median["given"]
        print(f"  {name:24s} {ordered:6.3f} s vs in the given order {given:6.3f} s  ({ratio:4.2f}×)")


if __name__ == "__main__":
    main()
