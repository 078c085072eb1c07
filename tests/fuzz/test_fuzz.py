"""A fixed-seed sample of about 1,000 mutated inputs of every format medvis reads (issue #13).

Every input is loaded in a worker process with a memory cap and a 10 s limit, through the public
entry points (imaging.load, models.load_model, models.card.read_card). Each must end as a loaded
result with sane geometry or a one-line refusal; anything else fails this test, which names the
family, case, seed file and mutation of each failure (rerun one with the command it prints).
Longer runs: python -m tests.fuzz.run --n 10000 (see tests/fuzz/run.py).
"""

from __future__ import annotations

import pytest

from tests.fuzz import conftest
from tests.fuzz.harness import DEFAULT_SEED, markdown, run, table

# Inputs per family: about 1,000 in all, in about 3 minutes on 2 busy cores. Model loads cost
# about 0.5 s each (TensorFlow) and image loads about 0.1 s, hence fewer models.
SAMPLE = {
    "dicom": 180,
    "dicom_series": 100,
    "dicomdir": 60,
    "nifti": 90,
    "mha": 70,
    "nrrd": 70,
    "raster": 80,
    "inv3": 60,
    "card": 90,
    "keras": 110,
    "h5": 90,
}


@pytest.mark.fuzz
def test_fixed_seed_sample_never_crashes_hangs_or_misleads(tmp_path):
    report = run(SAMPLE, master_seed=DEFAULT_SEED, work=tmp_path)
    text = markdown(report)
    conftest.SUMMARY.append(text)
    print(text)
    assert len(report.outcomes) == sum(SAMPLE.values())
    assert not report.failures, f"{len(report.failures)} input(s) failed\n\n{table(report)}\n\n{text}"


def test_later_mutations_of_a_series_leave_a_huge_sparse_file_alone(tmp_path):
    """Seed 31's case 1512 hung the run here: a mutation after series_junk read its 8 GiB file."""
    from tests.fuzz.mutations import MUTABLE_BYTES, _files

    with (tmp_path / "JUNK00").open("wb") as handle:
        handle.truncate(8 * 2**30)  # sparse: no disk used
    image = tmp_path / "IM00000"
    image.write_bytes(b"\0" * MUTABLE_BYTES)
    assert _files(tmp_path) == [image]


def test_a_decoder_panic_inside_a_mutation_leaves_the_file_as_it_is(tmp_path):
    """Seed 31's case 7431 stopped the 10,000-case run: series_mixed_size decoded an RLE file
    an earlier mutation had damaged, and pylibjpeg-rle panicked (a BaseException) in the harness."""
    report = run({}, master_seed=31, work=tmp_path, cases={"dicom_series": [7431]}, jobs=1)
    (outcome,) = report.outcomes
    assert outcome.index == 7431 and not report.failures
