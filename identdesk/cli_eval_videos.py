"""`identdesk eval videos`: the document tools measured on rendered videos, each
against the truth file `identdesk doc render` wrote beside it (so that QA can
render specimens of their choice and measure the tools on them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from identdesk.cli import end_progress, file_problem, os_reason
from identdesk.cli_doc import InputError, _read_video, guard, progress
from identdesk.cli_eval import CLASSES, _frame_class, _load, _ms_figures, _Tally, _timed
from media.document import detect_document
from media.hologram import check_hologram
from media.quality import assess
from media.render import ATTACKS
from media.render_truth import RenderTruth, read_truth, truth_path

VIDEO_TYPES = (".mp4", ".mkv", ".webm")
# the hologram check takes the whole video at once: its decoded frames (BGR) may
# take this much memory, 49 s of 720p at 30 fps
MAX_DECODED = 4 << 30
PREFIX = "identdesk eval videos: "


def register(ev: Any) -> None:
    """Adds `videos` to the `eval` group."""
    p = ev.add_parser(
        "videos",
        help="document detection and hologram check on rendered videos, against "
        "the truth files `doc render` writes beside them",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="videos or folders")
    p.add_argument(
        "--search-every",
        type=int,
        default=10,
        metavar="K",
        help="run the full search on every K-th frame (the live loop runs on all)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guard(cmd_eval_videos))


@dataclass
class _Video:
    """One video's figures: the tallies and the hologram check's verdict."""

    path: str
    truth: RenderTruth
    search: _Tally
    tracked: _Tally
    live_ms: list[float]
    hologram: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        t = self.truth
        return {
            "video": self.path,
            "frames": len(t.frames),
            "kind": t.kind,
            "attack": t.attack,
            "source": t.source,
            "search": self.search.figures(),
            "tracked": self.tracked.figures(),
            "live_ms": _ms_figures(self.live_ms),
            "hologram": self.hologram,
        }


# --- finding the videos -------------------------------------------------------------


def _find_videos(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The videos named or in the folders named (each once, in order), and what
    is wrong with the paths that give none."""
    videos: dict[Path, None] = {}
    problems = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = _folder_videos(path)
            if isinstance(found, str):
                problems.append(found)
            for video in found if isinstance(found, list) else []:
                videos.setdefault(video, None)
        elif not path.exists():
            problems.append(f"cannot read {text!r}: no such file or folder")
        elif path.suffix.lower() in VIDEO_TYPES:
            videos.setdefault(path, None)
        else:
            problems.append(
                f"{text!r}: not a video ({', '.join(VIDEO_TYPES)}) or a folder"
            )
    return list(videos), problems


def _folder_videos(folder: Path) -> list[Path] | str:
    """The videos in `folder` and below, or why there are none."""
    try:
        with os.scandir(folder):
            pass
    except OSError as exc:
        return f"cannot read folder {str(folder)!r}: {os_reason(exc)}"
    found = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_TYPES and p.is_file()
    )
    if not found:
        return f"no videos ({', '.join(VIDEO_TYPES)}) in folder {str(folder)!r}"
    return found


def _truth_of(video: Path) -> RenderTruth:
    """The truth file beside `video`; InputError says in plain words why not."""
    path = truth_path(video)
    problem = file_problem(str(path))
    if problem == "no such file":
        raise InputError(
            f"no truth file {str(path)!r} beside {str(video)!r} (`identdesk doc "
            "render` writes both)"
        )
    if problem:
        raise InputError(f"cannot read truth file {str(path)!r}: {problem}")
    try:
        return read_truth(path)
    except OSError as exc:
        raise InputError(
            f"cannot read truth file {str(path)!r}: {os_reason(exc)}"
        ) from None
    except ValueError as exc:
        raise InputError(f"bad truth file {str(path)!r}: {exc}") from None


# --- measuring one video ------------------------------------------------------------


