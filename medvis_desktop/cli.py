"""`medvis`: opens the GUI; `medvis info|layers|methods|explain|evaluate|send|query|retrieve` run headless."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from medvis_desktop import __version__
from medvis_desktop.errors import MedvisError

UNITS = {"CT": "HU"}
# explain.METHODS' names, repeated so that building the parser loads no TensorFlow (a test keeps
# them equal).
METHODS = (
    "activation_maps",
    "grad_cam",
    "deconvnet",
    "grad_cam_plus_plus",
    "hires_cam",
    "layer_cam",
    "xgrad_cam",
    "score_cam",
    "eigen_cam",
    "gradient",
    "input_x_gradient",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "smooth_grad",
    "occlusion",
)
DEMOS = ("ct", "ct3d", "mri", "mammo")
# Identifying fields are printed only when asked for (--show-patient).
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate")
UNSAFE_HELP = "allow a model that runs code or reads outside files as it loads"
# Defaults of dicomnet.DEFAULT_AE and export.writer.DEFAULT_SEG_FRACTION, repeated here so that
# building the parser loads neither pynetdicom nor the exporters (a test keeps them equal).
CALLING_AE = "MEDVIS"
SEG_FRACTION = 0.5
# DICOM date matching (PS3.4 C.2.2.2.5): a date, or a range with either end open.
DATE_RANGE = re.compile(r"^(\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8})$")


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


def _slice_range(text: str | None, depth: int) -> range | None:
    """--slices A:B of a volume of `depth` slices, None for all of them."""
    if text is None:
        return None
    try:
        start, _, stop = text.partition(":")
        slices = range(int(start or 0), int(stop))
    except ValueError as error:
        raise MedvisError(f"--slices takes A:B (first slice, one past the last), not '{text}'") from error
    if slices.start < 0 or slices.stop > depth or not len(slices):
        raise MedvisError(
            f"--slices {text} selects no slice of the volume's 0:{depth}: give A:B with 0 ≤ A < B ≤ {depth}"
        )
    return slices


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = round(width * done / max(total, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def _method_params(method: str, given: list[str]) -> dict[str, object]:
    """--param KEY=VALUE options, parsed and checked by the method's own declaration."""
    from medvis_desktop.explain import METHODS as DECLARED

    declared = {param.name: param for param in DECLARED[method].params}
    values: dict[str, object] = {}
    for text in given:
        key, sep, value = text.partition("=")
        if not sep:
            raise MedvisError(f"--param takes KEY=VALUE, not '{text}'")
        if key not in declared:
            offered = ", ".join(declared) or "none"
            raise MedvisError(f"{method} has no parameter '{key}'; its parameters: {offered}")
        values[key] = declared[key].parse(value)
    return values


def _methods(args: argparse.Namespace) -> int:
    from medvis_desktop.explain import METHODS as DECLARED

    for name, method in DECLARED.items():
        needs = [
            word for word, used in (("layer", method.uses_layer), ("target", method.uses_target)) if used
        ]
        print(f"{name}: {method.label} ({method.kind}; takes {', '.join(needs) or 'no layer or target'})")
        for param in method.params:
            choices = f" one of {', '.join(param.choices)};" if param.choices else ""
            unit = f" {param.unit}" if param.unit else ""
            print(f"    --param {param.name}=…{choices} default {param.default}{unit}. {param.help}".rstrip())
    return 0


