"""A JSON record beside every export: what made it, from what, with which software."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from medvis_desktop import __version__
from medvis_desktop.export.atomic import atomic_write

PACKAGES = ("medvis-desktop", "tensorflow", "keras", "numpy", "pydicom", "SimpleITK", "pillow")
SUFFIX = ".provenance.json"
CHUNK = 1 << 20


def sha256_of(path: Path | str) -> str:
    """Hash of a file, or of every file below a folder (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class Provenance:
    """How an export was made: enough to make it again, or to question it in review."""

    method: str
    layer: str | None
    target: int | str | None
    parameters: dict[str, object]
    model_path: str | None
    model_sha256: str | None
    input_path: str | None
    input_sha256: str | None
    outputs: list[str] = field(default_factory=list)
    method_label: str | None = None  # the method's name in words: "Grad-CAM"
    # From the package itself: a frozen app may carry no distribution metadata to ask.
    medvis_version: str = __version__
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def for_run(
        cls,
        method: str,
        *,
        model_path: Path | str | None,
        input_path: Path | str | None,
        layer: str | None = None,
        target: int | str | None = None,
        parameters: dict[str, object] | None = None,
        method_label: str | None = None,
    ) -> Provenance:
        return cls(
            method=method,
            layer=layer,
            target=target,
            parameters=dict(parameters or {}),
            method_label=method_label,
            model_path=None if model_path is None else str(model_path),
            model_sha256=None if model_path is None else sha256_of(model_path),
            input_path=None if input_path is None else str(input_path),
            input_sha256=None if input_path is None else sha256_of(input_path),
        )


def write_provenance(record: Provenance, export_path: Path | str) -> Path:
    """`heatmap.nii.gz` → `heatmap.nii.gz.provenance.json` beside it (atomically, never over
    the record's input)."""
    export_path = Path(export_path)
    if export_path.name not in record.outputs:
        record.outputs.append(export_path.name)
    path = export_path.with_name(export_path.name + SUFFIX)
    with atomic_write(path, source=record.input_path) as temporary:
        temporary.write_text(json.dumps(asdict(record), indent=2, default=str) + "\n")
    return path
