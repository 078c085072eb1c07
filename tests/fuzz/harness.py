"""The fuzz run: cases made from (seed, family, index), loaded by worker processes, classified,
tabulated. Shared by tests/fuzz/test_fuzz.py and `python -m tests.fuzz.run`.

Outcomes: OK (a Volume with finite, positive geometry, a keras.Model, a ModelCard), REFUSED (a
MedvisError with a one-line message), FAILED (a crash, a hang past the time limit, MemoryError,
any other exception, a multi-line or empty message, a broken result, or a changed source).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import stat
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.mutations import mutate
from tests.fuzz.pool import TIME_LIMIT, Worker
from tests.fuzz.seeds import FAMILIES, FAMILY_KIND, Seed, build_seeds
from tests.fuzz.worker import FAILED, OK, REFUSED

DEFAULT_SEED = 13  # the number: the fixed sample `make test` runs
KIND_ORDER = ("image", "card", "model")


@dataclass(frozen=True)
class Case:
    family: str
    index: int
    seed_name: str
    mutation: str
    path: Path
    folder: Path  # everything of this case, removed afterwards


@dataclass
class Outcome:
    family: str
    index: int
    seed_name: str
    mutation: str
    outcome: str
    failure: str = ""
    error: str = ""
    where: str = ""
    seconds: float = 0.0

    def reproduce(self, master_seed: int) -> str:
        return (
            f"python -m tests.fuzz.run --family {self.family} --seed {master_seed} "
            f"--case {self.index} --keep DIR"
        )


@dataclass
class Report:
    master_seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    seconds_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.outcome == FAILED]


def case_rng(master_seed: int, family: str, index: int) -> random.Random:
    return random.Random(f"medvis-fuzz:{master_seed}:{family}:{index}")


def make_case(family: str, index: int, master_seed: int, seeds: list[Seed], work: Path) -> Case:
    """Case `index` of `family`: the first len(seeds) cases are the seeds unchanged."""
    rng = case_rng(master_seed, family, index)
    identity = index < len(seeds)
    seed = seeds[index] if identity else rng.choice(seeds)
    folder = work / f"{family}-{index:06d}"
    if folder.exists():
        shutil.rmtree(folder)
    path, mutation = mutate(family, seed, rng, folder, identity=identity)
    return Case(family, index, seed.name, mutation, path, folder)


# --- source integrity ------------------------------------------------------------------------

HASH_WHOLE = 64 * 2**20  # larger files (sparse junk) are fingerprinted by size and ends


def digest(path: Path) -> str:
    """A fingerprint of a file or a folder tree (names, types, link targets, contents)."""
    hasher = hashlib.sha256()
    root = path if path.is_dir() and not path.is_symlink() else None
    entries = [path] if root is None else sorted(_tree(root))
    for entry in entries:
        hasher.update(str(entry).encode())
        try:
            info = entry.lstat()
        except FileNotFoundError:
            hasher.update(b"<absent>")
            continue
        hasher.update(str(stat.S_IFMT(info.st_mode)).encode())
        if stat.S_ISLNK(info.st_mode):
            hasher.update(os.readlink(entry).encode())
        elif stat.S_ISREG(info.st_mode):
            hasher.update(str(info.st_size).encode())
            with entry.open("rb") as handle:
                if info.st_size <= HASH_WHOLE:
                    hasher.update(handle.read())
                else:
                    hasher.update(handle.read(2**20))
                    handle.seek(-(2**20), os.SEEK_END)
                    hasher.update(handle.read())
    return hasher.hexdigest()


def _tree(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            yield Path(folder) / name


# --- running -----------------------------------------------------------------------------------


def run(
    counts: dict[str, int],
    *,
    master_seed: int = DEFAULT_SEED,
    jobs: int | None = None,
    work: Path,
    cases: dict[str, list[int]] | None = None,
    keep: bool = False,
    progress: Callable[[Outcome], None] | None = None,
    time_limit: float = TIME_LIMIT,
) -> Report:
    """`counts[family]` cases of each family (or exactly `cases[family]`), `jobs` at a time."""
    started = time.monotonic()
    jobs = jobs or max(1, min(os.cpu_count() or 1, 4))
    families = tuple(f for f in FAMILIES if f in counts or (cases and f in cases))
    seeds = build_seeds(work / "seeds", families)
    report = Report(master_seed)
    for kind in KIND_ORDER:
        todo = [
            (family, index)
            for family in families
            if FAMILY_KIND[family] == kind
            for index in (cases[family] if cases and family in cases else range(counts[family]))
        ]
        if not todo:
            continue
        kind_started = time.monotonic()
        _run_kind(kind, todo, seeds, master_seed, jobs, work, keep, report, progress, time_limit)
        report.seconds_by_kind[kind] = time.monotonic() - kind_started
    order = {family: k for k, family in enumerate(FAMILIES)}
    report.outcomes.sort(key=lambda o: (order[o.family], o.index))
    report.seconds = time.monotonic() - started
    return report


def _run_kind(kind, todo, seeds, master_seed, jobs, work, keep, report, progress, time_limit) -> None:
    queue = iter(todo)
    lock, make_lock = threading.Lock(), threading.Lock()
    errors: list[BaseException] = []
    log_dir = work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    def slot(number: int) -> None:
        worker = Worker(kind, log_dir, number, time_limit=time_limit)
        try:
            while not errors:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                family, index = item
                with make_lock:  # pydicom and h5py edits are not thread-safe
                    case = make_case(family, index, master_seed, seeds[family], work / "cases")
                before = digest(case.folder)
                result = worker.run(case.path)
                outcome = Outcome(family, index, case.seed_name, case.mutation, result["outcome"])
                outcome.failure, outcome.error = result.get("failure", ""), result.get("error", "")
                outcome.where, outcome.seconds = result.get("where", ""), result.get("seconds", 0.0)
                if digest(case.folder) != before and outcome.outcome != FAILED:
                    outcome.outcome, outcome.failure = FAILED, "source-changed"
                    outcome.error = f"the input changed while loading (was {outcome.error or 'loaded'})"
                if not keep:
                    shutil.rmtree(case.folder, ignore_errors=True)
                with lock:
                    report.outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
        except BaseException as error:
            errors.append(error)
        finally:
            worker.stop()

    threads = [threading.Thread(target=slot, args=(n,), daemon=True) for n in range(min(jobs, len(todo)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --- reporting ----------------------------------------------------------------------------------


def table(report: Report) -> str:
    """Markdown: per family, how many were tried and how each ended."""
    by_family: dict[str, Counter] = defaultdict(Counter)
    for outcome in report.outcomes:
        by_family[outcome.family][outcome.outcome] += 1
    lines = [
        "| family | tried | loaded | refused with a message | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    total: Counter = Counter()
    for family in FAMILIES:
        if family not in by_family:
            continue
        counts = by_family[family]
        tried = sum(counts.values())
        total.update(counts)
        lines.append(f"| {family} | {tried:,} | {counts[OK]:,} | {counts[REFUSED]:,} | {counts[FAILED]:,} |")
    lines.append(
        f"| **all** | **{sum(total.values()):,}** | **{total[OK]:,}** | **{total[REFUSED]:,}** | "
        f"**{total[FAILED]:,}** |"
    )
    return "\n".join(lines)


_VOLATILE = [
    (re.compile(r"/[^\s:'\"()]+"), "<path>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "<hex>"),
    (re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?"), "<n>"),
]


def signature(outcome: Outcome) -> str:
    """A failure with its numbers and paths blanked: how failures group."""
    text = outcome.error
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return f"{outcome.failure}: {text[:160]}" + (f" @ {outcome.where}" if outcome.where else "")


def grouped_failures(report: Report) -> list[tuple[int, str, list[Outcome]]]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in report.failures:
        groups[signature(outcome)].append(outcome)
    return sorted(((len(v), k, v) for k, v in groups.items()), key=lambda g: -g[0])


def failures_text(report: Report, *, limit: int = 200) -> str:
    """Every failure (up to `limit`), reproducible from family, seed and case."""
    lines = []
    for outcome in report.failures[:limit]:
        lines.append(
            f"- {outcome.family} case {outcome.index} (seed file {outcome.seed_name}): {outcome.mutation}\n"
            f"  -> {outcome.failure}: {outcome.error}"
            + (f"\n     at {outcome.where}" if outcome.where else "")
        )
    if len(report.failures) > limit:
        lines.append(f"- … and {len(report.failures) - limit} more")
    return "\n".join(lines)


def markdown(report: Report, *, limit: int = 200) -> str:
    parts = [
        f"Fuzz run: master seed {report.master_seed}, {len(report.outcomes):,} inputs, "
        f"{report.seconds:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds_by_kind.items())
        + ")",
        "",
        table(report),
    ]
    groups = grouped_failures(report)
    if groups:
        parts += ["", "Failures by signature:", ""]
        for count, text, members in groups:
            families = ", ".join(sorted({m.family for m in members}))
            example = members[0]
            parts.append(f"- {count} × [{families}] `{text}` (e.g. {example.family} case {example.index})")
        parts += ["", f"Failures (reproduce one: {report.failures[0].reproduce(report.master_seed)}):", ""]
        parts.append(failures_text(report, limit=limit))
    return "\n".join(parts)