def _explain(args: argparse.Namespace) -> int:
    import numpy as np

    from medvis_desktop import imaging
    from medvis_desktop.explain.runner import explain_volume
    from medvis_desktop.explain.slice_inputs import SliceInputs, feature_mosaic
    from medvis_desktop.export.writer import dicom_results_missing, key_slice, write_exports
    from medvis_desktop.models.card import read_card

    volume = imaging.load(args.input, series_uid=args.series)
    model = _load_model(args)
    slices = _slice_range(args.slices, volume.shape[0])
    if args.deidentify and args.dicom_out is None:
        raise MedvisError("--deidentify applies to the DICOM results: give --dicom-out DIR too")
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
        params=_method_params(args.method, args.param or []),
        region=args.region,
    )
    for assumption in explanation.assumptions:
        print(f"assumed: {assumption}", file=sys.stderr)
    if explanation.cancelled or not explanation.computed.any():
        raise MedvisError("Nothing was computed")
    features = dead = None
    if args.method == "activation_maps":
        inputs = SliceInputs.of(explanation.card, volume.spacing, explanation)
        computed, key = np.nonzero(explanation.computed)[0], key_slice(explanation)
        mosaic = feature_mosaic(model, volume.voxels, inputs, explanation.layer, key, computed)
        features, dead = mosaic.maps, mosaic.dead
    dicom_out = None if args.dicom_out is None else Path(args.dicom_out)
    # De-identified: the results are written aside first, then de-identified together with the
    # source instances into --dicom-out, so that nothing identifying lands there.
    with tempfile.TemporaryDirectory() if args.deidentify else contextlib.nullcontext(dicom_out) as results:
        written = write_exports(
            volume,
            explanation,
            Path(args.out),
            model_path=Path(args.model),
            input_path=Path(args.input),
            features=features,
            dead=dead,
            dicom_out=None if results is None else Path(results),
            seg_fraction=args.seg_threshold,
        )
        if args.deidentify:
            written = [path for path in written if path.parent != Path(results)]
            written += _deidentified(volume, Path(results), dicom_out, args.pseudonym)
    for path in written:
        print(path)
    if dicom_out is not None and (missing := dicom_results_missing(volume)):
        print(missing)
    return 0


def _deidentified(volume, results: Path, out: Path, pseudonym: str | None) -> list[Path]:
    from medvis_desktop.export.deidentify import deidentify_with_source

    done = deidentify_with_source(volume, sorted(results.glob("*.dcm")), out, patient_pseudonym=pseudonym)
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return list(done.paths)


def _evaluate(args: argparse.Namespace) -> int:
    from medvis_desktop import imaging
    from medvis_desktop.evaluate import evaluate, load_reference, parse_methods
    from medvis_desktop.export.atomic import refuse_source
    from medvis_desktop.export.report import write_report
    from medvis_desktop.models.card import read_card

    if args.segment is not None and args.reference is None:
        raise MedvisError("--segment chooses a segment of the --reference DICOM SEG: give --reference")
    methods = parse_methods(args.methods)
    given: dict[str, list[str]] = {name: [] for name in methods}
    for text in args.param or []:
        name, sep, rest = text.partition(":")
        if not sep or name not in given:
            raise MedvisError(f"--param takes METHOD:KEY=VALUE for a method in --methods, not '{text}'")
        given[name].append(rest)
    params = {name: _method_params(name, texts) for name, texts in given.items()}
    volume = imaging.load(args.input, series_uid=args.series)
    reference = None
    if args.reference is not None:
        reference = load_reference(args.reference, volume, segment=args.segment)
    slices = _slice_range(args.slices, volume.shape[0])
    baseline = args.baseline if args.baseline == "blur" else _number(args.baseline, "--baseline")
    refuse_source(args.out, volume.source)  # before the work, not after it
    progress = _progress_with_time_left()
    try:
        result = evaluate(
            volume, _load_model(args), methods, card=read_card(args.model), reference=reference,
            slices=slices, layer=args.layer, target=args.target, params=params, steps=args.steps,
            samples=args.samples, baseline=baseline, region=args.region, progress=progress,
        )  # fmt: skip
    finally:
        progress(-1, 0)  # ends a bar left half-way, so that a message starts on its own line
    for assumption in result.assumptions:
        print(f"assumed: {assumption}", file=sys.stderr)
    reference_path = None if args.reference is None else Path(args.reference)
    for path in write_report(
        result, Path(args.out), model_path=Path(args.model), input_path=Path(args.input),
        reference_path=reference_path, reference_segment=args.segment, source=volume.source,
    ):  # fmt: skip
        print(path)
    return 0


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or abs(value) == float("inf"):
        raise MedvisError(f"{flag} takes a number (model-input units) or 'blur', not '{text}'")
    return value


