"""Synthetic specimen documents for tests and QA: an ID-1 card and a TD3 page.

Everything here is fictional: the specimen identity (MUSTERMANN ERIKA, issuing state
UTO, the ICAO example state), the drawn portrait and the hologram patch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# ID-1 is 85.60 x 53.98 mm, a TD3 data page 125 x 88 mm (ISO/IEC 7810, ICAO 9303).
# 300 dpi is 11.811 px/mm.
ID1_MM = (85.60, 53.98)
TD3_MM = (125.0, 88.0)
ID1_PX = (1011, 638)
TD3_PX = (1476, 1039)
OCRB_PATHS = (
    "/usr/share/fonts/opentype/ocr-b/OCRB.otf",
    "/usr/share/fonts/truetype/ocr-b/OCRB.ttf",
)
ATTACKS = ("none", "flat", "screen")


@dataclass
class SpecimenDocument:
    """A drawn document: the image and where its parts are, in image pixels."""

    kind: str  # "id1" or "td3"
    image: np.ndarray
    mrz: list[str]
    portrait: tuple[int, int, int, int]  # x, y, w, h
    holograms: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def size_mm(self) -> tuple[float, float]:
        return ID1_MM if self.kind == "id1" else TD3_MM


# --- MRZ text ----------------------------------------------------------------


def _check_digit(text: str) -> str:
    weights = (7, 3, 1)
    total = 0
    for i, ch in enumerate(text):
        if ch.isdigit():
            value = int(ch)
        elif ch.isalpha():
            value = ord(ch) - 55
        else:
            value = 0
        total += value * weights[i % 3]
    return str(total % 10)


def specimen_mrz(kind: str) -> list[str]:
    """The specimen MRZ lines (TD1 for id1, TD3 for td3) with correct check digits."""
    number, birth, expiry = "L01X00T47", "830812", "341031"
    if kind == "id1":
        line1 = f"I<UTO{number}{_check_digit(number)}".ljust(30, "<")
        line2 = (
            f"{birth}{_check_digit(birth)}F{expiry}{_check_digit(expiry)}UTO"
        ).ljust(29, "<")
        composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
        line2 += _check_digit(composite)
        line3 = "MUSTERMANN<<ERIKA".ljust(30, "<")
        return [line1, line2, line3]
    line1 = "P<UTOMUSTERMANN<<ERIKA".ljust(44, "<")
    personal = "<" * 14
    line2 = (
        f"{number}{_check_digit(number)}UTO{birth}{_check_digit(birth)}F"
        f"{expiry}{_check_digit(expiry)}{personal}{_check_digit(personal)}"
    )
    composite = line2[0:10] + line2[13:20] + line2[21:43]
    return [line1, line2 + _check_digit(composite)]


# --- drawing -----------------------------------------------------------------


class _Text:
    """Text drawing: OCR-B through OpenCV's font engine when present, else Hershey."""

    def __init__(self) -> None:
        self.ocrb = None
        face_cls = getattr(cv2, "FontFace", None)
        for path in OCRB_PATHS:
            if face_cls is not None and Path(path).exists():
                self.ocrb = face_cls(path)
                break

    def mrz(self, img: np.ndarray, text: str, org: tuple[int, int], width: int) -> None:
        if self.ocrb is not None:
            # OCR-B advance is 0.747 of the size in pixels (measured)
            size = int(width / (len(text) * 0.75))
            cv2.putText(img, text, org, (20, 20, 20), self.ocrb, size)
            return
        scale = width / (len(text) * 20.0)
        cv2.putText(
            img,
            text,
            org,
            cv2.FONT_HERSHEY_PLAIN,
            scale * 1.4,
            (20, 20, 20),
            2,
            cv2.LINE_AA,
        )

    @staticmethod
    def label(
        img: np.ndarray,
        text: str,
        org: tuple[int, int],
        scale: float,
        color: tuple[int, int, int] = (40, 40, 40),
        thick: int = 1,
    ) -> None:
        cv2.putText(
            img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA
        )


