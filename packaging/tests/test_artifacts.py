"""`make package-test`: every artifact of `make package`, installed as an IT department would
install it, then run with the network cut, the Debian data folders hidden and the checkout out of
sight, so that whatever runs can only use what the package carries.

Needs root (dpkg, and namespaces to cut the network and hide folders), xvfb-run and the
artifacts in dist/ (`make package`). The tests' own reference values come from this checkout's
development environment, never from the installed app.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import medvis_desktop
from medvis_desktop import imaging
from medvis_desktop.demo import cases
from medvis_desktop.explain.runner import explain_volume
from medvis_desktop.models import load_model
from medvis_desktop.models.card import read_card
from tests.export.ct_study import write_ct_study
from tests.gui.conftest import screen_samples

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
VERSION = medvis_desktop.__version__
WHEEL = DIST / f"medvis_desktop-{VERSION}-py3-none-any.whl"
BUNDLE = DIST / f"medvis-{VERSION}-linux-x86_64.tar.gz"
DEB = DIST / f"medvis_{VERSION}_amd64.deb"
# Hidden from every installed run: what the app must not read at run time.
HIDDEN = (
    Path("/usr/share/doc/invesalius-examples"),
    Path("/usr/share/mricron"),
    REPO,
)
DEMO_SLICE = cases.CASES["ct"].first_slice
DEMO_LEGEND_LINES = 4  # method and layer, study and slice, model, the truth outline
TIMEOUT_S = 600

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="package tests install system-wide: run as root")


def isolated(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`command` with no network, the HIDDEN folders empty, and a clean environment."""
    hide = " && ".join(f"mount -t tmpfs none {path}" for path in HIDDEN if path.exists())
    script = f'{hide} && exec "$@"'
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": kwargs.pop("home", os.environ.get("HOME", "/root")),
        "LANG": "C.UTF-8",
    }
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        cwd=kwargs.pop("cwd", "/tmp"),
        **kwargs,
    )


def require(path: Path) -> Path:
    assert path.exists(), f"{path} is missing: run make package first"
    return path


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Files a user would open, outside the checkout (which the installed runs cannot see)."""
    import pydicom.data

    folder = tmp_path_factory.mktemp("inputs")
    found = {}
    for label, name in {
        "jpeg2000": "MR2_J2KR.dcm",
        "rle": "MR_small_RLE.dcm",
        "jpeg_ls": "MR_small_jpeg_ls_lossless.dcm",
        "jpeg_baseline": "SC_rgb_jpeg_dcmtk.dcm",
        "jpeg_lossless": "JPEG-LL.dcm",
    }.items():
        found[label] = Path(shutil.copy(pydicom.data.get_testdata_file(name), folder / name))
    volume, _ = cases.load_case("ct")[:2]
    found["study"] = folder / "head.nii.gz"
    imaging.save(imaging.Volume(volume.voxels[56:60], spacing=volume.spacing, modality="CT"), found["study"])
    found["keras2_model"] = Path(shutil.copy(REPO / "tests/models/fixtures/nested_2d.h5", folder / "k2.h5"))
    hu = np.round(volume.voxels[56:60]).astype(np.int16)
    found["dicom_series"] = write_ct_study(hu, folder / "ct").folder
    return found


@pytest.fixture(scope="session")
def bundle_install(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundle")
    with tarfile.open(require(BUNDLE)) as archive:
        archive.extractall(root, filter="tar")
    folder = root / f"medvis-{VERSION}-linux-x86_64"
    home = root / "home"
    home.mkdir()
    places = {"prefix": root / "opt" / "medvis", "bin": root / "bin", "share": root / "share"}
    done = isolated(
        [str(folder / "install.sh"), "--prefix", str(places["prefix"]), "--bin-dir", str(places["bin"]),
         "--share-dir", str(places["share"]), "--python", python311()],
        home=str(home),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return {**places, "folder": folder, "home": home, "medvis": places["bin"] / "medvis"}


@pytest.fixture(scope="session")
def deb_install() -> dict[str, Path]:
    listed = subprocess.run(["dpkg-query", "-W", "medvis"], capture_output=True, text=True)
    assert listed.returncode != 0, "a medvis package is installed already: dpkg --purge medvis first"
    done = subprocess.run(["dpkg", "-i", str(require(DEB))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    yield {"prefix": Path("/opt/medvis"), "medvis": Path("/usr/bin/medvis"), "share": Path("/usr/share")}
    subprocess.run(["dpkg", "--purge", "medvis"], capture_output=True, check=True)


@pytest.fixture(params=["bundle", "deb"])
def installed(request) -> dict[str, Path]:
    return request.getfixturevalue(f"{request.param}_install")


def python311() -> str:
    """The system's CPython 3.11, as on a Debian 12 workstation."""
    assert Path("/usr/bin/python3.11").exists(), "install the Debian packages python3.11 and python3.11-venv"
    return "/usr/bin/python3.11"


