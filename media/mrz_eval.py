"""Evaluate the MRZ reader on a folder of images against an annotation file."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from media.mrz import parse_mrz
from media.mrz_locate import QUARTER_TURNS
from media.mrz_reader import read_mrz

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(root: Path) -> list[Path]:
    """Every image file under `root`, sorted."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_truth(path: Path) -> dict[str, dict[str, Any]]:
    """The annotation file's entries, keyed by the path relative to the corpus."""
    return json.loads(path.read_text(encoding="utf-8"))["images"]


@dataclass
class EvalReport:
    """Figures of one evaluation run."""

    images: int = 0
    annotated: int = 0
    with_mrz: int = 0
    found: int = 0
    false_found: int = 0
    exact: int = 0
    negatives_right: int = 0
    fields_right: int = 0
    fields_total: int = 0
    checks_right: int = 0
    checks_total: int = 0
    valid: int = 0
    wrong_valid: int = 0
    uncertain: int = 0
    ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        ms = np.asarray(self.ms or [0.0])
        scored = self.with_mrz + (self.annotated - self.with_mrz)
        return {
            "images": self.images,
            "annotated": self.annotated,
            "with_mrz": self.with_mrz,
            "mrz_found": self.found,
            "found_without_mrz": self.false_found,
            "exactly_read": self.exact,
            "exact_rate": round(self.exact / max(self.with_mrz, 1), 4),
            "correct_incl_negatives": self.exact + self.negatives_right,
            "correct_rate_incl_negatives": round(
                (self.exact + self.negatives_right) / max(scored, 1), 4
            ),
            "field_accuracy": round(self.fields_right / max(self.fields_total, 1), 4),
            "check_verdicts_right": self.checks_right,
            "check_verdicts_total": self.checks_total,
            "reported_valid": self.valid,
            "wrong_valid": self.wrong_valid,
            "held_back_uncertain": self.uncertain,
            "ms_mean": round(float(ms.mean()), 1),
            "ms_p95": round(float(np.percentile(ms, 95)), 1),
            "ms_max": round(float(ms.max()), 1),
            "not_exact": list(self.misses),
        }


def score_one(report: EvalReport, name: str, got: dict, truth: dict) -> None:
    if not truth.get("mrz"):
        if got["found"]:
            report.false_found += 1
            report.wrong_valid += int(got["valid"])
        else:
            report.negatives_right += 1
        return
    report.with_mrz += 1
    report.found += int(got["found"])
    lines = truth["lines"]
    exact = got["found"] and got["lines"] == lines
    report.exact += int(exact)
    report.valid += int(got["valid"])
    report.uncertain += int(bool(got.get("uncertain_fields")))
    if got["valid"] and not exact:
        report.wrong_valid += 1
    if not exact:
        report.misses.append(name)

    # fields and check verdicts of the reading against those of the true MRZ
    want = parse_mrz(lines, correct=False)
    for key, value in want.fields.items():
        report.fields_total += 1
        report.fields_right += int((got.get("fields") or {}).get(key) == value)
    for key, ok in want.checks.items():
        report.checks_total += 1
        report.checks_right += int((got.get("checks") or {}).get(key) == ok)


def rotate_image(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned counter-clockwise by `degrees`, as a document lying at
    that angle would be photographed.

    Quarter turns move pixels exactly. Other angles resample the image onto a
    canvas that holds all of it, the corners filled with its border tone.
    """
    quarter = degrees / 90.0
    if quarter == round(quarter):
        k = int(round(quarter)) % 4
        return image if k == 0 else cv2.rotate(image, QUARTER_TURNS[k])
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
    m[:, 2] += (nw - w) / 2, (nh - h) / 2
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    tone = np.median(edge.reshape(len(edge), -1), axis=0)
    return cv2.warpAffine(
        image,
        m,
        (nw, nh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in tone),
    )


def evaluate_rotations(
    root: Path,
    truth_path: Path,
    rotations: Sequence[float],
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[float, EvalReport]:
    """Read every image under `root`, turned by each of `rotations` (degrees,
    counter-clockwise) in memory, and compare with the annotations."""
    truth = load_truth(truth_path)
    reports = {r: EvalReport() for r in rotations}
    paths = list_images(root)
    total = len(paths) * len(rotations)
    for i, path in enumerate(paths):
        rel = path.relative_to(root).as_posix()
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for j, rotation in enumerate(rotations):
            report = reports[rotation]
            report.images += 1
            if progress:
                progress(i * len(rotations) + j + 1, total, f"{rotation:g}: {rel}")
            if image is None:
                if j == 0:
                    logger.warning("x unreadable image %s", rel)
                continue
            turned = rotate_image(image, rotation)
            start = time.perf_counter()
            reading = read_mrz(turned)
            report.ms.append((time.perf_counter() - start) * 1000)
            if rel not in truth:
                continue
            report.annotated += 1
            score_one(report, rel, reading.to_dict(), truth[rel])
    return reports


def evaluate(
    root: Path,
    truth_path: Path,
    progress: Callable[[int, int, str], None] | None = None,
) -> EvalReport:
    """Read every image under `root` and compare with the annotations."""
    return evaluate_rotations(root, truth_path, (0.0,), progress)[0.0]
