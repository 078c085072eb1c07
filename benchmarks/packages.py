"""The packages of `make package`: size of each, time to install each, and cold start of the
frozen app (.deb) against the virtual-environment app (offline bundle), side by side in one run.

    make package && sudo .venv/bin/python benchmarks/packages.py [--runs 3]

Needs root (dpkg, dropping the page cache), Xvfb and xdotool. Prints the numbers, asserts
nothing. "Window shown" is the first moment X knows a window titled medvis; "demo result" is the
exit of `medvis --demo ct --screenshot`, which saves the picture once the first slice's Grad-CAM
is on screen. Before each start the page cache is dropped (a cold start), and the two apps take
turns so that a busy moment of this shared machine falls on both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import medvis_desktop

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
VERSION = medvis_desktop.__version__
ARTIFACTS = {
    "wheel": DIST / f"medvis_desktop-{VERSION}-py3-none-any.whl",
    "offline bundle": DIST / f"medvis-{VERSION}-linux-x86_64.tar.gz",
    ".deb (frozen app)": DIST / f"medvis_{VERSION}_amd64.deb",
}
DISPLAY = ":93"


def mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def cold_start(medvis: Path, home: Path) -> tuple[float, float]:
    """Seconds from launch to the window shown, and to the CT demo's result saved."""
    drop_caches()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "DISPLAY": DISPLAY, "LANG": "C.UTF-8"}
    start = time.perf_counter()
    errors = (home / "stderr.txt").open("w+")
    process = subprocess.Popen(
        [str(medvis), "--demo", "ct", "--screenshot", str(home / "shot.png")],
        env=env, stdout=subprocess.DEVNULL, stderr=errors,
    )  # fmt: skip
    shown = None
    while process.poll() is None:
        if shown is None:
            found = subprocess.run(
                ["xdotool", "search", "--name", "^medvis"], env=env, capture_output=True
            ).returncode == 0  # fmt: skip
            if found:
                shown = time.perf_counter() - start
        time.sleep(0.02)
    result = time.perf_counter() - start
    if process.returncode != 0:
        errors.seek(0)
        raise RuntimeError(f"{medvis} --demo ct failed ({process.returncode}): {errors.read()[-2000:]}")
    return shown if shown is not None else float("nan"), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    for path in ARTIFACTS.values():
        if not path.exists():
            raise SystemExit(f"{path} is missing: run make package first")
    if os.geteuid() != 0:
        raise SystemExit("run as root: dpkg and dropping the page cache need it")

    print("artifact sizes")
    for label, path in ARTIFACTS.items():
        print(f"  {label:<20} {mib(path.stat().st_size):>10}")

    work = Path(tempfile.mkdtemp(prefix="medvis-bench-"))
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1600x1000x24"], stderr=subprocess.DEVNULL)
    try:
        with tarfile.open(ARTIFACTS["offline bundle"]) as archive:
            archive.extractall(work, filter="tar")
        bundle = work / f"medvis-{VERSION}-linux-x86_64"
        prefix = work / "opt" / "medvis"
        install = [
            str(bundle / "install.sh"), "--prefix", str(prefix), "--bin-dir", str(work / "bin"),
            "--share-dir", str(work / "share"), "--python", "/usr/bin/python3.11",
        ]  # fmt: skip
        drop_caches()
        bundle_seconds = timed(install)
        drop_caches()
        deb_seconds = timed(["dpkg", "-i", str(ARTIFACTS[".deb (frozen app)"])])
        print("install (page cache dropped first)")
        for label, seconds, folder in (
            ("offline bundle", bundle_seconds, prefix),
            (".deb", deb_seconds, Path("/opt/medvis")),
        ):
            print(f"  {label:<20} {seconds:6.1f} s   {mib(folder_size(folder)):>10} installed")

        apps = {"venv (bundle)": work / "bin" / "medvis", "frozen (.deb)": Path("/usr/bin/medvis")}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
        for _ in range(runs):
            for name, medvis in apps.items():
                home = work / "home" / name.split()[0]
                home.mkdir(parents=True, exist_ok=True)
                times[name].append(cold_start(medvis, home))
        print(f"cold start, median of {runs} (min–max)")
        print(f"  {'':<16} {'window shown':>22} {'CT demo result':>24}")
        medians = {}
        for name, samples in times.items():
            shown, result = zip(*samples, strict=True)
            medians[name] = (statistics.median(shown), statistics.median(result))
            print(
                f"  {name:<16} {medians[name][0]:6.2f} s ({min(shown):.2f}–{max(shown):.2f})"
                f"   {medians[name][1]:6.2f} s ({min(result):.2f}–{max(result):.2f})"
            )
        frozen, venv = medians["frozen (.deb)"], medians["venv (bundle)"]
        print(f"  frozen / venv    {frozen[0] / venv[0]:6.2f}×{'':<16}{frozen[1] / venv[1]:6.2f}×")
    finally:
        subprocess.run(["dpkg", "--purge", "medvis"], capture_output=True)
        xvfb.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