def _guilloche(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    xs = np.arange(0, w, 3)
    for k in range(14):
        amp = rng.uniform(6, 22)
        period = rng.uniform(80, 260)
        phase = rng.uniform(0, 2 * np.pi)
        y0 = (k + 0.5) * h / 14
        ys = y0 + amp * np.sin(xs / period * 2 * np.pi + phase)
        pts = np.stack([xs, ys], axis=1).astype(np.int32)
        color = tuple(int(c) for c in rng.integers(150, 215, 3))
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)


def draw_portrait(img: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """A shaded, face-like drawing (no real person) with eyes, brows, nose, mouth."""
    x, y, w, h = rect
    roi = img[y : y + h, x : x + w]
    roi[:] = (205, 200, 195)
    cx, cy = w // 2, int(h * 0.47)
    fw, fh = int(w * 0.30), int(h * 0.30)

    # hair, neck and shoulders, then the face
    cv2.ellipse(
        roi,
        (cx, cy - fh // 5),
        (int(fw * 1.2), int(fh * 1.15)),
        0,
        0,
        360,
        (40, 50, 70),
        -1,
        cv2.LINE_AA,
    )
    cv2.rectangle(
        roi,
        (cx - fw // 3, cy + fh // 2),
        (cx + fw // 3, cy + fh + 20),
        (120, 150, 190),
        -1,
    )
    cv2.ellipse(
        roi,
        (cx, h),
        (int(w * 0.48), int(h * 0.22)),
        0,
        180,
        360,
        (90, 70, 60),
        -1,
        cv2.LINE_AA,
    )
    face = np.zeros(roi.shape[:2], np.float32)
    cv2.ellipse(face, (cx, cy), (fw, fh), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 1.0 - 0.25 * ((xx - cx) / fw) ** 2 - 0.15 * ((yy - cy) / fh) ** 2
    skin = np.array([140, 170, 215], np.float32)
    face_img = (skin[None, None, :] * shade[..., None]).clip(0, 255)
    roi[:] = (roi * (1 - face[..., None]) + face_img * face[..., None]).astype(np.uint8)

    # features, proportions of an average adult face
    ex, ey = int(fw * 0.42), cy - int(fh * 0.12)
    ew, eh = max(3, int(fw * 0.2)), max(2, int(fh * 0.08))
    for sx in (-1, 1):
        cv2.ellipse(
            roi,
            (cx + sx * ex, ey - int(fh * 0.2)),
            (ew + 4, eh // 2 + 2),
            0,
            190,
            350,
            (40, 45, 60),
            max(2, eh // 2),
            cv2.LINE_AA,
        )
        cv2.ellipse(
            roi,
            (cx + sx * ex, ey),
            (ew, eh),
            0,
            0,
            360,
            (235, 235, 235),
            -1,
            cv2.LINE_AA,
        )
        cv2.circle(
            roi, (cx + sx * ex, ey), max(2, eh - 1), (50, 40, 30), -1, cv2.LINE_AA
        )
        cv2.ellipse(
            roi,
            (cx + sx * ex, ey),
            (ew + 3, eh + 6),
            0,
            0,
            360,
            (100, 120, 160),
            2,
            cv2.LINE_AA,
        )
    nose = np.array(
        [[cx, ey + 4], [cx - fw // 7, cy + fh // 4], [cx + fw // 7, cy + fh // 4]],
        np.int32,
    )
    cv2.fillPoly(roi, [nose], (115, 140, 185), cv2.LINE_AA)
    cv2.ellipse(
        roi,
        (cx, cy + int(fh * 0.52)),
        (int(fw * 0.38), int(fh * 0.1)),
        0,
        0,
        180,
        (70, 70, 150),
        -1,
        cv2.LINE_AA,
    )
    roi[:] = cv2.GaussianBlur(roi, (0, 0), max(1.0, w / 180))


def _hologram_print(img: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """The dull, silvery look of a diffractive patch under diffuse light."""
    x, y, w, h = rect
    roi = img[y : y + h, x : x + w]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - w / 2, yy - h / 2)
    rings = 0.5 + 0.5 * np.sin(r / 5.0) * np.cos(np.arctan2(yy - h / 2, xx - w / 2) * 6)
    base = 170 + 40 * rings
    roi[:] = (0.35 * roi + 0.65 * base[..., None]).astype(np.uint8)
    cv2.ellipse(
        roi,
        (w // 2, h // 2),
        (w // 3, h // 3),
        0,
        0,
        360,
        (150, 150, 150),
        2,
        cv2.LINE_AA,
    )
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (160, 160, 160), 1)


def draw_document(kind: str = "id1", seed: int = 0) -> SpecimenDocument:
    """Draw a fictional specimen ID-1 card or TD3 passport data page at 300 dpi."""
    if kind not in ("id1", "td3"):
        raise ValueError(f"unknown document kind {kind!r}: use 'id1' or 'td3'")
    rng = np.random.default_rng(seed)
    w, h = ID1_PX if kind == "id1" else TD3_PX
    u = w / 1011  # layout unit: pixels of the ID-1 layout
    img = np.zeros((h, w, 3), np.uint8)
    tint = np.array(
        [rng.uniform(200, 235), rng.uniform(215, 240), rng.uniform(215, 240)]
    )
    grad = np.linspace(0.92, 1.04, w, dtype=np.float32)[None, :, None]
    img[:] = np.clip(tint[None, None, :] * grad, 0, 255).astype(np.uint8)
    _guilloche(img, rng)
    text = _Text()

    # header band
    title = "SPECIMEN IDENTITY CARD" if kind == "id1" else "SPECIMEN PASSPORT"
    cv2.rectangle(
        img,
        (int(36 * u), int(30 * u)),
        (w - int(36 * u), int(80 * u)),
        (120, 90, 60),
        -1,
    )
    text.label(
        img,
        "UTOPIA  -  " + title,
        (int(50 * u), int(66 * u)),
        1.1 * u,
        (245, 245, 245),
        max(1, int(2 * u)),
    )

    # portrait, fields and hologram; the MRZ takes the bottom
    mrz = specimen_mrz(kind)
    mrz_h = int(h * (0.30 if kind == "id1" else 0.17))
    top = int(95 * u)
    portrait = (int(35 * u), top, int(250 * u), int((h - mrz_h - top) * 0.95))
    draw_portrait(img, portrait)
    fx = portrait[0] + portrait[2] + int(30 * u)
    fields = [
        ("Name / Surname", "MUSTERMANN"),
        ("Vornamen / Given names", "ERIKA"),
        ("Geburtstag / Date of birth", "12.08.1983"),
        ("Gueltig bis / Date of expiry", "31.10.2034"),
        ("Dokumentnummer / Document no.", "L01X00T47"),
    ]
    step = (h - mrz_h - top) / (len(fields) + 0.5)
    for i, (label, value) in enumerate(fields):
        y0 = int(top + 25 * u + i * step)
        text.label(img, label, (fx, y0), 0.5 * u, (90, 70, 60))
        text.label(
            img,
            value,
            (fx, int(y0 + 32 * u)),
            0.95 * u,
            (30, 30, 30),
            max(1, int(2 * u)),
        )
    hw = int(w * 0.25)
    holo = (w - hw - int(30 * u), top + int(10 * u), hw, int((h - mrz_h - top) * 0.8))
    _hologram_print(img, holo)

    # MRZ, OCR-B, bottom aligned
    line_h = mrz_h / (len(mrz) + 0.4)
    for i, line in enumerate(mrz):
        yb = int(h - mrz_h + (i + 1) * line_h)
        text.mrz(img, line, (int(30 * u), yb), w - int(60 * u))
    return SpecimenDocument(kind, img, mrz, portrait, [holo])


def document_from_image(image: np.ndarray, kind: str | None = None) -> SpecimenDocument:
    """Wrap a specimen photo/scan for rendering; the hologram patch is assumed where
    ID cards and passports commonly carry one (right half, middle)."""
    h, w = image.shape[:2]
    if kind is None:
        kind = "id1" if w / h > 1.5 else "td3"
    target = ID1_PX if kind == "id1" else TD3_PX
    img = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    tw, th = target
    holo = (int(tw * 0.66), int(th * 0.22), int(tw * 0.24), int(th * 0.36))
    return SpecimenDocument(kind, img, [], (0, 0, 0, 0), [holo])
