"""`identdesk eval doc` and `identdesk eval hologram`: the document tools
measured on rendered scenes of drawn documents and of corpus specimens."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from identdesk.cli import end_progress
from identdesk.cli_doc import InputError, check_seed, guard, progress, read_image
from media import render
from media.document import corner_error, detect_document
from media.hologram import check_hologram, check_tilt, random_torch_pattern
from media.quality import assess

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS_DOCS = (
    ("ausweiskopie/npa_2021.png", "id1"),
    ("ausweiskopie/npa_2019.jpg", "id1"),
    ("ausweiskopie/npa_back.png", "id1"),
    ("ausweiskopie/passport.png", "td3"),
    ("passporteye/testdata/100_pass-bdr.jpg", "td3"),
)


def register(commands: Any) -> None:
    ev = commands.group("eval", "evaluate the document tools")
    p = ev.add_parser("doc", help="document detection on rendered scenes and corpus")
    p.add_argument("-n", "--scenes", type=int, default=40)
    p.add_argument("--frames", type=int, default=3, help="search frames per scene")
    p.add_argument(
        "--track-frames",
        type=int,
        default=10,
        help="consecutive 30 fps frames per scene for the tracked live loop",
    )
    p.add_argument(
        "--corpus-scenes", type=int, default=10, help="scenes from corpus specimens"
    )
    p.add_argument("--seed", type=int, default=1000)
    _specimen_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guard(cmd_eval_doc))
    p = ev.add_parser(
        "hologram",
        help="hologram check error rates on rendered "
        "genuine, flat-copy and screen sequences",
    )
    p.add_argument("-n", "--sequences", type=int, default=20, help="per variant")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument(
        "--corpus-n", type=int, default=2, help="sequences per variant and corpus image"
    )
    p.add_argument(
        "--tilt-n",
        type=int,
        default=10,
        help="torch-off tilt sequences per variant (0: none)",
    )
    _specimen_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guard(cmd_eval_hologram))

    # `eval videos` uses this module's tallies: imported once this one is loaded
    from identdesk import cli_eval_videos

    cli_eval_videos.register(ev)


def _specimen_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--specimen",
        action="append",
        metavar="IMAGE:KIND",
        help="render this specimen image (kind id1 or td3) instead of the corpus "
        "set; repeatable",
    )


# How rendered frames are counted: "in frame" (all four corners in view) and
# "partly out" (two or three corners in view: a side cut off is completed from the
# ID-1/TD3 proportions, a corner cut off is where its two sides meet) make up the
# bar; frames with fewer than two corners in view have too little outline to
# measure and are reported apart, with the share where the user is told the
# document is partly outside.
CLASSES = ("in_frame", "partly_out", "mostly_out")


def _frame_class(truth: np.ndarray, w: int, h: int) -> str:
    inside = ((truth >= 0) & (truth <= [w, h])).all(1).sum()
    return CLASSES[0] if inside == 4 else CLASSES[1] if inside >= 2 else CLASSES[2]


def _detection_figures(errors: list[float], ms: list[float]) -> dict[str, Any]:
    e = np.array(errors)
    found = np.isfinite(e)
    return {
        "frames": len(e),
        "detected": round(float(found.mean()), 4) if len(e) else 0.0,
        "within_2pct": round(float((e < 0.02).mean()), 4) if len(e) else 0.0,
        "median_error": round(float(np.median(e[found])), 4) if found.any() else None,
        "p95_error": round(float(np.percentile(e[found], 95)), 4)
        if found.any()
        else None,
        "ms_median": round(float(np.median(ms)), 1) if ms else None,
        "ms_p95": round(float(np.percentile(ms, 95)), 1) if ms else None,
    }


class _Tally:
    """Corner errors and times per frame class for one way of finding the document."""

    def __init__(self) -> None:
        self.errs: dict[str, list[float]] = {c: [] for c in CLASSES}
        self.ms: dict[str, list[float]] = {c: [] for c in CLASSES}
        self.told_outside: list[bool] = []

    def add(self, cls: str, det: Any, truth: np.ndarray, ms: float) -> None:
        self.errs[cls].append(corner_error(det.corners, truth) if det else np.inf)
        self.ms[cls].append(ms)
        if cls == CLASSES[2]:
            self.told_outside.append(det is None or det.visible < 0.98)

    def figures(self) -> dict[str, Any]:
        bar = CLASSES[:2]
        figs = _detection_figures(
            sum((self.errs[c] for c in bar), []), sum((self.ms[c] for c in bar), [])
        )
        for c in CLASSES:
            figs[c] = _detection_figures(self.errs[c], self.ms[c])
        told = self.told_outside
        figs[CLASSES[2]]["told_partly_outside"] = (
            round(float(np.mean(told)), 4) if told else None
        )
        return figs


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, (time.perf_counter() - t0) * 1000


def _eval_scenes(
    docs: list[render.SpecimenDocument],
    n: int,
    frames: int,
    track_frames: int,
    seed: int,
    label: str,
) -> dict[str, Any]:
    """Per scene: `frames` frames 0.9 s apart for the search, and `track_frames`
    consecutive frames (30 fps) for the live loop that tracks."""
    search, kind_given, tracked = _Tally(), _Tally(), _Tally()
    live_ms: list[float] = []
    cold_ms: list[float] = []
    for i in range(n):
        progress(f"eval doc {label}: scene {i + 1}/{n}")
        doc = docs[i % len(docs)]
        scene = render.SceneRenderer(doc, seed=seed + i, partial=i % 5 == 4)
        for j in range(frames):
            frame, truth = scene.frame(0.37 + 0.9 * j, j % 2 == 1)
            cls = _frame_class(truth, frame.shape[1], frame.shape[0])
            det, ms = _timed(detect_document, frame)
            search.add(cls, det, truth, ms)
            if cls == CLASSES[1]:
                det, ms = _timed(detect_document, frame, doc.kind)
                kind_given.add(cls, det, truth, ms)
            cold_ms.append(assess(frame).ms)
        previous = None
        for j in range(track_frames):
            frame, truth = scene.frame(4.0 + j / 30, j % 8 >= 4)
            cls = _frame_class(truth, frame.shape[1], frame.shape[0])
            q = assess(frame, previous)
            previous = q.detection
            tracked.add(cls, q.detection, truth, q.ms)
            live_ms.append(q.ms)
    print(file=sys.stderr)
    out = search.figures()
    out["partly_out_kind_given"] = kind_given.figures()[CLASSES[1]]
    out["tracked"] = tracked.figures()
    out["live_ms"] = _ms_figures(live_ms)
    out["cold_ms"] = _ms_figures(cold_ms)
    return out


def _ms_figures(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"frames": 0, "median": None, "p95": None}
    return {
        "frames": len(ms),
        "median": round(float(np.median(ms)), 1),
        "p95": round(float(np.percentile(ms, 95)), 1),
    }


def _specimens(given: list[str] | None) -> list[tuple[str, render.SpecimenDocument]]:
    """The specimens to render: IMAGE:KIND arguments, else the corpus set
    (those of its images that are present)."""
    if given is None:
        chosen = [(str(CORPUS / p), k) for p, k in CORPUS_DOCS if (CORPUS / p).exists()]
    else:
        chosen = []
        for text in given:
            path, _, kind = text.rpartition(":")
            if kind not in ("id1", "td3") or not path:
                raise InputError(f"--specimen {text!r}: give IMAGE:id1 or IMAGE:td3")
            chosen.append((path, kind))
    return [(p, render.document_from_image(read_image(p), k)) for p, k in chosen]


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _check_doc_args(args: argparse.Namespace) -> None:
    if args.scenes < 1:
        raise InputError(f"-n {args.scenes}: give at least 1 scene")
    if args.frames < 1:
        raise InputError(f"--frames {args.frames}: give at least 1 frame per scene")
    for name, value in (
        ("--track-frames", args.track_frames),
        ("--corpus-scenes", args.corpus_scenes),
    ):
        if value < 0:
            raise InputError(f"{name} {value}: give 0 (none) or more")
    check_seed(args.seed)


def cmd_eval_doc(args: argparse.Namespace) -> int:
    _check_doc_args(args)
    docs = [
        render.draw_document("id1", seed=args.seed),
        render.draw_document("td3", seed=args.seed + 1),
    ]
    corpus = _specimens(args.specimen)
    out: dict[str, Any] = {"load_before": _load()}
    out["synthetic"] = _eval_scenes(
        docs, args.scenes, args.frames, args.track_frames, args.seed, "synthetic"
    )
    if corpus and args.corpus_scenes:
        out["corpus_rendered"] = _eval_scenes(
            [doc for _, doc in corpus],
            args.corpus_scenes,
            args.frames,
            args.track_frames,
            args.seed + 500,
            "corpus",
        )
        out["corpus_images"] = [name for name, _ in corpus]
    else:
        out["corpus_rendered"] = None
    out["load_after"] = _load()
    if args.json:
        print(json.dumps(out))
        return 0
    _print_doc_eval(out, args.corpus_scenes)
    return 0


def _print_doc_eval(out: dict[str, Any], corpus_scenes: int) -> None:
    def line(name: str, f: dict[str, Any]) -> None:
        if not f["frames"]:
            print(f"  {name:30s} frames    0  (none in this run)")
            return
        print(
            f"  {name:30s} frames {f['frames']:4d}  detected {f['detected']:6.1%}  "
            f"within 2% {f['within_2pct']:6.1%}  median err {f['median_error']}  "
            f"p95 err {f['p95_error']}  ms {f['ms_median']} (p95 {f['ms_p95']})"
        )

    print(f"load average before {out['load_before']}, after {out['load_after']}")
    for key in ("synthetic", "corpus_rendered"):
        f = out.get(key)
        if not f:
            print(
                "corpus scenes: none asked for (--corpus-scenes 0)"
                if not corpus_scenes
                else f"{key}: corpus not present"
            )
            continue
        print(f"{key}: bar = within 2% of the diagonal on >= 95% of frames")
        line("search, bar frames", f)
        line("  whole document in frame", f["in_frame"])
        line("  2-3 corners in view", f["partly_out"])
        line("  2-3 corners in view, kind given", f["partly_out_kind_given"])
        m = f["mostly_out"]
        line("  < 2 corners in view (apart)", m)
        if m["told_partly_outside"] is not None:
            print(f"  {'':30s} told 'partly outside': {m['told_partly_outside']:.1%}")
        t = f["tracked"]
        if not t["frames"]:
            print("  live loop (tracked): none asked for (--track-frames 0)")
            continue
        line("live loop (tracked), bar frames", t)
        line("  whole document in frame", t["in_frame"])
        line("  2-3 corners in view", t["partly_out"])
        live, cold = f["live_ms"], f["cold_ms"]
        print(
            f"  live analysis (detect + quality) per 720p frame: tracked median "
            f"{live['median']} ms, p95 {live['p95']} ms; baseline search every frame "
            f"median {cold['median']} ms, p95 {cold['p95']} ms (bar 30 ms)"
        )


# --- eval hologram -----------------------------------------------------------------


def _eval_variants(
    docs: list[render.SpecimenDocument],
    n: int,
    seconds: float,
    fps: float,
    seed: int,
    label: str,
    tilt: bool = False,
) -> dict[str, Any]:
    """Verdicts on rendered genuine, flat-copy and screen sequences: under a random
    torch pattern, or (tilt) with the torch off while the document is tilted."""
    out: dict[str, Any] = {}
    done = 0
    for attack in render.ATTACKS:
        verdicts = []
        for i in range(n):
            done += 1
            progress(f"eval hologram {label}: {done}/{3 * n} ({attack})")
            pattern = [] if tilt else random_torch_pattern(seconds)
            video = render.render_video(
                docs[i % len(docs)],
                seconds=seconds,
                fps=fps,
                attack=attack,
                torch_on=pattern,
                seed=seed + 7919 * i + len(attack),
            )
            if tilt:
                result, ms = _timed(check_tilt, video.frames, video.times)
            else:
                result, ms = _timed(check_hologram, video.frames, video.times, pattern)
            verdicts.append((result.verdict, ms / len(video.frames)))
        v = [x for x, _ in verdicts]
        ok = [(x == "genuine") == (attack == "none") for x in v]
        out["genuine" if attack == "none" else attack] = {
            "sequences": n,
            "expected": "genuine" if attack == "none" else "not genuine",
            "correct": round(float(np.mean(ok)), 4),
            "error_rate": round(1 - float(np.mean(ok)), 4),
            "verdicts": {k: v.count(k) for k in ("genuine", "suspect", "inconclusive")},
            "ms_per_frame": round(float(np.mean([m for _, m in verdicts])), 1),
        }
    end_progress()
    return out


def _check_hologram_args(args: argparse.Namespace) -> None:
    if args.sequences < 1:
        raise InputError(f"-n {args.sequences}: give at least 1 sequence per variant")
    for name, value in (("--corpus-n", args.corpus_n), ("--tilt-n", args.tilt_n)):
        if value < 0:
            raise InputError(f"{name} {value}: give 0 (none) or more")
    check_seed(args.seed)
    if not (math.isfinite(args.fps) and 1 <= args.fps <= 60):
        raise InputError(f"--fps {args.fps:g}: give 1 to 60 frames per second")
    if not (math.isfinite(args.seconds) and 0 < args.seconds <= 60):
        raise InputError(f"--seconds {args.seconds:g}: give a length up to 60 s")
    try:
        random_torch_pattern(args.seconds)
    except ValueError as exc:
        raise InputError(f"--seconds: {exc}") from None


def cmd_eval_hologram(args: argparse.Namespace) -> int:
    _check_hologram_args(args)
    docs = [
        render.draw_document("id1", seed=args.seed),
        render.draw_document("td3", seed=args.seed + 1),
    ]
    corpus = _specimens(args.specimen)
    n, secs, fps = args.sequences, args.seconds, args.fps
    out: dict[str, Any] = {"load_before": _load()}
    out["synthetic"] = _eval_variants(docs, n, secs, fps, args.seed, "synthetic")
    if corpus and args.corpus_n > 0:
        cdocs = [doc for _, doc in corpus]
        out["corpus_rendered"] = _eval_variants(
            cdocs, args.corpus_n * len(cdocs), secs, fps, args.seed + 500, "corpus"
        )
        out["corpus_images"] = [name for name, _ in corpus]
    if args.tilt_n > 0:
        out["tilt_torch_off"] = _eval_variants(
            docs, args.tilt_n, secs, fps, args.seed + 900, "tilt", tilt=True
        )
    out["load_after"] = _load()
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    print("bar: genuine passes and flat copy fails in >= 95% each; screens fail too")
    for key in ("synthetic", "corpus_rendered", "tilt_torch_off"):
        if key not in out:
            continue
        print(f"{key}:")
        for name, f in out[key].items():
            print(
                f"  {name:8s} n={f['sequences']:3d}  correct {f['correct']:6.1%}  "
                f"error rate {f['error_rate']:6.1%}  verdicts {f['verdicts']}  "
                f"{f['ms_per_frame']} ms/frame"
            )
    return 0
