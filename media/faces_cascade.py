"""OpenCV's boosted LBP cascade format, evaluated with numpy on whole pyramids.

OpenCV 5 dropped the CascadeClassifier class, so the cascade is evaluated here, in
an order that suits array code:
- the pyramid's levels are packed into one image (an atlas), so that one array
  step scores a stump on every window of every level;
- the first stages score all windows (dense), a band of grid rows at a time so
  that the intermediate arrays stay in the processor's cache;
- once few windows of a band are alive, the remaining stages gather just those
  windows' integral image samples (sparse), all stumps of a stage at once.
Each window's score is the same sum, in the same order, as in a window-by-window
evaluation (`media.faces_eval.legacy_detect`), so exactly the same windows pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import cast

import cv2
import numpy as np

# the eight neighbours of the centre block, clockwise from top-left; the first is
# the code's most significant bit (OpenCV's LBP feature)
NEIGHBOURS = (0, 1, 2, 5, 8, 7, 6, 3)
CENTRE = 4
# A band's next stage is scored densely while more than this share of its windows
# is alive, then the survivors are gathered. Median cascade time on eight rendered
# 720p desk frames (load 2): 0.2 25 ms, 0.1 26 ms, 0.5 30 ms, 1.0 (all gathered)
# 69 ms.
DENSE_SHARE = 0.2
BAND_ROWS = 128  # grid rows per dense band: arrays of some 100 kB stay in cache


@dataclass(frozen=True)
class Stage:
    """One boosted stage: stumps on LBP codes, accepted when the sum reaches it."""

    threshold: float
    rects: np.ndarray  # (n, 4) x, y, w, h of each stump's 3x3 block grid cell
    leaves: np.ndarray  # (n, 256) the stump's value for every LBP code

    @cached_property
    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of each stump's 4x4 integral samples, (n * 16,)."""
        x, y, w, h = (self.rects[:, k, None].astype(np.int32) for k in range(4))
        i = np.repeat(np.arange(4, dtype=np.int32), 4)[None, :]
        j = np.tile(np.arange(4, dtype=np.int32), 4)[None, :]
        return (y + i * h).ravel(), (x + j * w).ravel()

    def offsets(self, stride: int) -> np.ndarray:
        """(n * 16,) offsets of each stump's integral samples in a flat image."""
        rows, cols = self._samples
        return cast(np.ndarray, rows * np.int32(stride) + cols)


def _stump_table(subset: list[int], leaves: list[float]) -> np.ndarray:
    """Leaf value per LBP code: the first leaf for codes in the 256-bit set."""
    codes = np.arange(256)
    words = np.array(subset, np.int64)[codes >> 5]
    inset = (words >> (codes & 31)) & 1
    return np.where(inset == 1, leaves[0], leaves[1])


