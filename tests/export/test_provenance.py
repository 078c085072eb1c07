"""Provenance records: hashes anyone can recompute, the run's parameters, the software."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json

from medvis_desktop import __version__
from medvis_desktop.export import Provenance, sha256_of, write_provenance


def test_file_hash_is_plain_sha256(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"weights" * 1000)
    assert sha256_of(model) == hashlib.sha256(b"weights" * 1000).hexdigest()


def test_folder_hash_changes_with_any_file(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    before = sha256_of(tmp_path)
    (tmp_path / "b").write_bytes(b"3")
    assert sha256_of(tmp_path) != before


def test_record_beside_the_export(tmp_path):
    model, study = tmp_path / "m.keras", tmp_path / "ct.nii.gz"
    model.write_bytes(b"model")
    study.write_bytes(b"study")
    record = Provenance.for_run(
        "grad_cam",
        model_path=model,
        input_path=study,
        layer="block3/conv",
        target=1,
        parameters={"slices": "10:20"},
    )
    path = write_provenance(record, tmp_path / "heat.nii.gz")
    assert path.name == "heat.nii.gz.provenance.json"
    saved = json.loads(path.read_text())
    assert saved["model_sha256"] == hashlib.sha256(b"model").hexdigest()
    assert saved["input_sha256"] == hashlib.sha256(b"study").hexdigest()
    assert saved["method"] == "grad_cam" and saved["layer"] == "block3/conv" and saved["target"] == 1
    assert saved["parameters"] == {"slices": "10:20"}
    assert saved["outputs"] == ["heat.nii.gz"]
    assert saved["versions"]["tensorflow"].startswith("2.")
    assert saved["created"].endswith("+00:00")


def test_record_names_the_medvis_version(tmp_path):
    record = Provenance.for_run("grad_cam", model_path=None, input_path=None)
    saved = json.loads(write_provenance(record, tmp_path / "shot.png").read_text())
    assert saved["medvis_version"] == __version__ == importlib.metadata.version("medvis-desktop")
