"""Generated media for tests: a synthetic ID-card scene as a phone camera track."""

from __future__ import annotations

import collections
import fractions

import av
import cv2
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_PTIME, VideoStreamTrack


def card_scene(index: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A desk with a card-like rectangle that drifts slowly; smooth enough for VP8."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (60 + 40 * np.sin(x / 90.0)).astype(np.uint8)
    image[..., 1] = (90 + 30 * np.cos(y / 70.0)).astype(np.uint8)
    image[..., 2] = 120
    shift = int(20 * np.sin(index / 15.0))
    left, top = 120 + shift, 110
    cv2.rectangle(image, (left, top), (left + 400, top + 252), (235, 228, 220), -1)
    cv2.rectangle(
        image, (left + 20, top + 40), (left + 130, top + 180), (150, 120, 100), -1
    )
    for row in range(4):
        cv2.line(
            image,
            (left + 160, top + 60 + row * 35),
            (left + 370, top + 60 + row * 35),
            (40, 40, 40),
            6,
        )
    return image


class SceneTrack(VideoStreamTrack):
    """Sends `card_scene` frames at 30 fps and remembers the last second of them."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.index = 0
        self.sent: collections.deque[np.ndarray] = collections.deque(maxlen=60)

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = card_scene(self.index, self.width, self.height)
        self.index += 1
        self.sent.append(image)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


__all__ = ["SceneTrack", "card_scene", "VIDEO_CLOCK_RATE", "VIDEO_PTIME", "fractions"]