def _progress_with_time_left():
    """A progress bar that also says how long the rest should take (from the pace so far)."""
    import time

    start, open_line = time.monotonic(), [False]

    def show(done: int, total: int) -> None:
        if done < 0:
            if open_line[0]:
                print(file=sys.stderr)
            return
        fraction, elapsed = min(done / max(total, 1), 1.0), time.monotonic() - start
        seconds = elapsed if fraction >= 1 else elapsed * (1 - fraction) / fraction if fraction else None
        clock = "--:--" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
        bar = "#" * round(30 * fraction)
        when = "in all" if fraction >= 1 else "left"
        percent = f"{int(100 * fraction):3d}%"  # 100% only once everything is done
        print(f"\r[{bar:.<30}] {percent}  {clock} {when}  ", end="", file=sys.stderr, flush=True)
        open_line[0] = fraction < 1
        if fraction >= 1:
            print(file=sys.stderr)

    return show


def _dicom_files(paths: Sequence[str]) -> tuple[list[Path], int]:
    """The files named, and the DICOM files (Part 10, not DICOMDIR) below each folder named;
    with how many other files those folders held."""
    from pydicom.misc import is_dicom

    files: list[Path] = []
    skipped = 0
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise MedvisError(f"{path} does not exist")
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            if found.name.upper() != "DICOMDIR" and is_dicom(found):
                files.append(found)
            else:
                skipped += 1
    return files, skipped


def _network(args: argparse.Namespace) -> dict[str, object]:
    """calling_ae and timeout for a dicomnet call; a timeout not given keeps the call's default."""
    options: dict[str, object] = {"calling_ae": args.calling_ae}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    return options


def _send(args: argparse.Namespace) -> int:
    from medvis_desktop.dicomnet import Node, raise_if_incomplete, send

    node = Node.parse(args.to)
    files, skipped = _dicom_files(args.paths)
    if skipped:
        print(f"skipped {skipped} file(s) that are not DICOM", file=sys.stderr)
    if not files:
        raise MedvisError(f"No DICOM file in {', '.join(args.paths)}")
    statuses = send(node, files, progress=_progress_bar, **_network(args))
    for status in statuses:
        code = "" if status.status is None else f" 0x{status.status:04X}"
        print(f"{'OK' if status.ok else 'FAILED'}{code}  {status.path}  {status.message}")
    raise_if_incomplete(node, statuses)
    print(f"{node} stored all {len(statuses)} instance(s)")
    return 0