# --- the wheel -------------------------------------------------------------------------------


def test_the_wheel_carries_the_resources_and_licence() -> None:
    names = set(zipfile.ZipFile(require(WHEEL)).namelist())
    for case in cases.CASES.values():
        assert f"medvis_desktop/resources/models/{case.model_file}" in names
        assert f"medvis_desktop/resources/models/{case.model_path.stem}.medvis.json" in names
    for name in ("ct_head.nii.gz", "ct_head_lesions.nii.gz", "ct_head.json", "GPL-2.txt"):
        assert f"medvis_desktop/resources/demo/{name}" in names
    assert "medvis_desktop/resources/models/evaluation.json" in names
    assert f"medvis_desktop-{VERSION}.dist-info/licenses/LICENSE" in names


# --- each installed app -------------------------------------------------------------------------


def test_version(installed, tmp_path) -> None:
    # Started from a folder holding another medvis_desktop (a checkout, say), also on PYTHONPATH.
    decoy = tmp_path / "medvis_desktop"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy medvis_desktop was imported')\n")
    done = isolated([str(installed["medvis"]), "--version"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"medvis {VERSION}"


@pytest.mark.parametrize("kind", ["jpeg2000", "rle", "jpeg_ls", "jpeg_baseline", "jpeg_lossless"])
def test_info_decodes_compressed_dicom(installed, inputs, kind) -> None:
    done = isolated([str(installed["medvis"]), "info", str(inputs[kind])])
    assert done.returncode == 0, done.stderr
    expected = imaging.load(inputs[kind]).shape
    assert f"Shape (z, y, x): {' × '.join(map(str, expected))}" in done.stdout


def test_explain_a_keras2_h5_model(installed, inputs, tmp_path) -> None:
    out = tmp_path / "out"
    done = isolated(
        [str(installed["medvis"]), "explain", "--model", str(inputs["keras2_model"]),
         "--input", str(inputs["study"]), "--method", "grad_cam", "--out", str(out)],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    heat = next(out.glob("*.nii.gz"))
    assert imaging.load(heat).shape == imaging.load(inputs["study"]).shape
    record = json.loads(heat.with_name(heat.name + ".provenance.json").read_text())
    assert record["medvis_version"] == VERSION
    assert record["parameters"]["device"].startswith("CPU: ")  # no GPU driver here: it starts on the CPU


def test_explain_writes_deidentified_dicom_results(installed, inputs, tmp_path) -> None:
    # highdicom (and its tables of the standard) and the de-identification table, as packaged.
    out = tmp_path / "dicom"
    done = isolated(
        [str(installed["medvis"]), "explain", "--model", str(inputs["keras2_model"]),
         "--input", str(inputs["dicom_series"]), "--method", "grad_cam", "--out", str(tmp_path / "out"),
         "--dicom-out", str(out), "--deidentify", "--pseudonym", "P-001"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    written = {path.name.split("_")[0]: pydicom.dcmread(path) for path in out.glob("*.dcm")}
    assert sorted(written) == ["CT", "PM", "SC", "SEG"]
    assert len(list(out.glob("CT_*.dcm"))) == 4 and written["PM"].NumberOfFrames == 4
    assert {ds.PatientID for ds in written.values()} == {"P-001"}
    assert {ds.PatientIdentityRemoved for ds in written.values()} == {"YES"}


def test_the_ct_demo_screenshot_shows_the_head_with_its_heat_map(installed, tmp_path) -> None:
    shot = tmp_path / "demo.png"
    done = isolated(
        ["xvfb-run", "-a", str(installed["medvis"]), "--demo", "ct", "--screenshot", str(shot)],
        home=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # What the map of this slice is, by this checkout's own engine.
    volume, mask, model_path, case = cases.load_case("ct")
    heat = explain_volume(
        volume, load_model(model_path), case.method, card=read_card(model_path), layer=case.layer,
        slices=[DEMO_SLICE],
    ).maps[DEMO_SLICE]  # fmt: skip
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    rows, columns, pixels = screen_samples(shot, volume, DEMO_LEGEND_LINES)
    colourful = np.abs(np.diff(pixels, axis=1)).sum(axis=1) > 20
    sampled = heat[rows, columns]
    assert colourful[sampled > 0.5].mean() > 0.9  # the heat map where the map is high
    tissue = volume.voxels[DEMO_SLICE][rows, columns] > 0
    brain = tissue & (sampled < 0.05) & ~mask[DEMO_SLICE][rows, columns]
    grey = pixels[brain & ~colourful, 0]
    assert grey.size > 200 and grey.std() > 5  # the head CT itself, in grey
    assert colourful[brain].mean() < 0.02  # and no heat where the map is low


def test_a_nifti_study_opens_in_the_window_through_a_child_process(installed, inputs, tmp_path) -> None:
    """The window reads NIfTI (SimpleITK) in a capped child process from a fork server: in the
    frozen app that child is the medvis executable itself, which must recognise it."""
    shot = tmp_path / "study.png"
    command = [str(installed["medvis"]), "--open", str(inputs["study"]), "--screenshot", str(shot)]
    done = isolated(["xvfb-run", "-a", *command], home=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # the CT slices, not an empty view


def test_the_qt_platform_plugin_finds_every_library(installed) -> None:
    plugin = next(installed["prefix"].rglob("platforms/libqxcb.so"))
    done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
    assert "not found" not in done.stdout, done.stdout


# --- the bundle's installer ------------------------------------------------------------------


def test_the_bundle_puts_medvis_and_its_desktop_entry_in_place(bundle_install) -> None:
    entry = bundle_install["share"] / "applications" / "medvis.desktop"
    assert f"Exec={bundle_install['medvis']} %F" in entry.read_text()
    assert (bundle_install["share"] / "mime" / "packages" / "medvis-nifti.xml").exists()
    assert list((bundle_install["share"] / "icons" / "hicolor").rglob("medvis.png"))
    assert (bundle_install["prefix"] / "current").resolve().name == VERSION


def test_reinstalling_over_an_older_version_keeps_settings_and_removes_the_old(bundle_install) -> None:
    prefix, home = bundle_install["prefix"], bundle_install["home"]
    settings = home / ".config" / "medvis" / "medvis_desktop.ini"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("[recent]\nvolumes=/data/study1\n")
    (prefix / VERSION).rename(prefix / "0.0.9")  # as an older installation would lie
    (prefix / "current").unlink()
    (prefix / "current").symlink_to("0.0.9")
    done = isolated(
        [str(bundle_install["folder"] / "install.sh"), "--prefix", str(prefix), "--bin-dir",
         str(bundle_install["bin"]), "--share-dir", str(bundle_install["share"]), "--python", python311()],
        home=str(home),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert settings.read_text() == "[recent]\nvolumes=/data/study1\n"
    assert sorted(p.name for p in prefix.iterdir() if p.is_dir() and not p.is_symlink()) == [VERSION]
    assert isolated([str(bundle_install["medvis"]), "--version"]).stdout.strip() == f"medvis {VERSION}"


def run_installer(
    bundle_install, tmp_path, *options: str, before: str = "", personality: str = "x86_64"
) -> subprocess.CompletedProcess:
    """install.sh into a fresh prefix under tmp_path, after the shell commands `before`, on a
    machine that `uname -m` says is `personality`."""
    install = bundle_install["folder"] / "install.sh"
    command = f'{before} exec "{install}" --bin-dir "{tmp_path}/bin" --share-dir "{tmp_path}/share" "$@"'
    return subprocess.run(
        ["setarch", personality, "unshare", "--net", "--mount", "sh", "-c", command, "sh", *options],
        capture_output=True, text=True, timeout=TIMEOUT_S,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip


def test_a_python_other_than_cpython_311_is_refused_with_nothing_written(bundle_install, tmp_path) -> None:
    other = next(other_pythons(), None)
    assert other, "no CPython other than 3.11 on this machine to try the installer with"
    done = run_installer(bundle_install, tmp_path, "--prefix", str(tmp_path / "medvis"), "--python", other)
    assert done.returncode == 1
    refused = r"is CPython 3\.1[023], but the wheels in this bundle are built for CPython 3\.11"
    assert re.search(refused, done.stderr)
    assert "nothing was installed" in done.stderr
    assert not (tmp_path / "medvis").exists() and not (tmp_path / "bin").exists()


def test_another_platform_is_refused_with_nothing_written(bundle_install, tmp_path) -> None:
    # setarch makes uname report a 32-bit x86 machine to the installer and all it runs.
    prefix = tmp_path / "medvis"
    done = run_installer(bundle_install, tmp_path, "--prefix", str(prefix), "--python", python311(),
                         personality="i686")  # fmt: skip
    assert done.returncode == 1
    assert "this bundle is for Linux on x86_64; this machine is Linux i686" in done.stderr
    assert "nothing was installed" in done.stderr
    assert not prefix.exists() and not (tmp_path / "bin").exists()


def other_pythons():
    """CPython interpreters of other minor versions that really run (pyenv's shims may not)."""
    names = ("python3.12", "python3.13", "python3.10")
    candidates = [shutil.which(name) for name in names]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[023]*/bin/python3.1[023]")))
    for candidate in filter(None, candidates):
        check = "import sys; print(sys.version_info[:2] != (3, 11))"
        done = subprocess.run([candidate, "-c", check], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == "True":
            yield candidate


def test_missing_system_libraries_are_named_with_nothing_written(bundle_install, tmp_path) -> None:
    # With an empty library cache, no shared library can be found.
    done = run_installer(
        bundle_install, tmp_path, "--prefix", str(tmp_path / "medvis"), "--python", python311(),
        before="mount --bind /dev/null /etc/ld.so.cache &&",
    )  # fmt: skip
    assert done.returncode == 1
    assert "sudo apt-get install" in done.stderr and "libxcb-cursor0" in done.stderr
    assert not (tmp_path / "medvis").exists()


def test_no_write_access_is_one_clear_message(bundle_install, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    done = run_installer(
        bundle_install, tmp_path, "--prefix", str(locked / "medvis"), "--python", python311(),
        before=f"mount -t tmpfs -o ro none {locked} &&",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"no write access to {locked / 'medvis'}" in done.stderr
    assert not (tmp_path / "bin").exists()


def test_uninstall_removes_everything_but_the_settings(tmp_path, bundle_install) -> None:
    prefix = tmp_path / "medvis"
    done = run_installer(bundle_install, tmp_path, "--prefix", str(prefix), "--python", python311())
    assert done.returncode == 0, done.stderr
    settings = tmp_path / ".config" / "medvis" / "medvis_desktop.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text("[view]\nlayout=three\n")
    removed = subprocess.run([str(prefix / "uninstall.sh")], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    assert not prefix.exists() and not (tmp_path / "bin" / "medvis").exists()
    assert not list((tmp_path / "share").rglob("medvis*"))
    assert settings.exists()


# --- the Debian package ----------------------------------------------------------------------


def test_the_deb_declares_the_qt_system_libraries_and_installs_its_desktop_files() -> None:
    control = subprocess.run(["dpkg-deb", "-f", str(require(DEB))], capture_output=True, text=True).stdout
    depends = re.search(r"^Depends: (.*)$", control, re.M)[1]
    for package in ("libegl1", "libgl1", "libfontconfig1", "libxcb-cursor0", "libxkbcommon-x11-0"):
        assert package in depends
    listing = subprocess.run(["dpkg-deb", "-c", str(DEB)], capture_output=True, text=True).stdout
    for path in (
        "./usr/bin/medvis",
        "./usr/share/applications/medvis.desktop",
        "./usr/share/mime/packages/medvis-nifti.xml",
        "./usr/share/icons/hicolor/scalable/apps/medvis.svg",
        "./usr/share/doc/medvis/copyright",
    ):
        assert path in listing


def test_the_desktop_entry_is_valid(installed) -> None:
    entry = installed["share"] / "applications" / "medvis.desktop"
    done = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def older_deb(folder: Path) -> Path:
    """A medvis 0.0.9 package as an earlier release would lie on the workstation."""
    root = folder / "medvis-0.0.9"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "opt" / "medvis").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "opt" / "medvis" / "medvis").write_text("#!/bin/sh\necho medvis 0.0.9\n")
    (root / "opt" / "medvis" / "medvis").chmod(0o755)
    (root / "opt" / "medvis" / "only-in-0.0.9").write_text("left by the older release\n")
    (root / "usr" / "bin" / "medvis").symlink_to("../../opt/medvis/medvis")
    (root / "DEBIAN" / "control").write_text(
        "Package: medvis\nVersion: 0.0.9\nArchitecture: amd64\nMaintainer: medvis <medvis@example.org>\n"
        "Description: an older medvis\n"
    )
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(folder)], check=True,
                   capture_output=True)  # fmt: skip
    return folder / "medvis_0.0.9_amd64.deb"


def test_the_deb_upgrades_an_older_release_keeps_settings_and_purges_cleanly(deb_install, tmp_path) -> None:
    home = tmp_path / "home"
    settings = home / ".config" / "medvis" / "medvis_desktop.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text("[recent]\nvolumes=/data/study1\n")

    subprocess.run(["dpkg", "--purge", "medvis"], check=True, capture_output=True)
    for path in ("/opt/medvis", "/usr/bin/medvis", "/usr/share/applications/medvis.desktop",
                 "/usr/share/mime/packages/medvis-nifti.xml", "/usr/share/doc/medvis"):  # fmt: skip
        assert not Path(path).exists(), f"{path} is left after dpkg --purge"

    subprocess.run(["dpkg", "-i", str(older_deb(tmp_path))], check=True, capture_output=True)
    assert isolated(["/usr/bin/medvis", "--version"]).stdout.strip() == "medvis 0.0.9"
    done = subprocess.run(["dpkg", "-i", str(DEB)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Preparing to unpack" in done.stdout and "over (0.0.9)" in done.stdout
    assert not Path("/opt/medvis/only-in-0.0.9").exists()
    assert isolated(["/usr/bin/medvis", "--version"], home=str(home)).stdout.strip() == f"medvis {VERSION}"
    assert settings.read_text() == "[recent]\nvolumes=/data/study1\n"
