"""Face finding figures: the array cascade against the window-by-window one it
replaced, on rendered live frames, rendered documents (also through VP8) and the
specimen corpus. Used by `identdesk eval faces` and the tests."""

from __future__ import annotations

import fractions
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np

from media import render
from media.document import RECTIFIED_SIZE, rectify
from media.faces import Face, find_faces, find_faces_with, portrait_face
from media.faces_cascade import CENTRE, NEIGHBOURS, LbpCascade, group

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
# specimen images that show no face: card backs, a payment card
NO_FACE = (
    "ausweiskopie/ch_nidk_back.jpg",
    "ausweiskopie/npa_back.png",
    "ausweiskopie/vorläufig_back.jpg",
    "fastmrz/nomrz.jpg",
    "passporteye/testdata/0_id-esp.png",
    "passporteye/testdata/100_id-che.jpg",
    "passporteye/testdata/100_id-si.jpg",
    "passporteye/testdata/100_id-usa.jpg",
    "passporteye/testdata/53_id-d.jpg",
    "passporteye/testdata/77_card-cmw.png",
)


# --- the window-by-window evaluation (identdesk before the array cascade) -------


def _legacy_codes(
    cascade: LbpCascade, ii: np.ndarray, px: np.ndarray, py: np.ndarray, rect: Any
) -> np.ndarray:
    x, y, w, h = (int(v) for v in rect)
    xs = px[:, None] + x + np.arange(4) * w  # (n, 4)
    ys = py[:, None] + y + np.arange(4) * h
    p = ii[ys[:, :, None], xs[:, None, :]].astype(np.int64)  # (n, 4 rows, 4 cols)
    blocks = (p[:, 1:, 1:] - p[:, :-1, 1:] - p[:, 1:, :-1] + p[:, :-1, :-1]).reshape(
        -1, 9
    )
    code = np.zeros(len(px), np.int64)
    for bit, k in zip(range(7, -1, -1), NEIGHBOURS, strict=True):
        code |= np.where(blocks[:, k] >= blocks[:, CENTRE], 1 << bit, 0)
    return code


def legacy_windows(
    cascade: LbpCascade, gray: np.ndarray, scale_step: float, min_size: float
) -> list[tuple[float, float, float]]:
    """The previous evaluation: each level's windows through the stages one stump
    at a time (same pyramid and grid as `LbpCascade.atlases`)."""
    h, w = gray.shape
    found = []
    factor = max(1.0, min_size / cascade.width)
    while w / factor >= cascade.width and h / factor >= cascade.height:
        sw, sh = int(w / factor), int(h / factor)
        img = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
        ii = cv2.integral(img)
        step = 1 if factor > 2 else 2
        ys, xs = np.mgrid[0 : sh - cascade.height : step, 0 : sw - cascade.width : step]
        px, py = xs.ravel(), ys.ravel()
        alive = np.arange(len(px))
        for stage in cascade.stages:
            total = np.zeros(len(alive))
            for rect, table in zip(stage.rects, stage.leaves, strict=True):
                total += table[_legacy_codes(cascade, ii, px[alive], py[alive], rect)]
            alive = alive[total >= stage.threshold]
            if not len(alive):
                break
        found += [
            (px[k] * factor, py[k] * factor, cascade.width * factor) for k in alive
        ]
        factor *= scale_step
    return found


def legacy_detect(
    cascade: LbpCascade,
    gray: np.ndarray,
    *,
    scale_step: float = 1.15,
    min_size: float = 40,
    min_neighbors: int = 3,
) -> list[tuple[int, ...]]:
    return group(legacy_windows(cascade, gray, scale_step, min_size), min_neighbors)


def legacy_find_faces(
    image: np.ndarray, *, work_width: int = 480, min_size: int = 36
) -> list[Face]:
    return find_faces_with(
        image,
        lambda cascade, gray: legacy_detect(cascade, gray, min_size=min_size),
        work_width,
    )


def legacy_portrait_face(rectified: np.ndarray) -> Face | None:
    """The previous portrait search: the largest face anywhere on the document."""
    width = min(640, rectified.shape[1])
    faces = legacy_find_faces(rectified, work_width=width, min_size=40)
    return faces[0] if faces else None


# --- cases -------------------------------------------------------------------


@dataclass
class Case:
    """One image and where its face is (None: it shows no face)."""

    name: str
    image: np.ndarray
    truth: tuple[int, ...] | None
    ignore: np.ndarray | None = None  # quad where other faces are expected (card)