def _measure(video: Path, every: int, label: str) -> _Video:
    """Detection (searched every `every`-th frame, tracked on all) and the
    hologram check on one video, against its truth file."""
    problem = file_problem(str(video))
    if problem:
        raise InputError(f"cannot read {str(video)!r}: {problem}")
    truth = _truth_of(video)
    size = len(truth.frames) * truth.width * truth.height * 3
    if size > MAX_DECODED:
        raise InputError(
            f"{str(video)!r}: {len(truth.frames)} frames of {truth.width}x"
            f"{truth.height} take {size / 2**30:.1f} GB decoded, more than the "
            f"{MAX_DECODED / 2**30:g} GB eval videos holds: render a shorter video"
        )
    frames, times = _read_video(str(video))
    h, w = frames[0].shape[:2]
    mismatch = truth.mismatch(len(frames), w, h)
    if mismatch:
        raise InputError(f"{str(video)!r} does not match its truth file: {mismatch}")

    # detection: the search alone, and the live loop that follows the document
    search, tracked, live_ms = _Tally(), _Tally(), []
    previous = None
    for i, (frame, known) in enumerate(zip(frames, truth.frames, strict=True)):
        if i % 10 == 0:
            progress(f"eval videos {label}: frame {i + 1}/{len(frames)}")
        cls = _frame_class(known.corners, w, h)
        if i % every == 0:
            det, ms = _timed(detect_document, frame)
            search.add(cls, det, known.corners, ms)
        q = assess(frame, previous)
        previous = q.detection
        tracked.add(cls, q.detection, known.corners, q.ms)
        live_ms.append(q.ms)

    # the hologram check needs lit and unlit frames
    hologram = None
    if truth.lit_and_unlit:
        progress(f"eval videos {label}: hologram check")
        result, ms = _timed(check_hologram, frames, times, truth.torch_on)
        genuine = truth.attack == "none"
        hologram = {
            "verdict": result.verdict,
            "expected": "genuine" if genuine else "not genuine",
            "correct": (result.verdict == "genuine") == genuine,
            "score": round(result.score, 3),
            "ms_per_frame": round(ms / len(frames), 1),
        }
    return _Video(str(video), truth, search, tracked, live_ms, hologram)


# --- totals -------------------------------------------------------------------------


def _merged(tallies: list[_Tally]) -> _Tally:
    out = _Tally()
    for t in tallies:
        for c in CLASSES:
            out.errs[c] += t.errs[c]
            out.ms[c] += t.ms[c]
        out.told_outside += t.told_outside
    return out


def _hologram_totals(videos: list[_Video]) -> dict[str, Any]:
    """Per variant (genuine, flat, screen) the share of right verdicts."""
    out: dict[str, Any] = {}
    for attack in ATTACKS:
        checks = [v.hologram for v in videos if v.hologram and v.truth.attack == attack]
        if not checks:
            continue
        right = float(np.mean([c["correct"] for c in checks]))
        names = [c["verdict"] for c in checks]
        out["genuine" if attack == "none" else attack] = {
            "sequences": len(checks),
            "expected": checks[0]["expected"],
            "correct": round(right, 4),
            "error_rate": round(1 - right, 4),
            "verdicts": {
                k: names.count(k) for k in ("genuine", "suspect", "inconclusive")
            },
            "ms_per_frame": round(
                float(np.mean([c["ms_per_frame"] for c in checks])), 1
            ),
        }
    return out


def _totals(videos: list[_Video]) -> dict[str, Any]:
    search = _merged([v.search for v in videos]).figures()
    search["tracked"] = _merged([v.tracked for v in videos]).figures()
    search["live_ms"] = _ms_figures(sum((v.live_ms for v in videos), []))
    return {"detection": search, "hologram": _hologram_totals(videos)}


# --- the command --------------------------------------------------------------------


