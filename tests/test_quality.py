"""Capture quality figures, hints and the best-frame picker."""

import threading

import cv2
import numpy as np

from media import render
from media.quality import HINTS, FrameWindow, assess, best_index


def _frame(seed=3, t=0.0, **kw):
    doc = render.draw_document("id1", seed=seed)
    frame, _ = render.SceneRenderer(doc, seed=seed, **kw).frame(t, False)
    return frame


def test_assess_sharp_frame_has_no_blur_hint():
    q = assess(_frame())
    assert q.found
    assert "blurry" not in q.hints
    assert q.sharpness > 150
    assert 0.1 < q.size < 0.9


def test_assess_blurred_frame_asks_to_hold_still():
    frame = cv2.GaussianBlur(_frame(), (0, 0), 5.0)
    sharp = assess(_frame())
    q = assess(frame, detection=sharp.detection)
    assert "blurry" in q.hints
    assert q.messages("en")[q.hints.index("blurry")] == HINTS["blurry"][1]


def test_assess_glare_on_document_asks_to_tilt():
    frame = _frame()
    det = assess(frame).detection
    cx, cy = det.corners.mean(0).astype(int)
    cv2.circle(frame, (int(cx), int(cy)), 60, (255, 255, 255), -1)
    q = assess(frame, detection=det)
    assert "glare" in q.hints
    assert "tilt to remove the reflection" in q.messages("en")
    assert "Ausweis kippen, um die Spiegelung zu entfernen" in q.messages("de")


def test_assess_small_document_asks_to_move_closer():
    frame = _frame()
    small = cv2.resize(frame, (320, 180))
    canvas = np.full_like(frame, 60)
    canvas[270:450, 480:800] = small
    q = assess(canvas)
    assert q.found
    assert q.hints[0] == "move_closer" or "move_closer" in q.hints


def test_assess_moving_document_asks_to_hold_still():
    doc = render.draw_document("id1", seed=3)
    scene = render.SceneRenderer(doc, seed=3, motion=3.0)
    first = assess(scene.frame(0.0, False)[0])
    assert first.found
    q = assess(scene.frame(0.3, False)[0], previous=first.detection)
    assert q.motion > 0.012
    assert "hold_still" in q.hints


def test_assess_no_document_hint():
    q = assess(np.full((360, 640, 3), 100, np.uint8))
    assert not q.found
    assert q.hints == ["no_document"]
    assert q.messages("de") == ["Ausweis ins Bild halten"]
    assert q.score == 0


def test_best_index_prefers_sharp_frame():
    sharp = _frame()
    det = assess(sharp).detection
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    qs = [
        assess(blurred, detection=det),
        assess(sharp, detection=det),
        assess(np.zeros_like(sharp)),
    ]
    assert best_index(qs) == 1
    assert best_index([qs[2]]) is None


def test_frame_window_is_thread_safe_and_forgets_old_frames():
    window = FrameWindow(seconds=1.0)
    frame = _frame()
    errors = []

    def feed(offset):
        try:
            for i in range(3):
                window.add(offset + i * 0.5, frame)
        except Exception as exc:  # a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(k * 0.1,)) for k in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    best = window.best()
    assert best is not None
    t, img, q = best
    assert q.found and img is frame
    newest = max(item[0] for item in window._items)
    assert len(window._items) < 9
    assert all(item[0] >= newest - 1.0 for item in window._items)
