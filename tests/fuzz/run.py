"""Long fuzz runs: python -m tests.fuzz.run --n 10000 [--family dicom] [--seed S] [--out report.md]

--n is per family. Prints the markdown table (families × loaded / refused / failed), the
failures grouped by signature, and every failure with the command that reproduces it:
--family F --seed S --case I runs that one input again, and --keep DIR leaves it in DIR.
Exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.harness import DEFAULT_SEED, markdown, run
from tests.fuzz.seeds import FAMILIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="inputs per family (default 1000)")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="only this family (repeatable)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"master seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--case", type=int, action="append", help="only this case number (repeatable)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: the CPU count)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--keep", type=Path, help="keep the inputs (seeds and cases) in this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    families = args.family or list(FAMILIES)
    counts = {family: args.n for family in families}
    cases = {family: args.case for family in families} if args.case else None
    total = sum(len(args.case) if args.case else args.n for _ in families)
    done = {"n": 0, "failed": 0}
    started = time.monotonic()

    def progress(outcome) -> None:
        done["n"] += 1
        done["failed"] += outcome.outcome == "FAILED"
        if not args.quiet and (done["n"] % 25 == 0 or done["n"] == total):
            rate = done["n"] / max(time.monotonic() - started, 1e-9)
            print(
                f"\r{done['n']:,}/{total:,} inputs, {done['failed']} failed, {rate:.1f}/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run(
            counts,
            master_seed=args.seed,
            jobs=args.jobs,
            work=args.keep,
            cases=cases,
            keep=True,
            progress=progress,
        )
    else:
        with tempfile.TemporaryDirectory(prefix="medvis-fuzz-") as work:
            report = run(
                counts, master_seed=args.seed, jobs=args.jobs, work=Path(work), cases=cases, progress=progress
            )
    if not args.quiet:
        print(file=sys.stderr)
    text = markdown(report, limit=10**9 if args.out else 200)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