def cmd_eval_videos(args: argparse.Namespace) -> int:
    if args.search_every < 1:
        raise InputError(
            f"--search-every {args.search_every}: give 1 or more (1: every frame)"
        )
    paths, skipped = _find_videos(args.paths)
    for problem in skipped:
        print(PREFIX + problem, file=sys.stderr)
    load_before = _load()
    videos: list[_Video] = []
    for i, path in enumerate(paths):
        try:
            videos.append(
                _measure(path, args.search_every, f"{i + 1}/{len(paths)} {path.name}")
            )
        except InputError as exc:
            end_progress()
            print(PREFIX + str(exc), file=sys.stderr)
            skipped.append(str(exc))
            continue
        end_progress()
        if not args.json:
            _print_video(videos[-1])
    if not videos:
        print(
            f"{PREFIX}nothing to measure: no video with a matching truth file among "
            f"{' '.join(repr(p) for p in args.paths)}",
            file=sys.stderr,
        )
        return 1
    out = {
        "load_before": load_before,
        "search_every": args.search_every,
        "videos": [v.to_json() for v in videos],
        **_totals(videos),
        "skipped": skipped,
        "load_after": _load(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        _print_totals(out, len(videos))
    return 1 if skipped else 0


# --- printing -----------------------------------------------------------------------


def _share(f: dict[str, Any]) -> str:
    return (
        f"{f['within_2pct']:6.1%} of {f['frames']:3d}" if f["frames"] else "no frames"
    )


def _print_video(v: _Video) -> None:
    search, tracked = v.search.figures(), v.tracked.figures()
    live = _ms_figures(v.live_ms)
    h = v.hologram
    verdict = (
        f"hologram {h['verdict']} (expected {h['expected']}: "
        f"{'right' if h['correct'] else 'WRONG'})"
        if h
        else "hologram not checked (no lit and unlit frames)"
    )
    print(
        f"{v.path}: {len(v.truth.frames)} frames {v.truth.kind} {v.truth.attack}  "
        f"search within 2% {_share(search)}  tracked within 2% {_share(tracked)}  "
        f"{verdict}  ms per frame: live {live['median']}, search "
        f"{search['ms_median']}"
    )


def _row(name: str, f: dict[str, Any]) -> None:
    print(
        f"  {name:34s} frames {f['frames']:4d}  detected {f['detected']:6.1%}  "
        f"within 2% {f['within_2pct']:6.1%}  median err {f['median_error']}  "
        f"p95 err {f['p95_error']}  ms {f['ms_median']} (p95 {f['ms_p95']})"
    )


def _print_totals(out: dict[str, Any], measured: int) -> None:
    d = out["detection"]
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    print(f"all {measured} videos: bar = within 2% of the diagonal on >= 95% of frames")
    _row(f"search (1 frame in {out['search_every']}), bar frames", d)
    _row("  whole document in frame", d["in_frame"])
    _row("  2-3 corners in view", d["partly_out"])
    _row("  < 2 corners in view (apart)", d["mostly_out"])
    told = d["mostly_out"]["told_partly_outside"]
    if told is not None:
        print(f"  {'':34s} told 'partly outside': {told:.1%}")
    t = d["tracked"]
    _row("live loop (tracked), bar frames", t)
    _row("  whole document in frame", t["in_frame"])
    _row("  2-3 corners in view", t["partly_out"])
    live = d["live_ms"]
    print(
        f"  live analysis (detect + quality) per frame: median {live['median']} ms, "
        f"p95 {live['p95']} ms (bar 30 ms per 720p frame)"
    )
    print("hologram check:")
    print("bar: genuine passes and flat copy fails in >= 95% each; screens fail too")
    if not out["hologram"]:
        print("  no video with both lit and unlit frames: not checked")
    for name, f in out["hologram"].items():
        print(
            f"  {name:8s} n={f['sequences']:3d}  correct {f['correct']:6.1%}  "
            f"error rate {f['error_rate']:6.1%}  verdicts {f['verdicts']}  "
            f"{f['ms_per_frame']} ms/frame"
        )
    if out["skipped"]:
        print(
            f"skipped               {len(out['skipped'])} (named above, not measured)"
        )