def _query(args: argparse.Namespace) -> int:
    from medvis_desktop.dicomnet import Node, find_series, find_studies

    node = Node.parse(args.pacs)
    if args.study:
        series = find_series(node, args.study, **_network(args))
        print(f"{len(series)} series in study {args.study}")
        for item in series:
            count = "?" if item.instance_count is None else item.instance_count
            number = "" if item.series_number is None else item.series_number
            print(
                f"  {item.series_uid}  {item.modality:<3} #{number:<4} {count:>5} images  {item.description}"
            )
        return 0
    if args.date and not DATE_RANGE.match(args.date):
        raise MedvisError(
            f"--date takes YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end open), not '{args.date}'"
        )
    studies = find_studies(
        node,
        patient_id=args.patient_id or "",
        patient_name=args.patient_name or "",
        study_date=args.date or "",
        modality=args.modality or "",
        limit=args.limit,
        **_network(args),
    )
    print(f"{len(studies)} study(ies)")
    if len(studies) == args.limit:
        print(f"(the first {args.limit} only: narrow the query)")
    for study in studies:
        counts = f"{study.series_count if study.series_count is not None else '?'} series"
        print(
            f"  {study.study_uid}  {study.study_date or '--------'}  {study.patient_id}  {study.patient_name}"
            f"  {'/'.join(study.modalities)}  {counts}  {study.description}"
        )
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from medvis_desktop.dicomnet import LocalStore, Node, StorageServer, retrieve_series

    if (args.move_to is None) != (args.port is None):
        raise MedvisError("--move-to and --port go together: our storage server's AE title and port")
    node = Node.parse(args.pacs)
    store = LocalStore(args.store)
    server = (
        nullcontext()
        if args.move_to is None
        else StorageServer(store, ae_title=args.move_to, port=args.port, host=args.listen)
    )
    shown: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:  # the final count comes twice: show it once
        if not shown or shown[-1] != (done, total):
            shown.append((done, total))
            _progress_bar(done, total)

    with server:
        result = retrieve_series(
            node,
            args.study,
            args.series,
            store,
            method="get" if args.move_to is None else "move",
            move_destination=args.move_to,
            progress=progress,
            **_network(args),
        )
    print(f"{result.completed} instance(s) retrieved, {result.failed} failed, {result.warning} with warnings")
    print(result.folder)
    if not result.complete:
        raise MedvisError(
            f"{node}: {result.failed} instance(s) of series {args.series} failed ({result.status})"
        )
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
    parser.add_argument(
        "--figure-size",
        type=_long_side,
        metavar="PX",
        help="with --screenshot: the long side of the view's image in pixels, 0 for one pixel per "
        "voxel (default: the window's Figure size setting, 1500)",
    )
    parser.add_argument(
        "--smooth",
        action="store_true",
        help="with --screenshot: smooth interpolation (default: the setting, nearest: voxels stay blocks)",
    )
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    parser.add_argument(
        "--demo",
        choices=DEMOS,
        help="open a built-in case: a study with inserted lesions and the model trained to find them",
    )


