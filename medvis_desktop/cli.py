"""`medvis`: opens the GUI; `medvis info|layers|explain` work headless in a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medvis_desktop import __version__
from medvis_desktop.errors import MedvisError

UNITS = {"CT": "HU"}
METHODS = ("grad_cam", "deconvnet", "activation_maps")
DEMOS = ("ct", "ct3d", "mri", "mammo")
# Identifying fields are printed only when asked for (--show-patient).
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate")
UNSAFE_HELP = "allow a model that runs code or reads outside files as it loads"


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


def _load_model(args: argparse.Namespace):
    from medvis_desktop.models import load_model

    return load_model(args.model, unsafe=args.unsafe, custom_objects_file=args.custom_objects)


def _layers(args: argparse.Namespace) -> int:
    from medvis_desktop.explain import METHODS
    from medvis_desktop.models.layers import default_gradcam_layer, layer_tree

    model = _load_model(args)
    methods = {name: method.can_target for name, method in METHODS.items()}
    print(f"Model: {model.name}  ({model.count_params():,} parameters)")
    print(f"Input: {tuple(model.inputs[0].shape)}  Output: {tuple(model.outputs[0].shape)}")
    print(f"Default Grad-CAM layer: {default_gradcam_layer(model)}")

    def show(nodes) -> None:
        for node in nodes:
            targets = ",".join(name for name, why in node.blocked.items() if why is None) or "-"
            shape = "" if node.output_shape is None else str(node.output_shape)
            activation = f" {node.activation}" if node.activation not in (None, "linear") else ""
            print(
                f"{'  ' * node.depth}{node.path:<{40 - 2 * node.depth}} {node.kind:<22} {shape:<24}"
                f" {node.parameters:>10,}{activation}  [{targets}]"
            )
            show(node.children)

    show(layer_tree(model, methods))
    return 0


def _slice_range(text: str | None) -> range | None:
    if text is None:
        return None
    try:
        start, _, stop = text.partition(":")
        return range(int(start or 0), int(stop))
    except ValueError as error:
        raise MedvisError(f"--slices takes A:B (first slice, one past the last), not '{text}'") from error


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = round(width * done / max(total, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def _explain(args: argparse.Namespace) -> int:
    import numpy as np

    from medvis_desktop import imaging
    from medvis_desktop.explain import activation_maps, dead_filters
    from medvis_desktop.explain.runner import explain_volume
    from medvis_desktop.export.writer import key_slice, write_exports
    from medvis_desktop.models.card import read_card

    volume = imaging.load(args.input, series_uid=args.series)
    model = _load_model(args)
    slices = _slice_range(args.slices)
    if slices is not None and (slices.start < 0 or slices.stop > volume.shape[0] or not len(slices)):
        raise MedvisError(f"--slices {args.slices} is outside the volume's 0:{volume.shape[0]}")
    explanation = explain_volume(
        volume,
        model,
        args.method,
        card=read_card(args.model),
        layer=args.layer,
        target=args.target,
        filter=args.filter,
        slices=slices,
        progress=_progress_bar,
    )
    for assumption in explanation.assumptions:
        print(f"assumed: {assumption}", file=sys.stderr)
    if explanation.cancelled or not explanation.computed.any():
        raise MedvisError("Nothing was computed")
    features = dead = None
    if args.method == "activation_maps" and explanation.card.input_mode != "3d":
        card, computed = explanation.card, np.nonzero(explanation.computed)[0]
        key = card.slice_input(volume.voxels, [key_slice(explanation)])
        features = activation_maps(model, key, explanation.layer)[0]
        dead = dead_filters(model, card.slice_input(volume.voxels, computed), explanation.layer)
    written = write_exports(
        volume,
        explanation,
        Path(args.out),
        model_path=Path(args.model),
        input_path=Path(args.input),
        features=features,
        dead=dead,
    )
    for path in written:
        print(path)
    return 0


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    parser.add_argument("--custom-objects", help="Python file defining the model's custom layers")


def add_window_arguments(parser: argparse._ActionsContainer) -> None:
    """Options of the window itself; kept free of Qt so that `medvis info` never loads it."""
    parser.add_argument(
        "--open", metavar="PATH", help="study to open: DICOM folder, NIfTI/MHA/NRRD, .inv3, image"
    )
    parser.add_argument("--model", metavar="MODEL", help="Keras model (.keras or .h5) to open")
    parser.add_argument("--method", choices=METHODS, help="run this method once both are open")
    parser.add_argument("--layer", help='layer to explain ("outer/inner" inside nested models)')
    parser.add_argument("--target", help="class to explain: index or name from the model card")
    parser.add_argument("--slice", type=int, metavar="K", help="slice to show first (0 = the first slice)")
    parser.add_argument(
        "--screenshot", metavar="OUT.png", help="save the view once the slice's result shows, then exit"
    )
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    parser.add_argument(
        "--demo",
        choices=DEMOS,
        help="open a built-in case: a study with inserted lesions and the model trained to find them",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medvis", description=__doc__)
    parser.add_argument("--version", action="version", version=f"medvis {__version__}")
    add_window_arguments(parser.add_argument_group("the window (no subcommand)"))
    commands = parser.add_subparsers(dest="command")
    info = commands.add_parser("info", help="describe a study: series, shape, spacing, warnings")
    info.add_argument("path", help="DICOM folder, DICOMDIR or file, NIfTI/MHA/NRRD, .inv3, image")
    info.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    info.add_argument("--show-patient", action="store_true", help="also print patient name and ID")
    info.set_defaults(handler=_info)

    layers = commands.add_parser("layers", help="the model's layer tree and what each method can target")
    layers.add_argument("model", help=".keras, Keras 2 .h5, or SavedModel folder")
    _add_model_arguments(layers)
    layers.set_defaults(handler=_layers)

    explain = commands.add_parser("explain", help="explain a model on a study and write the exports")
    explain.add_argument("--model", required=True)
    explain.add_argument("--input", required=True, help="the study (as for `medvis info`)")
    explain.add_argument("--series", help="SeriesInstanceUID when the folder holds several")
    explain.add_argument("--method", required=True, choices=("grad_cam", "deconvnet", "activation_maps"))
    explain.add_argument("--layer", help="layer name, 'outer/inner' inside nested models")
    explain.add_argument("--target", type=int, help="class index (default: the positive class)")
    explain.add_argument("--filter", type=int, help="feature map (filter) index")
    explain.add_argument("--slices", help="A:B, slices A to B-1 (2D models; default all)")
    explain.add_argument("--out", required=True, help="folder for the exports")
    _add_model_arguments(explain)
    explain.set_defaults(handler=_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from medvis_desktop.gui.app import run_gui

        return run_gui(args)
    try:
        if args.command in ("layers", "explain"):
            from medvis_desktop.models.runtime import start_tensorflow

            start_tensorflow(quiet=True)
        return args.handler(args)
    except MedvisError as error:
        print(f"medvis: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
