"""The smallest frame the frame tools analyse.

A frame a few pixels high (a 3000x3 image, a phone stream of 3000x4) scales to
zero rows inside the tools' working copies, and OpenCV's resize refuses that.
Such a frame shows no document, face or MRZ that could be read, so every tool
checks it at its entry and reports nothing found.
"""

from __future__ import annotations

from typing import Any

MIN_SIDE = 32  # pixels on the shorter side
# longest to shortest side: an ID-1 card is 1.59, a TD3 page 1.42, a 21:9
# phone frame 2.33, a photo of a whole desk rarely beyond 4
MAX_ASPECT = 8.0
# a crop of an MRZ band alone: a TD3 band of two lines is about 8:1, one line
# of it about 16:1
MRZ_MAX_ASPECT = 24.0


def frame_problem(image: Any, max_aspect: float = MAX_ASPECT) -> str | None:
    """Why an image (an array, or its shape) is too narrow or too small for the
    frame tools ("too narrow to analyse (W x H)"); None when it is not."""
    shape = getattr(image, "shape", image)
    h, w = int(shape[0]), int(shape[1])
    if 0 < min(h, w) and max(h, w) > max_aspect * min(h, w):
        return f"too narrow to analyse ({w} x {h})"
    if min(h, w) < MIN_SIDE:
        return f"too small to analyse ({w} x {h})"
    return None


def analysable(image: Any, max_aspect: float = MAX_ASPECT) -> bool:
    """Whether the frame tools can look at this image at all."""
    return frame_problem(image, max_aspect) is None
