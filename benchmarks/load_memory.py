"""Peak memory and time to load a 512×512×600 CT series (issue: at most ~1.5× the voxel bytes).

The series is written from the real Debian head CT (in-plane ×2, slices repeated to 600), into
a temporary folder, then loaded twice: once under tracemalloc (peak of Python and numpy
allocations), once plainly for the time. Run: .venv/bin/python benchmarks/load_memory.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medvis_desktop import imaging
from tests.imaging.dicom_factory import SeriesSpec, write_series

HEAD_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
SLICES = 600


def write_large_series(slices: int, folder: Path) -> np.ndarray:
    """A 512×512 CT series of `slices` files from the real head CT (in-plane ×2, its slices
    repeated), written into `folder`; gives back its HU."""
    ct = imaging.load(HEAD_CT).voxels
    slab = np.repeat(np.repeat(ct, 2, axis=1), 2, axis=2)
    hu = np.concatenate([slab] * (slices // len(slab) + 1))[:slices]
    started = time.perf_counter()
    write_series(hu, folder, SeriesSpec(pixel_spacing=(0.478, 0.478), slice_step=0.5))
    print(f"wrote {slices} slices of 512×512 in {time.perf_counter() - started:.1f} s")
    return hu


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        hu = write_large_series(SLICES, Path(folder))
        tracemalloc.start()
        volume = imaging.load(folder)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert np.array_equal(volume.voxels, hu)
        voxel_bytes = volume.voxels.nbytes
        del volume
        started = time.perf_counter()
        imaging.load(folder)
        elapsed = time.perf_counter() - started
    print(f"voxel bytes        {voxel_bytes / 2**20:8.1f} MiB")
    print(f"peak while loading {peak / 2**20:8.1f} MiB  = {peak / voxel_bytes:.2f}× the voxels")
    print(f"load time          {elapsed:8.2f} s   = {elapsed / SLICES * 1000:.1f} ms per slice")


if __name__ == "__main__":
    main()
