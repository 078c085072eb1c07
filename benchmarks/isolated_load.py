"""Cost of `imaging.load_isolated` (child process, memory cap, time limit) against `imaging.load`.

The real Debian head CT (108×256×256) is written as a DICOM series of 108 files into a
temporary folder and loaded both ways, several times each (the first isolated load also starts
the fork server). Run: .venv/bin/python benchmarks/isolated_load.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medvis_desktop import imaging
from tests.imaging.dicom_factory import SeriesSpec, write_series

HEAD_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
REPEATS = 5


def timed(load, path: Path) -> tuple[float, imaging.Volume]:
    start = time.perf_counter()
    volume = load(path)
    return time.perf_counter() - start, volume


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        hu = imaging.load(HEAD_CT).voxels
        write_series(hu, Path(folder), SeriesSpec())
        first, _ = timed(imaging.load_isolated, Path(folder))
        for name, path in (("DICOM series, 108 files", Path(folder)), ("InVesalius .inv3", HEAD_CT)):
            direct = [timed(imaging.load, path) for _ in range(REPEATS)]
            isolated = [timed(imaging.load_isolated, path) for _ in range(REPEATS)]
            np.testing.assert_array_equal(direct[-1][1].voxels, isolated[-1][1].voxels)
            in_process = statistics.median(t for t, _ in direct)
            child = statistics.median(t for t, _ in isolated)
            print(
                f"{name}: load {in_process * 1000:.0f} ms, load_isolated {child * 1000:.0f} ms "
                f"(median of {REPEATS}), ratio {child / in_process:.2f}×"
            )
        print(f"first load_isolated (starts the fork server): {first * 1000:.0f} ms")


if __name__ == "__main__":
    main()
