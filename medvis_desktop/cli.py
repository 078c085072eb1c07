"""`medvis`: opens the GUI; `medvis info|layers|explain` work headless in a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medvis_desktop.errors import MedvisError

UNITS = {"CT": "HU"}
# Identifying fields are printed only when asked for (--show-patient).
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate")


def _info(args: argparse.Namespace) -> int:
    from medvis_desktop import imaging

    path = Path(args.path)
    volume = imaging.load(path, series_uid=args.series)
    lines = [f"Source: {path}"]
    if path.is_dir():
        listed = imaging.list_series(path)
        lines.append(f"Series: {len(listed)}")
        chosen = volume.meta.get("SeriesInstanceUID")
        for series in listed:
            mark = "*" if series.uid == chosen else " "
            lines.append(
                f"  {mark} {series.uid}  {series.modality}  {series.image_count} images "
                f"{series.rows}×{series.columns}  {series.description}"
            )
    z, y, x = volume.shape
    low, high = volume.value_range()
    unit = UNITS.get(volume.modality, "")
    lines += [
        f"Modality: {volume.modality}",
        f"Shape (z, y, x): {z} × {y} × {x}",
        "Spacing (z, y, x): " + " × ".join(f"{s:.3f}" for s in volume.spacing) + " mm",
        "Origin (LPS): " + ", ".join(f"{o:.2f}" for o in volume.origin) + " mm",
        f"Slices: {volume.plane}",
        f"Value range: {low:g} to {high:g} {unit}".rstrip(),
        "Windows: " + ", ".join(f"{w.name} {w.center:g}/{w.width:g}" for w in imaging.presets(volume)),
    ]
    lines += [
        f"{key}: {value}"
        for key, value in volume.meta.items()
        if key not in ("SeriesInstanceUID",) and (args.show_patient or key not in PATIENT_KEYS)
    ]
    lines.append(f"Warnings: {len(volume.warnings)}")
    lines += [f"  - {warning}" for warning in volume.warnings]
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medvis", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    info = commands.add_parser("info", help="describe a study: series, shape, spacing, warnings")
    info.add_argument("path", help="DICOM folder, DICOMDIR or file, NIfTI/MHA/NRRD, .inv3, image")
    info.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    info.add_argument("--show-patient", action="store_true", help="also print patient name and ID")
    info.set_defaults(handler=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except MedvisError as error:
        print(f"medvis: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
