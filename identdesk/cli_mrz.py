"""`identdesk mrz read` and `identdesk eval mrz`: the MRZ reader on images."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_TRUTH = REPO / "tests" / "data" / "mrz_truth.json"


def register(commands: Any) -> None:
    read = commands.add("mrz", "read the machine readable zone (MRZ) of documents")
    sub = read.add_subparsers(dest="mrz_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("read", help="find and read the MRZ in images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser(
        "vectors",
        help="check MRZ strings against their expected results (the corpus's "
        "mrz_vectors.json)",
    )
    p.add_argument(
        "file",
        nargs="?",
        default=str(DEFAULT_CORPUS / "mrz_vectors.json"),
        metavar="FILE",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_vectors)

    ev = commands.group("eval", "evaluate the document tools")
    e = ev.add_parser("mrz", help="MRZ reader figures on a folder of specimen images")
    e.add_argument("dir", nargs="?", default=str(DEFAULT_CORPUS), metavar="DIR")
    e.add_argument("--truth", default=str(DEFAULT_TRUTH), help="annotation file")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument(
        "--rotate",
        type=_rotations,
        metavar="DEGREES",
        help="comma-separated angles (counter-clockwise) to turn every image by, "
        "in memory; figures per angle (e.g. 0,90,180,270,15)",
    )
    e.set_defaults(func=cmd_eval)


def cmd_vectors(args: argparse.Namespace) -> int:
    """Parse each vector's lines as given (`expect` is about them) and with the
    look-alike corrections the check digits confirm; exit 1 when any vector
    as given disagrees with its expected result."""
    from media.mrz import parse_mrz

    path = Path(args.file)
    try:
        vectors = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(vectors, list) or not all(
            isinstance(v, dict) and isinstance(v.get("lines"), list) and "expect" in v
            for v in vectors
        ):
            raise ValueError
    except OSError as exc:
        print(f"identdesk: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError:
        print(
            f"identdesk: {path}: not a JSON list of {{name, lines, expect}} objects",
            file=sys.stderr,
        )
        return 2
    agree = fixed = 0
    for v in vectors:
        raw = parse_mrz(v["lines"], correct=False)
        corrected = parse_mrz(v["lines"])
        ok = raw.valid == bool(v["expect"])
        agree += ok
        fixed += not raw.valid and corrected.valid
        row = {
            "name": v.get("name", ""),
            "expect": v["expect"],
            "valid": raw.valid,
            "agrees": ok,
            "valid_corrected": corrected.valid,
            "corrections": len(corrected.corrections),
            "reason": raw.reason,
        }
        if args.json:
            print(json.dumps(row))
        else:
            mark = "ok  " if ok else "DIFF"
            after = (
                f"; valid after {row['corrections']} confirmed look-alike corrections"
                if not raw.valid and corrected.valid
                else ""
            )
            print(f"{mark} expect {str(v['expect']):5} valid {str(raw.valid):5} "
                  f"{row['name']}{after}")  # fmt: skip
    if not args.json:
        print(
            f"{agree} of {len(vectors)} give their expected result as given; "
            f"{fixed} become valid after look-alike corrections confirmed by "
            "their check digits"
        )
    return 0 if agree == len(vectors) else 1


def _rotations(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not an angle in degrees: {part.strip()!r} (in {text!r})"
            ) from None
        if not -360 <= value <= 360:
            raise argparse.ArgumentTypeError(f"angle out of -360..360: {part!r}")
        if value not in out:
            out.append(value)
    return out


def cmd_read(args: argparse.Namespace) -> int:
    """Read every image; one that cannot be read is reported and skipped, and the
    command exits 2 at the end."""
    from identdesk.cli_doc import InputError, read_image
    from media.frame_size import MRZ_MAX_ASPECT, frame_problem
    from media.mrz_reader import load_model, read_mrz

    load_model()
    failed = 0
    for name in args.images:
        try:
            image = read_image(name)
            row = {"image": name, **read_mrz(image).to_dict()}
            problem = frame_problem(image, MRZ_MAX_ASPECT)
            if problem:
                # nothing to find in it: said, and the batch goes on
                row["reason"] = problem
                print(f"identdesk mrz read: {name!r}: {problem}", file=sys.stderr)
        except InputError as exc:
            failed += 1
            error = str(exc).replace("cannot read", "cannot read image", 1)
            row = {"image": name, "found": False, "error": error}
            print(f"identdesk mrz read: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        elif "error" not in row:
            _print_table([row])
    return 2 if failed else 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"{row['image']}  ({row['ms']:.0f} ms)")
        if not row["found"]:
            why = row.get("reason") or ""
            print(f"  no MRZ found{': ' + why if 'MRZ' not in why else ''}\n")
            continue
        for line in row["lines"]:
            print(f"  {line}")
        fields = row["fields"] or {}
        checks = ", ".join(
            f"{k} {'ok' if v else 'FAIL'}" for k, v in row["checks"].items()
        )
        print(f"  format {row['format']}  type {row['type']!r}  valid {row['valid']}")
        if row.get("uncertain_fields"):
            print(f"  uncertain: {', '.join(row['uncertain_fields'])}")
        print(f"  checks: {checks}")
        for key in ("surname", "given_names", "document_number", "nationality",
                    "birth_date", "sex", "expiry_date"):  # fmt: skip
            if key in fields:
                print(f"  {key:<16} {fields[key]}")
        verdict = "type accepted" if row["accepted"] else "refused"
        reason = f": {row['reason']}" if row["reason"] else ""
        print(f"  expired {row['expired']}  {verdict}{reason}\n")


def _folder_problem(root: Path) -> str | None:
    """Why `root` cannot be the folder of images, in plain words; None if it can."""
    from identdesk.cli import os_reason

    if root.is_file():
        return f"{str(root)!r} is a file, not a folder of images"
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        reason = os_reason(exc).replace("no such file", "no such folder")
        return f"cannot read folder {str(root)!r}: {reason}"
    return None


def _truth_problem(path: Path) -> str | None:
    from identdesk.cli import file_problem

    problem = file_problem(str(path))
    if problem == "no such file":
        return f"no annotation file {str(path)!r}"
    return f"cannot read annotation file {str(path)!r}: {problem}" if problem else None


def _load_truth(path: Path) -> dict[str, Any] | str:
    """The annotations in `path`, or in plain words why they cannot be read."""
    from identdesk.cli import os_reason
    from media.mrz_eval import load_truth

    where = f"cannot read annotation file {str(path)!r}"
    try:
        truth = load_truth(path)
    except OSError as exc:
        return f"{where}: {os_reason(exc)}"
    except (ValueError, KeyError, TypeError):
        # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f'{where}: not JSON of the form {{"images": {{...}}}}'
    if not isinstance(truth, dict):
        return f'{where}: not JSON of the form {{"images": {{...}}}}'
    return truth


def _evaluate(
    root: Path, truth: dict[str, Any], rotations: list[float]
) -> tuple[dict[float, Any], list[str]]:
    """media.mrz_eval's figures per angle, and the images that could not be read
    (each named with the reason; the others are still evaluated)."""
    import time

    from identdesk.cli import progress
    from identdesk.cli_doc import InputError, read_image
    from media.mrz_eval import EvalReport, list_images, rotate_image, score_one
    from media.mrz_reader import read_mrz

    reports = {r: EvalReport() for r in rotations}
    paths, unreadable = list_images(root), []
    for i, path in enumerate(paths):
        rel = path.relative_to(root).as_posix()
        progress(f"[{i + 1}/{len(paths)}] {rel[:60]:<60}")
        try:
            image = read_image(str(path))
        except InputError as exc:
            unreadable.append(str(exc))
            continue
        for rotation, report in reports.items():
            report.images += 1
            turned = rotate_image(image, rotation)
            start = time.perf_counter()
            reading = read_mrz(turned)
            report.ms.append((time.perf_counter() - start) * 1000)
            if rel in truth:
                report.annotated += 1
                score_one(report, rel, reading.to_dict(), truth[rel])
    return reports, unreadable


def cmd_eval(args: argparse.Namespace) -> int:
    from identdesk.cli import end_progress

    root, truth_path = Path(args.dir), Path(args.truth)
    problem = _folder_problem(root) or _truth_problem(truth_path)
    if problem:
        print(f"identdesk eval mrz: {problem}", file=sys.stderr)
        return 2
    truth = _load_truth(truth_path)
    if isinstance(truth, str):
        print(f"identdesk eval mrz: {truth}", file=sys.stderr)
        return 2

    rotations = args.rotate or [0.0]
    reports, unreadable = _evaluate(root, truth, rotations)
    end_progress()
    for problem in unreadable:
        print(f"identdesk eval mrz: {problem}", file=sys.stderr)
    if not reports[rotations[0]].annotated:
        print(
            f"identdesk eval mrz: none of the images under {str(root)!r} is in "
            f"the annotation file {str(truth_path)!r}: nothing to measure",
            file=sys.stderr,
        )
        return 1
    code = 1 if unreadable else 0
    load = [round(v, 2) for v in os.getloadavg()]
    if args.rotate is None:
        report = reports[0.0].to_dict()
        if args.json:
            print(json.dumps({**report, "unreadable": unreadable}, indent=1))
            return code
        _print_report(report)
    elif args.json:
        out = {f"{r:g}": rep.to_dict() for r, rep in reports.items()}
        print(
            json.dumps(
                {"rotations": out, "unreadable": unreadable, "load": load}, indent=1
            )
        )
        return code
    else:
        _print_rotations({r: rep.to_dict() for r, rep in reports.items()})
    if unreadable:
        print(f"unreadable images     {len(unreadable)} (named above, not counted)")
    print(
        f"load average          {load[0]} {load[1]} {load[2]} ({os.cpu_count()} cores)"
    )
    return code


def _print_report(report: dict[str, Any]) -> None:
    n = max(report["with_mrz"], 1)
    print(
        f"images                {report['images']} ({report['annotated']} annotated,"
        f" {report['with_mrz']} with an MRZ)"
    )
    print(
        f"MRZ found             {report['mrz_found']}/{report['with_mrz']}"
        f" (found where none: {report['found_without_mrz']})"
    )
    print(
        f"exactly read          {report['exactly_read']}/{report['with_mrz']}"
        f" = {100 * report['exactly_read'] / n:.1f}%"
    )
    print(
        f"incl. negatives       {report['correct_incl_negatives']}/"
        f"{report['annotated']} = {100 * report['correct_rate_incl_negatives']:.1f}%"
    )
    print(f"field accuracy        {100 * report['field_accuracy']:.1f}%")
    print(
        f"check-digit verdicts  {report['check_verdicts_right']}/"
        f"{report['check_verdicts_total']} as on the true MRZ"
    )
    print(f"reported valid        {report['reported_valid']}")
    print(f"wrong-valid           {report['wrong_valid']}")
    print(f"uncertain (not valid) {report['held_back_uncertain']}")
    print(
        f"ms per image          mean {report['ms_mean']}, p95 {report['ms_p95']},"
        f" max {report['ms_max']}"
    )
    if report["not_exact"]:
        print("not exact: " + ", ".join(report["not_exact"]))


def _print_rotations(reports: dict[float, dict[str, Any]]) -> None:
    """One line of figures per angle, then what each angle did not read."""
    first = next(iter(reports.values()))
    print(
        f"{first['images']} images ({first['with_mrz']} with an MRZ), each turned"
        " counter-clockwise by the angle"
    )
    print(
        "angle   exactly read    found  found where none  wrong-valid  valid"
        "   ms mean    p95    max"
    )
    for rotation, r in reports.items():
        exact = f"{r['exactly_read']}/{r['with_mrz']} {100 * r['exact_rate']:.1f}%"
        found = f"{r['mrz_found']}/{r['with_mrz']}"
        print(
            f"{rotation:>5g}   {exact:<14}  {found:<5}  {r['found_without_mrz']:>16}"
            f"  {r['wrong_valid']:>11}  {r['reported_valid']:>5}"
            f"  {r['ms_mean']:>8}  {r['ms_p95']:>5}  {r['ms_max']:>5}"
        )
    for rotation, r in reports.items():
        if r["not_exact"]:
            print(f"not exact at {rotation:g}: " + ", ".join(r["not_exact"]))
