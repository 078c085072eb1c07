"""The lock files agree with pyproject.toml: `make lock` must be run after a dependency changes.

Each requirement of pyproject.toml is pinned in its lock at a version it admits, every pin
carries hashes, the runtime lock holds everything its packages need (walked through the
installed distributions' own metadata), and the development lock repeats its pins exactly.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME_LOCK = REPO / "packaging" / "requirements.lock"
DEV_LOCK = REPO / "packaging" / "requirements-dev.lock"
# The platform the locks are made for (Makefile LOCK_TARGET).
TARGET = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
          "python_version": "3.11", "implementation_name": "cpython", "os_name": "posix"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a lock written by uv pip compile --generate-hashes."""
    found: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            found[current] = (match[2], [])
        elif current and (hashed := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            found[current][1].append(hashed[1])
    return found


def applies(requirement: Requirement, extras: tuple[str, ...] = ("",)) -> bool:
    return requirement.marker is None or any(
        requirement.marker.evaluate({**TARGET, "extra": extra}) for extra in extras
    )


def project_requirements(*extras: str) -> list[Requirement]:
    listed = [Requirement(text) for text in PYPROJECT["dependencies"]]
    for extra in extras:
        for text in PYPROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(PYPROJECT["name"]):
                listed += project_requirements(*requirement.extras)  # medvis-desktop[data]
            else:
                listed.append(requirement)
    return listed


@pytest.mark.parametrize(
    ("lock", "extras"), [(RUNTIME_LOCK, ()), (DEV_LOCK, ("test", "package"))], ids=["runtime", "dev"]
)
def test_every_requirement_is_pinned_at_a_version_it_admits(lock: Path, extras: tuple[str, ...]) -> None:
    locked = pins(lock)
    for requirement in project_requirements(*extras):
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {lock.name}: run make lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, which pyproject's '{requirement}' refuses: run make lock"
        )


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_every_pin_has_hashes(lock: Path) -> None:
    for name, (_, hashes) in pins(lock).items():
        assert hashes, f"{name} has no hash in {lock.name}"


def test_the_dev_lock_repeats_the_runtime_pins() -> None:
    dev = pins(DEV_LOCK)
    for name, pinned in pins(RUNTIME_LOCK).items():
        assert dev.get(name) == pinned, name


def test_the_runtime_lock_is_closed_under_the_packages_own_requirements() -> None:
    """What each locked package asks for (its installed metadata, read here) is locked too."""
    locked = pins(RUNTIME_LOCK)
    wanted = [requirement for requirement in project_requirements() if applies(requirement)]
    seen = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} (needed at run time) is not in {RUNTIME_LOCK.name}"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), requirement
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        distribution = importlib.metadata.distribution(name)
        assert distribution.version == locked[name][0], f"{name}: installed {distribution.version}"
        for text in distribution.requires or []:
            needed = Requirement(text)
            if applies(needed, ("", *requirement.extras)):
                wanted.append(needed)


def test_keras_floor_has_the_safe_mode_fixes() -> None:
    keras = next(r for r in project_requirements() if r.name == "keras")
    assert not keras.specifier.contains("3.13.2") and keras.specifier.contains("3.14.0")