def add_region_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--region",
        choices=("all", "predicted"),  # explain.runner.REGIONS, which loads TensorFlow
        default="all",
        help="segmentation models: the region whose class score is explained and scored, the whole "
        "output or where the model predicts the class (Seg-Grad-CAM; default all)",
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

    methods = commands.add_parser("methods", help="the explanation methods and their parameters")
    methods.set_defaults(handler=_methods)

    explain = commands.add_parser("explain", help="explain a model on a study and write the exports")
    explain.add_argument("--model", required=True)
    explain.add_argument("--input", required=True, help="the study (as for `medvis info`)")
    explain.add_argument("--series", help="SeriesInstanceUID when the folder holds several")
    explain.add_argument("--method", required=True, choices=METHODS)
    explain.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a parameter of the method (repeatable); `medvis methods` lists each method's",
    )
    explain.add_argument("--layer", help="layer name, 'outer/inner' inside nested models")
    explain.add_argument("--target", type=int, help="class index (default: the positive class)")
    explain.add_argument("--filter", type=int, help="feature map (filter) index")
    add_region_argument(explain)
    explain.add_argument("--slices", help="A:B, slices A to B-1 (2D models; default all)")
    explain.add_argument("--out", required=True, help="folder for the exports")
    explain.add_argument(
        "--dicom-out",
        metavar="DIR",
        help="also write DICOM results into DIR: Parametric Map, binary Segmentation and a Secondary "
        "Capture of the triptych, in the source's study (a non-DICOM study: the Secondary Capture only)",
    )
    explain.add_argument(
        "--seg-threshold",
        type=_fraction,
        default=SEG_FRACTION,
        metavar="F",
        help="the Segmentation holds the voxels above F times the map's maximum over the computed "
        "slices (0 < F ≤ 1; default %(default)s)",
    )
    explain.add_argument(
        "--deidentify",
        action="store_true",
        help="write into --dicom-out the source series and the results de-identified together (DICOM "
        "basic confidentiality profile, one UID map: the results still reference the source)",
    )
    explain.add_argument(
        "--pseudonym", help="with --deidentify: the Patient Name and Patient ID to write (default: empty)"
    )
    _add_model_arguments(explain)
    explain.set_defaults(handler=_explain)

    evaluate = commands.add_parser(
        "evaluate", help="score methods on a study: deletion, insertion, MuFidelity, pointing, cascade"
    )
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--input", required=True, help="the study (as for `medvis info`)")
    evaluate.add_argument("--series", help="SeriesInstanceUID when the folder holds several")
    evaluate.add_argument(
        "--reference", metavar="MASK", help="lesion mask on the study's grid (NIfTI/NRRD/MHA) or a DICOM SEG"
    )
    evaluate.add_argument("--segment", type=int, metavar="N", help="the SEG's segment N (default: all)")
    evaluate.add_argument("--methods", required=True, help="comma-separated, e.g. grad_cam,layer_cam")
    evaluate.add_argument("--param", action="append", metavar="METHOD:KEY=VALUE", help="a method's parameter")
    evaluate.add_argument("--layer", help="layer for the methods that take one (default: each its own)")
    evaluate.add_argument("--target", type=int, help="class index (default: the positive class)")
    add_region_argument(evaluate)
    evaluate.add_argument("--slices", help="A:B, slices A to B-1 (default all)")
    evaluate.add_argument("--steps", type=int, default=10, help="deletion, insertion steps (default 10)")
    evaluate.add_argument("--samples", type=int, default=128, help="MuFidelity subsets (default %(default)s)")
    evaluate.add_argument("--baseline", default="0", help="value removed voxels take, or 'blur' (default 0)")
    evaluate.add_argument("--out", required=True, help="folder for the table, plots and report.html")
    _add_model_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    send = commands.add_parser("send", help="C-STORE DICOM files (every DICOM file below a folder) to a node")
    send.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    send.add_argument(
        "--to", required=True, metavar="AE@HOST:PORT", help="the receiving node, e.g. PACS@10.0.0.5:104"
    )
    _add_network_arguments(send)
    send.set_defaults(handler=_send)

    query = commands.add_parser("query", help="C-FIND: the studies on a PACS, or the series of one study")
    query.add_argument("--pacs", required=True, metavar="AE@HOST:PORT")
    query.add_argument("--patient-id", help="'*' matches any characters")
    query.add_argument("--patient-name", help="DICOM form, e.g. 'Doe^J*'")
    query.add_argument("--date", help="study date YYYYMMDD, or a range YYYYMMDD-YYYYMMDD")
    query.add_argument("--modality", help="a modality in the study, e.g. CT")
    query.add_argument("--study", metavar="UID", help="list this study's series instead")
    query.add_argument(
        "--limit", type=int, default=500, help="at most this many studies (default %(default)s)"
    )
    _add_network_arguments(query)
    query.set_defaults(handler=_query)

    retrieve = commands.add_parser("retrieve", help="C-GET (or C-MOVE) one series into a local store")
    retrieve.add_argument("--pacs", required=True, metavar="AE@HOST:PORT")
    retrieve.add_argument("--study", required=True, metavar="UID")
    retrieve.add_argument("--series", required=True, metavar="UID")
    retrieve.add_argument("--store", required=True, metavar="DIR", help="files go to DIR/<study>/<series>/")
    retrieve.add_argument(
        "--move-to",
        metavar="AE",
        help="C-MOVE to our storage server with this AE title (the PACS must know it)",
    )
    retrieve.add_argument("--port", type=int, help="with --move-to: the port our storage server listens on")
    retrieve.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="HOST",
        help="with --move-to: address to listen on (default %(default)s)",
    )
    _add_network_arguments(retrieve)
    retrieve.set_defaults(handler=_retrieve)
    return parser


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"takes a fraction 0 < F ≤ 1, not '{text}'")
    return value


def _long_side(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"takes a number of pixels ≥ 0, not '{text}'")
    return int(text)


def _add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calling-ae", default=CALLING_AE, metavar="AE", help="our AE title (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait for the peer (default 10; retrieve 60)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from medvis_desktop.gui.app import run_gui

        return run_gui(args)
    try:
        if args.command in ("layers", "explain", "evaluate"):
            from medvis_desktop.models.runtime import start_tensorflow

            start_tensorflow(quiet=True)
        return args.handler(args)
    except MedvisError as error:
        print(f"medvis: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