def vp8_roundtrip(frames: list[np.ndarray], bitrate: int = 500_000) -> np.ndarray:
    """The last frame after aiortc's VP8 encoder and decoder, as in a call."""
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
    from aiortc.jitterbuffer import JitterFrame

    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    encoder.target_bitrate = bitrate
    out = frames[-1]
    for i, img in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
        payloads, stamp = encoder.encode(frame)
        data = b"".join(vp8_depayload(p) for p in payloads)
        for decoded in decoder.decode(JitterFrame(data, stamp)):
            out = cast(av.VideoFrame, decoded).to_ndarray(format="bgr24")
    return out


def live_cases(n: int, seed: int) -> Iterator[Case]:
    """720p desk scenes with the holder's face (drawn) beside or over the card."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        doc = render.draw_document("id1" if i % 2 == 0 else "td3", seed=seed + i)
        scene = render.SceneRenderer(doc, seed=seed + i)
        frame, corners = scene.frame(float(rng.uniform(0, 5)), False)
        w = int(rng.uniform(150, 420))
        h = int(w * 1.25)
        x = int(rng.uniform(0, 1280 - w))
        y = int(rng.uniform(0, 720 - h))
        render.draw_portrait(frame, (x, y, w, h))
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])
        frame = cast(np.ndarray, cv2.imdecode(buf, cv2.IMREAD_COLOR))
        yield Case(f"live-{i}", frame, (x, y, w, h), corners)


def specimen_documents(corpus: Path = CORPUS) -> list[tuple[Any, tuple[int, ...]]]:
    """Documents to film, each with the rectangle its portrait's centre lies in:
    drawn ID-1 cards and, when the corpus is there, two specimen scans with real
    portraits (the drawn passport's stretched portrait is no frontal face)."""
    docs: list[tuple[Any, tuple[int, ...]]] = []
    for seed in range(3):
        doc = render.draw_document("id1", seed=seed)
        docs.append((doc, doc.portrait))
    for name, kind in (
        ("ausweiskopie/npa_2021.png", "id1"),
        ("ausweiskopie/passport.png", "td3"),
    ):
        image = cv2.imread(str(corpus / name), cv2.IMREAD_COLOR)
        if image is not None:
            doc = render.document_from_image(image, kind)
            h, w = doc.image.shape[:2]
            docs.append((doc, (0, 0, w // 2, h)))  # the left half
    return docs


def portrait_cases(
    docs: list[tuple[Any, tuple[int, ...]]],
    n: int,
    seed: int,
    size: tuple[int, int],
    vp8: bool,
) -> Iterator[Case]:
    """Documents filmed at `size` (JPEG, or VP8 as in a call), rectified from their
    true corners."""
    for i in range(n):
        doc, truth = docs[i % len(docs)]
        scene = render.SceneRenderer(doc, width=size[0], height=size[1], seed=seed + i)
        if vp8:
            # aiortc's encoder starts at 500 kbit/s and goes down to 250 under loss
            frames = [scene.frame(k / 15, False)[0] for k in range(12)]
            frame = vp8_roundtrip(frames, (500_000, 250_000)[i % 2])
            corners = scene.frame(11 / 15, False)[1]
        else:
            frame, corners = scene.frame(1.0, False)
        rect = rectify(frame, corners, doc.kind)
        codec = "vp8" if vp8 else "jpeg"
        yield Case(f"{codec}-{size[1]}p-{doc.kind}-{i}", rect, truth)


def corpus_cases(root: Path = CORPUS, scans_only: bool = False) -> Iterator[Case]:
    """Every specimen image (or only those with an ID-1 or TD3 page's proportions);
    the truth is the whole image where it shows a face."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or (scans_only and _scan_kind(image) is None):
            continue
        name = path.relative_to(root).as_posix()
        h, w = image.shape[:2]
        yield Case(name, image, None if name in NO_FACE else (0, 0, w, h))


def _scan_kind(image: np.ndarray) -> str | None:
    """The format whose proportions a landscape scan has (within 10 %)."""
    h, w = image.shape[:2]
    for kind, (dw, dh) in (("id1", render.ID1_MM), ("td3", render.TD3_MM)):
        if abs(np.log(w / h / (dw / dh))) < 0.1:
            return kind
    return None


def as_document(image: np.ndarray) -> np.ndarray:
    """A specimen scan at the rectified size of its format."""
    kind = _scan_kind(image) or "id1"
    return cv2.resize(image, RECTIFIED_SIZE[kind], interpolation=cv2.INTER_AREA)


# --- figures -----------------------------------------------------------------

Finder = Callable[[np.ndarray], list[Face]]


def _centre_in(box: tuple[int, ...], rect: tuple[int, ...]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return rect[0] <= cx <= rect[0] + rect[2] and rect[1] <= cy <= rect[1] + rect[3]


@dataclass
class Tally:
    """Found and false faces and milliseconds per image of one finder."""

    cases: int = 0
    with_face: int = 0
    found: int = 0
    false: int = 0
    ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def add(self, case: Case, faces: list[Face], ms: float, cpu_ms: float) -> None:
        self.cases += 1
        self.ms.append(ms)
        self.cpu_ms.append(cpu_ms)
        if case.truth is None:
            self.false += len(faces)
            return
        self.with_face += 1
        hit = [f for f in faces if _centre_in(f.box, case.truth)]
        if hit:
            self.found += 1
        else:
            self.missed.append(case.name)
        # other faces are false unless on the card, where its portrait is
        for f in faces:
            if f in hit:
                continue
            if case.ignore is not None:
                centre = (f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2)
                quad = case.ignore.reshape(-1, 1, 2).astype(np.float32)
                if cv2.pointPolygonTest(quad, centre, False) >= 0:
                    continue
            self.false += 1

    def figures(self) -> dict[str, Any]:
        ms = np.array(self.ms) if self.ms else np.zeros(1)
        cpu = np.array(self.cpu_ms) if self.cpu_ms else np.zeros(1)
        return {
            "images": self.cases,
            "with_face": self.with_face,
            "found": self.found,
            "false": self.false,
            "ms_median": round(float(np.median(ms)), 1),
            "ms_p95": round(float(np.percentile(ms, 95)), 1),
            # this process's processor time: less swayed by other processes' load
            "cpu_ms_median": round(float(np.median(cpu)), 1),
            "missed": self.missed,
        }


def compare(
    cases: Iterator[Case],
    finders: dict[str, Finder],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Each finder on each case, one after the other on the same image; with more
    than one finder, how many images got the same boxes from all."""
    tallies = {name: Tally() for name in finders}
    same = 0
    for i, case in enumerate(cases):
        if progress:
            progress(f"{case.name} ({i + 1})")
        boxes = []
        for name, finder in finders.items():
            t0, c0 = time.perf_counter(), time.process_time()
            faces = finder(case.image)
            ms = (time.perf_counter() - t0) * 1000
            tallies[name].add(case, faces, ms, (time.process_time() - c0) * 1000)
            boxes.append([f.box for f in faces])
        same += all(b == boxes[0] for b in boxes)
    out: dict[str, Any] = {name: t.figures() for name, t in tallies.items()}
    if len(finders) > 1:
        out["same_boxes"] = same
    return out


def _largest(finder: Callable[[np.ndarray], Face | None]) -> Finder:
    def run(image: np.ndarray) -> list[Face]:
        face = finder(image)
        return [face] if face is not None else []

    return run


def _corpus_document(finder: Callable[[np.ndarray], Face | None]) -> Finder:
    def run(image: np.ndarray) -> list[Face]:
        doc = as_document(image)
        face = finder(doc)
        if face is None:
            return []
        # back to the scan's pixels, where the truth is
        sx, sy = image.shape[1] / doc.shape[1], image.shape[0] / doc.shape[0]
        x, y, w, h = face.box
        box = (int(x * sx), int(y * sy), int(w * sx), int(h * sy))
        return [Face(box, face.crop)]

    return run


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def evaluate(
    n: int = 10,
    seed: int = 4000,
    corpus: Path = CORPUS,
    baseline: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The figures `identdesk eval faces` prints, old and new side by side."""
    live: dict[str, Finder] = {"new": find_faces}
    doc: dict[str, Finder] = {"new": _largest(portrait_face)}
    scan: dict[str, Finder] = {"new": _corpus_document(portrait_face)}
    if baseline:
        live = {"old": legacy_find_faces, **live}
        doc = {"old": _largest(legacy_portrait_face), **doc}
        scan = {"old": _corpus_document(legacy_portrait_face), **scan}
    out: dict[str, Any] = {"load_before": load()}
    out["live_720p"] = compare(live_cases(n, seed), live, progress)
    docs = specimen_documents(corpus)
    out["portrait_720p_jpeg"] = compare(
        portrait_cases(docs, n, seed + 100, (1280, 720), False), doc, progress
    )
    out["portrait_540p_vp8"] = compare(
        portrait_cases(docs, n, seed + 200, (960, 540), True), doc, progress
    )
    if corpus.is_dir():
        out["corpus_find_faces"] = compare(corpus_cases(corpus), live, progress)
        out["corpus_portrait"] = compare(corpus_cases(corpus, True), scan, progress)
    out["load_after"] = load()
    return out
