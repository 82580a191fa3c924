"""Geometry of a document outline: corner order, lines, the share in view, a
side completed beyond the frame edge and the proportions on the document plane.

Outlines are (4, 2) arrays of corners in pixels; lines are homogeneous (3,).
The camera is assumed to have square pixels, its principal point at the centre
and a focal length of FOCAL_FACTOR times the frame width.
"""

from __future__ import annotations

import cv2
import numpy as np

# ISO/IEC 7810 ID-1 85.60 x 53.98 mm and ICAO TD3 125 x 88 mm
ASPECT = {"id1": 85.60 / 53.98, "td3": 125.0 / 88.0}
# Focal length as a share of the frame width, to complete a cut-off side and to
# measure proportions on the document plane: phone main cameras film 16:9 video at
# about 65 degrees horizontal field of view.
FOCAL_FACTOR = 0.8


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Order four points TL, TR, BR, BL with TL-TR along a long side."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    centre = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(ang)]  # clockwise in image coordinates, starting top-left-ish
    # start at the point nearest the top-left of the bounding box
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    pts = np.roll(pts, -start, axis=0)
    side = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    if side[0] + side[2] < side[1] + side[3]:
        # portrait in the frame: rotate so that TL-TR is a long side
        pts = np.roll(pts, -1, axis=0) if pts[1, 1] < pts[3, 1] else np.roll(pts, 1, 0)
    return pts


def homog_line(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.cross([p[0], p[1], 1.0], [q[0], q[1], 1.0])


def meet(l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Intersections of homogeneous lines (..., 3); NaN where parallel."""
    x = np.cross(l1, l2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x[..., :2] / x[..., 2:3]
    out[np.abs(x[..., 2]) < 1e-9] = np.nan
    return out


def visible_share(quad: np.ndarray, w: int, h: int) -> float:
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    area = cv2.contourArea(quad.astype(np.float32))
    if area <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), frame)
    return float(inter / area)


def outside(pts: np.ndarray, w: int, h: int, margin: float) -> np.ndarray:
    x, y = pts[..., 0], pts[..., 1]
    return (x < -margin) | (x > w + margin) | (y < -margin) | (y > h + margin)


def complete(
    l1: np.ndarray,
    l2: np.ndarray,
    s: np.ndarray,
    towards: np.ndarray,
    ratios: list[float],
    w: int,
    h: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Quads A, B, B', A' from two parallel sides l1, l2 and the side s that joins
    them (homogeneous pixel lines, (N, 3)): the fourth side lies a ratio times
    |AB| away on the document plane, on the side of `towards` (an image point
    on l1's document side). Assumes square pixels, the principal point at the
    centre and FOCAL_FACTOR; returns (quads (R, N, 4, 2), valid (R, N)) for
    the R ratios."""
    f, cx, cy = FOCAL_FACTOR * w, w / 2, h / 2

    def norm_line(ln: np.ndarray) -> np.ndarray:
        return np.stack(
            [ln[:, 0] * f, ln[:, 1] * f, ln[:, 0] * cx + ln[:, 1] * cy + ln[:, 2]], 1
        )

    def project(x: np.ndarray) -> np.ndarray:
        return np.stack(
            [x[..., 0] / x[..., 2] * f + cx, x[..., 1] / x[..., 2] * f + cy], -1
        )

    n1, n2, ns = norm_line(l1), norm_line(l2), norm_line(s)
    a, b = np.cross(n1, ns), np.cross(n2, ns)  # corners, as rays
    d1 = np.cross(n1, n2)  # direction of the parallel sides (vanishing point)
    d2 = np.cross(ns, d1)  # the perpendicular direction on s
    normal = np.cross(d1, d2)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = a / a[:, 2:3], b / b[:, 2:3]  # rays in front of the camera
        d1 = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
        flip = np.sign(np.einsum("ij,ij->i", normal, a))
        normal = normal * flip[:, None]
        xa = a / np.einsum("ij,ij->i", normal, a)[:, None]
        xb = b / np.einsum("ij,ij->i", normal, b)[:, None]
        side = np.linalg.norm(xa - xb, axis=1)
        pa, pb = project(xa), project(xb)
        # which way along the sides the document lies
        step = project(xa + 0.01 * side[:, None] * d1) - pa
        sign = np.sign(np.einsum("ij,ij->i", towards - pa, step))
        far = np.asarray(ratios)[:, None, None] * (sign * side)[None, :, None] * d1
        xa2, xb2 = xa + far, xb + far
        near = np.broadcast_to(
            np.stack([pa, pb], 1), (len(ratios), *pa.shape[:1], 2, 2)
        )
        quads = np.concatenate(
            [near, np.stack([project(xb2), project(xa2)], 2)], axis=2
        )
        valid = (
            np.isfinite(quads).all((2, 3))
            & (xa[:, 2] > 0)
            & (xb[:, 2] > 0)
            & (xa2[..., 2] > 0)
            & (xb2[..., 2] > 0)
            & (sign != 0)
        )
    return quads, valid


def metric_ratios(quads: np.ndarray, w: int, h: int) -> np.ndarray:
    """Long over short side of each outline (Q, 4, 2) on the document plane, the
    perspective removed with the assumed camera; NaN where that fails."""
    f, cx, cy = FOCAL_FACTOR * w, w / 2, h / 2
    pts = np.concatenate(
        [(quads - [cx, cy]) / f, np.ones(quads.shape[:2] + (1,))], axis=2
    )
    sides = np.cross(pts, np.roll(pts, -1, axis=1))
    normal = np.cross(
        np.cross(sides[:, 0], sides[:, 2]), np.cross(sides[:, 1], sides[:, 3])
    )
    depth = np.einsum("qij,qj->qi", pts, normal)
    with np.errstate(divide="ignore", invalid="ignore"):
        world = pts / depth[..., None]
        length = np.linalg.norm(world - np.roll(world, -1, axis=1), axis=2)
        a, b = length[:, 0] + length[:, 2], length[:, 1] + length[:, 3]
        ratio = np.maximum(a, b) / np.minimum(a, b)
    same_side = np.all(depth > 0, axis=1) | np.all(depth < 0, axis=1)
    return np.where(same_side & np.isfinite(ratio), ratio, np.nan)


def metric_ratio(corners: np.ndarray, w: int, h: int) -> float:
    """Long over short side of the outline on the document plane (perspective
    removed with the assumed camera), for telling ID-1 from TD3 and for
    rejecting outlines that took an inner edge for a side."""
    return float(metric_ratios(np.asarray(corners, np.float64)[None], w, h)[0])


def kind_of(ratio: float) -> str:
    """The kind whose proportions are nearest to `ratio`."""
    return min(ASPECT, key=lambda k: abs(np.log(ratio / ASPECT[k])))


def signed_areas(quads: np.ndarray) -> np.ndarray:
    """Shoelace areas of outlines (Q, 4, 2), positive when clockwise on screen."""
    nxt = np.roll(quads, -1, axis=1)
    cross = quads[:, :, 0] * nxt[:, :, 1] - nxt[:, :, 0] * quads[:, :, 1]
    return 0.5 * cross.sum(1)


def areas(quads: np.ndarray) -> np.ndarray:
    """Areas of outlines (Q, 4, 2)."""
    return np.abs(signed_areas(quads))
