"""Build the MRZ glyph classifier from rendered OCR-B (a developer tool).

Run `python -m media.mrz_glyphs` to regenerate `media/mrz_model.py`. It needs
Pillow and the OCR-B font of the Debian package fonts-ocr-b; the reader itself
needs neither, it only decodes the generated file. Synthetic MRZ blocks are
rendered, degraded like phone photos and scans (rotation, low resolution, blur,
noise, JPEG, stroke weight, ink spread, perspective, motion blur, uneven
light), and cut by the reader's own line code, so the classifier learns
exactly the crops it will see.

The shipped model is an ensemble: `--keep FILE` keeps the networks of an
earlier generated file and adds the newly trained one. Its first member was
trained on plainer print by this tool at commit a8cbd9b; its second by the
defaults here (about 7 CPU minutes on this 2-core machine).
"""

from __future__ import annotations

import argparse
import base64
import io
import logging
import runpy
import time
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from media.mrz import ALPHABET
from media.mrz_cut import (
    Line,
    cut_line,
    ink_map,
    straighten,
    warp_strip,
)

logger = logging.getLogger(__name__)

FONT = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"
FONT_SHARP = "/usr/share/fonts/opentype/ocr-b/OCRBS.otf"
MODEL_FILE = Path(__file__).with_name("mrz_model.py")
TEMPLATE_CAP = 40  # cap height of the glyph templates shipped for tests


def random_text(rng: np.random.Generator, count: int) -> str:
    """A line of random MRZ characters with filler runs, as real lines have."""
    chars: list[str] = []
    while len(chars) < count:
        if rng.random() < 0.04:
            chars.extend("<" * int(rng.integers(2, 12)))
        else:
            chars.append(ALPHABET[int(rng.integers(0, len(ALPHABET)))])
    return "".join(chars[:count])


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A gray paper tone with guilloche-like waves and soft blotches."""
    img = np.full((h, w), rng.uniform(150, 255), np.float32)
    if rng.random() < 0.6:
        # fine waves, as printed behind many MRZs
        f = rng.uniform(0.02, 0.15)
        xx = np.arange(w, dtype=np.float32)[None, :] * f
        yy = np.sin(np.arange(h, dtype=np.float32) * f * 0.7)[:, None]
        img += np.sin(xx + yy * rng.uniform(1, 6)) * rng.uniform(5, 35)
    if rng.random() < 0.5:
        # blotches: smooth noise made small and blown up (a blur of sigma 25)
        small = rng.normal(0, 1, (h // 16 + 2, w // 16 + 2)).astype(np.float32)
        g = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (w, h))
        img += g / (np.abs(g).max() + 1e-6) * rng.uniform(5, 40)
    return img


def render_block(
    rng: np.random.Generator, texts: list[str]
) -> tuple[np.ndarray, list[Line]]:
    """A gray image of MRZ lines and each line's axis, in image pixels."""
    from PIL import Image, ImageDraw, ImageFont

    size = int(rng.integers(34, 56))
    font = ImageFont.truetype(FONT if rng.random() < 0.7 else FONT_SHARP, size)
    left, top, right, bottom = font.getbbox("A")
    cap = int(bottom - top)  # FreeType boxes are whole pixels already
    spacing = cap * rng.uniform(1.5, 2.1)
    width = int(font.getlength(texts[0])) + 4 * cap
    height = int(spacing * len(texts) + 4 * cap)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    lines = []
    for i, text in enumerate(texts):
        x, y = 2 * cap, int(2 * cap + i * spacing)
        draw.text((x, y), text, font=font, fill=0)
        bx0, by0, bx1, by1 = draw.textbbox((x, y), text, font=font)
        mid = y + (top + bottom) / 2
        lines.append(Line((float(bx0), mid), (float(bx1), mid), float(cap)))
    text_mask = 255 - np.asarray(img)

    text_mask = _stroke_weight(rng, text_mask, cap)

    bg = _background(rng, height, width)
    alpha = text_mask.astype(np.float32) * (rng.uniform(0.75, 1.0) / 255)
    gray = bg * (1 - alpha) + rng.uniform(0, 90) * alpha
    return np.clip(gray, 0, 255).astype(np.uint8), lines