class Atlas:
    """Pyramid levels packed side by side into one image with one window grid."""

    def __init__(
        self,
        levels: list[tuple[int, float, np.ndarray]],
        step: int,
        window: tuple[int, int],
        dtype: type,
    ) -> None:
        self.step = step
        self.win_w, self.win_h = window

        # shelf packing, each level at a grid point so that its windows are
        # exactly the ones OpenCV's grid gives it
        width = sum(img.shape[1] for _, _, img in levels[:2]) + step
        self.places: list[tuple[int, float, int, int, int, int]] = []
        x = y = shelf = 0
        for level, factor, img in levels:
            h, w = img.shape
            if x + w > width:
                x, y, shelf = 0, y + shelf, 0
            self.places.append((level, factor, y, x, h, w))
            x += -(-w // step) * step
            shelf = max(shelf, -(-h // step) * step)
        canvas = np.zeros((y + shelf, width), np.uint8)
        for (_, _, y, x, h, w), (_, _, img) in zip(self.places, levels, strict=True):
            canvas[y : y + h, x : x + w] = img

        # block sums are differences of integral samples; they fit the wrapping
        # unsigned `dtype`, so the differences of wrapped samples are exact
        self.ii: np.ndarray = cv2.integral(canvas).astype(dtype)
        self.ny = max(0, -(-(canvas.shape[0] - self.win_h) // step))
        self.nx = max(0, -(-(canvas.shape[1] - self.win_w) // step))
        self.valid = np.zeros((self.ny, self.nx), bool)
        for _, _, y, x, h, w in self.places:
            ny = len(range(0, h - self.win_h, step))
            nx = len(range(0, w - self.win_w, step))
            self.valid[y // step : y // step + ny, x // step : x // step + nx] = True
        # the integral image split by row and column parity: the samples at one
        # offset from every window's corner are then a slice with contiguous rows
        self._planes = {
            (a, b): np.ascontiguousarray(self.ii[a::step, b::step])
            for a in range(step)
            for b in range(step)
        }

    def box_sums(
        self, w: int, h: int, parity: tuple[int, int], rows: slice, cols: slice
    ) -> np.ndarray:
        """Sums of the w x h blocks whose top-left corners lie at canvas pixel
        (step * i + parity[0], step * j + parity[1]) for grid rows i and cols j."""
        s = self.step

        def corner(dy: int, dx: int) -> np.ndarray:
            y, x = parity[0] + dy, parity[1] + dx
            plane = self._planes[(y % s, x % s)]
            return plane[
                rows.start + y // s : rows.stop + y // s,
                cols.start + x // s : cols.stop + x // s,
            ]

        return cast(
            np.ndarray, corner(h, w) - corner(0, w) - corner(h, 0) + corner(0, 0)
        )

    def hits(self, flat: np.ndarray) -> list[tuple[int, float, float, float]]:
        """(level, x, y, size) in the input image of windows by flat grid index."""
        gy, gx = np.divmod(flat, self.nx)
        ys, xs = gy * self.step, gx * self.step
        out = []
        for level, factor, y, x, h, w in self.places:
            mine = (ys >= y) & (ys < y + h) & (xs >= x) & (xs < x + w)
            for py, px in zip(ys[mine] - y, xs[mine] - x, strict=True):
                out.append((level, px * factor, py * factor, self.win_w * factor))
        return out


class LbpCascade:
    """A boosted LBP cascade read from OpenCV's XML format; immutable once loaded."""

    def __init__(self, path: Path) -> None:
        root = ET.parse(path).getroot().find("cascade")
        if root is None or root.findtext("featureType", "").strip() != "LBP":
            raise ValueError(f"{path}: not an LBP cascade")
        # a malformed file fails here with a TypeError or AttributeError on None
        self.width = int(cast(str, root.findtext("width")))
        self.height = int(cast(str, root.findtext("height")))
        self.rects = np.array(
            [[int(v) for v in cast(str, r.text).split()] for r in root.iter("rect")],
            np.int32,
        )
        self.stages: list[Stage] = []
        for st in cast(ET.Element, root.find("stages")):
            feats: list[int] = []
            tables: list[np.ndarray] = []
            for weak in cast(ET.Element, st.find("weakClassifiers")):
                nodes = [
                    int(v) for v in cast(str, weak.findtext("internalNodes")).split()
                ]
                leaves = [
                    float(v) for v in cast(str, weak.findtext("leafValues")).split()
                ]
                feats.append(nodes[2])
                tables.append(
                    _stump_table([v & 0xFFFFFFFF for v in nodes[3:11]], leaves)
                )
            self.stages.append(
                Stage(
                    float(cast(str, st.findtext("stageThreshold"))),
                    self.rects[feats],
                    np.array(tables, np.float64),
                )
            )
        # block sums reach at most 255 * the largest block's area
        area = int((self.rects[:, 2] * self.rects[:, 3]).max())
        self.dtype: type = np.uint16 if 255 * area < 1 << 16 else np.uint32

    # --- dense: every window of a band of the grid --------------------------------

    def _dense_codes(self, at: Atlas, rect: np.ndarray, rows: slice) -> np.ndarray:
        """LBP codes of one stump's block grid for every window in `rows`."""
        x, y, w, h = (int(v) for v in rect)
        s = at.step
        ys, xs = [y + r * h for r in range(3)], [x + k * w for k in range(3)]

        # one map of block sums per parity of the blocks' corners, each map
        # covering the blocks of all windows in `rows` that have this parity
        maps = {}
        for a in {v % s for v in ys}:
            down = [v // s for v in ys if v % s == a]
            rspan = slice(rows.start + min(down), rows.stop + max(down))
            for b in {v % s for v in xs}:
                right = [v // s for v in xs if v % s == b]
                cspan = slice(min(right), at.nx + max(right))
                sums = at.box_sums(w, h, (a, b), rspan, cspan)
                maps[a, b] = (sums, rspan.start, cspan.start)

        blocks = []
        n = rows.stop - rows.start
        for by in ys:
            for bx in xs:
                sums, top, left = maps[by % s, bx % s]
                i, j = rows.start + by // s - top, bx // s - left
                blocks.append(sums[i : i + n, j : j + at.nx])
        centre = blocks[CENTRE]
        code = np.zeros(centre.shape, np.uint8)
        for bit, k in zip(range(7, -1, -1), NEIGHBOURS, strict=True):
            ge = cv2.compare(blocks[k], centre, cv2.CMP_GE)  # 255 or 0
            # the stubs lack OpenCV's scalar operand
            cv2.bitwise_or(code, 1 << bit, dst=code, mask=ge)  # type: ignore[call-overload]
        return code

    def _dense(self, at: Atlas) -> tuple[np.ndarray, np.ndarray]:
        """Flat grid indices of the windows alive after the dense stages, and for
        each the number of stages it passed."""
        alive_all, done_all = [], []
        for r0 in range(0, at.ny, BAND_ROWS):
            rows = slice(r0, min(at.ny, r0 + BAND_ROWS))
            alive = at.valid[rows].copy()
            cells = alive.sum()
            done = 0
            for stage in self.stages:
                if alive.sum() <= DENSE_SHARE * cells:
                    break
                total = np.zeros(alive.shape)
                for rect, table in zip(stage.rects, stage.leaves, strict=True):
                    codes = self._dense_codes(at, rect, rows)
                    cv2.add(total, cv2.LUT(codes, table), dst=total)
                alive &= total >= stage.threshold
                done += 1
            idx = np.flatnonzero(alive) + r0 * at.nx
            alive_all.append(idx)
            done_all.append(np.full(len(idx), done))
        if not alive_all:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(alive_all), np.concatenate(done_all)

    # --- sparse: gathered windows -------------------------------------------------

    def _sparse(
        self, flat: np.ndarray, stride: int, origin: np.ndarray, start: np.ndarray
    ) -> np.ndarray:
        """Which windows (flat index of their top-left integral sample) pass every
        stage; window i is scored from stage start[i] on."""
        alive = np.arange(len(origin))
        for s in range(int(start.min()) if len(start) else 0, len(self.stages)):
            stage = self.stages[s]
            due = start[alive] <= s
            todo = alive[due]
            if not len(todo):
                continue

            # all stumps of the stage at once: (stumps, 4, 4, windows) samples,
            # windows last so that each array step runs along contiguous memory
            k = len(stage.rects)
            index = stage.offsets(stride).reshape(-1, 1) + origin[None, todo]
            p = flat[index].reshape(k, 4, 4, len(todo))
            strips = p[:, 1:] - p[:, :-1]
            blocks = (strips[:, :, 1:] - strips[:, :, :-1]).reshape(k, 9, -1)
            centre = blocks[:, CENTRE]
            codes = np.zeros(centre.shape, np.uint8)
            for bit, j in zip(range(7, -1, -1), NEIGHBOURS, strict=True):
                codes |= (blocks[:, j] >= centre).view(np.uint8) << np.uint8(bit)
            leaves = stage.leaves[np.arange(k)[:, None], codes]
            # summed stump by stump, as the dense stages do
            total = np.zeros(len(todo))
            for row in leaves:
                total += row
            kept = todo[total >= stage.threshold]
            alive = np.sort(np.concatenate([alive[~due], kept]))
        return alive

    def evaluate(self, ii: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Indices of the windows (top-left px, py) that pass every stage."""
        stride = ii.shape[1]
        origin = (np.asarray(py) * stride + np.asarray(px)).astype(np.int32)
        start = np.zeros(len(origin), np.int64)
        return self._sparse(ii.astype(self.dtype).ravel(), stride, origin, start)

    # --- pyramid ------------------------------------------------------------------

    def atlases(
        self,
        gray: np.ndarray,
        scale_step: float,
        min_size: float,
        max_size: float | None = None,
    ) -> list[Atlas]:
        """The pyramid for windows of min_size to max_size pixels of `gray`, packed
        by grid step: 2 level pixels up to factor 2, then 1 (OpenCV's grid)."""
        h, w = gray.shape
        by_step: dict[int, list[tuple[int, float, np.ndarray]]] = {2: [], 1: []}
        factor = max(1.0, min_size / self.width)
        limit = max_size / self.width if max_size else np.inf
        level = 0
        while w / factor >= self.width and h / factor >= self.height:
            if factor > limit:
                break
            size = (int(w / factor), int(h / factor))
            img = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR)
            by_step[1 if factor > 2 else 2].append((level, factor, img))
            factor *= scale_step
            level += 1
        window = (self.width, self.height)
        return [Atlas(lv, s, window, self.dtype) for s, lv in by_step.items() if lv]

    def windows(self, atlases: list[Atlas]) -> list[tuple[float, float, float]]:
        """(x, y, size) in the input image of every window that passes, level by
        level from the smallest windows, each level in row order."""
        found: list[tuple[int, float, float, float]] = []
        for at in atlases:
            idx, done = self._dense(at)
            gy, gx = np.divmod(idx, at.nx)
            stride = at.ii.shape[1]
            origin = (gy * at.step * stride + gx * at.step).astype(np.int32)
            passed = self._sparse(at.ii.ravel(), stride, origin, done)
            found += at.hits(idx[passed])
        found.sort(key=lambda f: (f[0], f[2], f[1]))
        return [(x, y, s) for _, x, y, s in found]

    def detect(
        self,
        gray: np.ndarray,
        *,
        scale_step: float = 1.15,
        min_size: float = 40,
        max_size: float | None = None,
        min_neighbors: int = 3,
    ) -> list[tuple[int, ...]]:
        """Face boxes (x, y, w, h) in a grayscale image, best supported first."""
        atlases = self.atlases(gray, scale_step, min_size, max_size)
        return group(self.windows(atlases), min_neighbors)


def group(
    found: list[tuple[float, float, float]], min_neighbors: int
) -> list[tuple[int, ...]]:
    """Merge overlapping hits; keep clusters with enough members."""
    clusters: list[list[tuple[float, float, float]]] = []
    for x, y, s in found:
        for cl in clusters:
            cx, cy, cs = np.mean(cl, axis=0)
            if abs(x - cx) < 0.3 * cs and abs(y - cy) < 0.3 * cs and 0.7 < s / cs < 1.4:
                cl.append((x, y, s))
                break
        else:
            clusters.append([(x, y, s)])
    out = []
    for cl in clusters:
        if len(cl) >= min_neighbors:
            x, y, s = np.mean(cl, axis=0)
            out.append((int(x), int(y), int(s), int(s), len(cl)))
    out.sort(key=lambda b: -b[4])
    # drop boxes inside a stronger one
    kept: list[tuple[int, ...]] = []
    for b in out:
        if not any(_overlap(b, k) > 0.3 for k in kept):
            kept.append(b)
    return [b[:4] for b in kept]


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / min(a[2] * a[3], b[2] * b[3])