def _stroke_weight(rng: np.random.Generator, mask: np.ndarray, cap: int) -> np.ndarray:
    """Thinner or bolder strokes, and ink spread that rounds the corners.

    Passport printers lay the MRZ down bolder than the font (up to about twice
    the stroke width); laser-engraved cards print it thinner.
    """
    k = int(rng.choice([-1, 0, 0, 1, 1, 2, 3]))
    k = int(round(k * cap / 30))
    if k > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1))
        mask = cv2.dilate(mask, disk)
    elif k < 0:
        mask = cv2.erode(mask, np.ones((-k + 1, -k + 1), np.uint8))
    if rng.random() < 0.4:
        # ink spread: blur and re-threshold, which rounds corners and closes gaps
        soft = cv2.GaussianBlur(mask, (0, 0), cap * rng.uniform(0.03, 0.08))
        level = rng.uniform(70, 150)
        mask = np.where(soft > level, 255, 0).astype(np.uint8)
    return mask


def _homography(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A small rotation plus perspective, as a rest after rectification."""
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    tilt = rng.uniform(-0.04, 0.04) * h  # one end taller than the other
    dst = src.copy()
    dst[1, 1] -= tilt
    dst[2, 1] += tilt
    dst += rng.uniform(-0.01, 0.01, (4, 2)).astype(np.float32) * [w, h]
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def degrade(
    rng: np.random.Generator, gray: np.ndarray, lines: list[Line]
) -> tuple[np.ndarray, list[Line]]:
    """Rotate, tilt, shrink, blur, add noise and JPEG; the lines follow."""
    h, w = gray.shape
    angle = rng.uniform(-4, 4)
    target_cap = rng.uniform(8, 30)
    scale = target_cap / lines[0].height
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (np.array([w, h]) * scale - np.array([w, h])) / 2
    out_size = (int(w * scale) + 2, int(h * scale) + 2)
    hom = np.vstack([m, [0, 0, 1]])
    if rng.random() < 0.5:
        hom = _homography(rng, *out_size) @ hom
    img = cv2.warpPerspective(
        gray, hom, out_size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )

    def move(p: tuple[float, float]) -> tuple[float, float]:
        q = hom @ np.array([p[0], p[1], 1.0])
        return float(q[0] / q[2]), float(q[1] / q[2])

    moved = [Line(move(ln.p0), move(ln.p1), ln.height * scale) for ln in lines]
    sigma = rng.uniform(0, 1.3) if rng.random() < 0.9 else rng.uniform(1.3, 1.8)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.1:
        # motion blur along the line, a hand moving while the shutter is open
        n = int(rng.integers(2, 5))
        img = cv2.filter2D(img, -1, np.full((1, n), 1.0 / n, np.float32))
    if rng.random() < 0.3:
        # uneven light: a linear gradient across the block
        ramp = np.linspace(rng.uniform(0.6, 1.0), 1.0, img.shape[1], dtype=np.float32)
        img = img.astype(np.float32) * (ramp if rng.random() < 0.5 else ramp[::-1])
    noise = rng.normal(0, rng.uniform(0, 12), img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(35, 95))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img = cast(np.ndarray, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return img, moved


def _jitter(rng: np.random.Generator, line: Line) -> Line:
    """The line as the detector might estimate it: ends and height a bit off."""
    h = line.height
    u = line.unit
    v = np.array([-u[1], u[0]])

    def shake(p: tuple[float, float]) -> tuple[float, float]:
        q = (
            np.asarray(p)
            + u * rng.uniform(-0.6, 0.6) * h
            + v * rng.uniform(-0.3, 0.3) * h
        )
        return float(q[0]), float(q[1])

    return Line(shake(line.p0), shake(line.p1), h * rng.uniform(0.8, 1.3))


def make_samples(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Glyph crops and labels from `count` rendered MRZ blocks."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for _ in range(count):
        n, rows = [(30, 3), (36, 2), (44, 2)][int(rng.integers(0, 3))]
        texts = [random_text(rng, n) for _ in range(rows)]
        gray, lines = degrade(rng, *render_block(rng, texts))
        for text, line in zip(texts, lines, strict=True):
            fixed = straighten(gray, _jitter(rng, line))
            if fixed is None:
                continue
            cut = cut_line(ink_map(warp_strip(gray, *fixed)), n, (n,))
            if cut is None:
                continue
            xs.append(cut[0])
            ys.extend(ALPHABET.index(c) for c in text)
    return np.concatenate(xs), np.asarray(ys)


def train(x: np.ndarray, y: np.ndarray, hidden: int = 256, epochs: int = 24) -> dict:
    """A one-hidden-layer network, trained with Adam on softmax cross-entropy."""
    rng = np.random.default_rng(0)
    x = x.reshape(len(x), -1).astype(np.float32)
    mean = x.mean(axis=0)
    x = x - mean
    classes = len(ALPHABET)
    params = {
        "w1": rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, np.sqrt(2 / hidden), (hidden, classes)),
        "b2": np.zeros(classes),
    }
    params = {k: v.astype(np.float32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    s = {k: np.zeros_like(v) for k, v in params.items()}
    step, lr, batch = 0, 2e-3, 256
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ params["w1"] + params["b1"], 0)
            z = h @ params["w2"] + params["b2"]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1
            dz = p / len(yb)
            dh = (dz @ params["w2"].T) * (h > 0)
            grads = {
                "w2": h.T @ dz + 1e-4 * params["w2"],
                "b2": dz.sum(axis=0),
                "w1": xb.T @ dh + 1e-4 * params["w1"],
                "b1": dh.sum(axis=0),
            }
            step += 1
            for k, g in grads.items():
                m[k] = 0.9 * m[k] + 0.1 * g
                s[k] = 0.999 * s[k] + 0.001 * g * g
                mh = m[k] / (1 - 0.9**step)
                sh = s[k] / (1 - 0.999**step)
                params[k] -= lr * mh / (np.sqrt(sh) + 1e-8)
        if epoch == epochs * 2 // 3:
            lr /= 4
        logger.info("epoch %d done", epoch)
    params["mean"] = mean
    return params


def templates() -> np.ndarray:
    """Clean glyph bitmaps (ink = 255) of every MRZ character, for test images."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, int(TEMPLATE_CAP * 40 / 29))
    pitch = int(round(font.getlength("A")))
    height = int(TEMPLATE_CAP * 1.6)
    out = np.zeros((len(ALPHABET), height, pitch), np.uint8)
    top = font.getbbox("A")[1]
    for i, c in enumerate(ALPHABET):
        img = Image.new("L", (pitch, height), 0)
        ImageDraw.Draw(img).text(
            (0, (height - TEMPLATE_CAP) / 2 - top), c, font=font, fill=255
        )
        out[i] = np.asarray(img)
    return out


def encode(members: list[dict]) -> str:
    """The networks' weights as int8 with a per-matrix scale, compressed, base64.

    Member 0 is stored under plain names, member i under "m{i}_" (see
    `media.mrz_reader.decode_weights`).
    """
    arrays: dict[str, np.ndarray] = {}
    for i, params in enumerate(members):
        prefix = f"m{i}_" if i else ""
        for name in ("w1", "w2"):
            w = params[name]
            scale = float(np.abs(w).max() / 127)
            arrays[prefix + name] = np.round(w / scale).astype(np.int8)
            arrays[prefix + name + "_scale"] = np.asarray(scale, np.float32)
        for name in ("b1", "b2", "mean"):
            arrays[prefix + name] = params[name].astype(np.float16)
    arrays["templates"] = templates()
    buf = io.BytesIO()
    # numpy's stub lets **kwds reach allow_pickle: bool
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_model(text: str, path: Path = MODEL_FILE) -> None:
    chunks = [text[i : i + 76] for i in range(0, len(text), 76)]
    body = "\n".join(f'    "{c}"' for c in chunks)
    path.write_text(
        '"""Generated by `python -m media.mrz_glyphs`; do not edit."""\n\n'
        "# fmt: off\n"
        f"WEIGHTS = (\n{body}\n)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument(
        "--keep",
        type=Path,
        help="a generated model file whose networks stay in the ensemble",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from media.mrz_reader import classify, decode_weights

    kept = []
    if args.keep:
        kept = decode_weights(runpy.run_path(str(args.keep))["WEIGHTS"])
    t0 = time.perf_counter()
    x, y = make_samples(args.blocks, args.seed)
    logger.info("%d samples in %.1f s", len(x), time.perf_counter() - t0)
    xv, yv = make_samples(150, args.seed + 2000)
    params = train(x, y)
    net = {k: v.astype(np.float32) for k, v in params.items()}
    for name, model in (("new network", [net]), ("ensemble", [*kept, net])):
        acc = (classify(xv, model).argmax(axis=1) == yv).mean()
        logger.info("held-out glyph accuracy, %s: %.4f", name, acc)
    write_model(encode([*kept, params]), args.out)
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
