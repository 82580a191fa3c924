"""The array evaluation of the LBP cascade against the window-by-window one, and
the portrait search on filmed documents."""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import render
from media.document import rectify
from media.faces import cascade_path, find_faces, load_cascade, portrait_face, work_gray
from media.faces_cascade import LbpCascade
from media.faces_eval import (
    CORPUS,
    Case,
    compare,
    legacy_find_faces,
    legacy_windows,
    vp8_roundtrip,
)

if cascade_path() is None:
    pytest.skip(
        "no LBP face cascade installed (Debian package opencv-data)",
        allow_module_level=True,
    )


def _desk_with_holder(seed: int = 3) -> np.ndarray:
    scene = render.SceneRenderer(render.draw_document("id1", seed=0), seed=seed)
    frame, _ = scene.frame(0.5, False)
    render.draw_portrait(frame, (900, 120, 300, 380))
    return frame


def _filmed_card(seed: int, bitrate: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """A drawn card filmed at 960x540 through VP8, rectified from its corners."""
    doc = render.draw_document("id1", seed=seed)
    scene = render.SceneRenderer(doc, width=960, height=540, seed=100 + seed)
    frames = [scene.frame(k / 15, False)[0] for k in range(12)]
    corners = scene.frame(11 / 15, False)[1]
    return rectify(vp8_roundtrip(frames, bitrate), corners, "id1"), doc.portrait


def _centre_in(box: tuple[int, ...], rect: tuple[int, ...]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return rect[0] <= cx <= rect[0] + rect[2] and rect[1] <= cy <= rect[1] + rect[3]


@pytest.mark.parametrize("image", ["desk", "card", "noise", "flat"])
def test_windows_same_as_window_by_window(image: str) -> None:
    rng = np.random.default_rng(1)
    bgr = {
        "desk": lambda: _desk_with_holder(),
        "card": lambda: render.draw_document("id1", seed=2).image,
        "noise": lambda: rng.integers(0, 256, (300, 500, 3), dtype=np.uint8),
        "flat": lambda: np.full((200, 260, 3), 128, np.uint8),
    }[image]()
    cascade = load_cascade()
    assert cascade is not None
    gray, _ = work_gray(bgr, 480)
    new = cascade.windows(cascade.atlases(gray, 1.15, 36))
    old = legacy_windows(cascade, gray, 1.15, 36)
    assert new == old
    if image in ("desk", "card"):
        assert len(new) >= 3  # a face's cluster, so the comparison means something


def test_find_faces_same_boxes_and_faster_than_window_by_window() -> None:
    frame = _desk_with_holder(seed=5)
    find_faces(frame)  # warm caches
    new_ms, old_ms = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        new = find_faces(frame)
        t1 = time.perf_counter()
        old = legacy_find_faces(frame)
        t2 = time.perf_counter()
        new_ms.append(t1 - t0)
        old_ms.append(t2 - t1)
    assert [f.box for f in new] == [f.box for f in old]
    assert any(900 <= f.box[0] + f.box[2] / 2 <= 1200 for f in new)
    # measured 7-9 times faster on the 2-core machine under other load
    assert min(old_ms) > 3 * min(new_ms), (old_ms, new_ms)


@pytest.mark.parametrize(
    ("seed", "bitrate"), [(9, 500_000), (2, 250_000), (5, 500_000)]
)
def test_portrait_face_found_after_vp8_at_540p(seed: int, bitrate: int) -> None:
    # the whole-document search at 640 px missed the first two
    rectified, truth = _filmed_card(seed, bitrate)
    face = portrait_face(rectified)
    assert face is not None
    assert _centre_in(face.box, truth), (face.box, truth)
    assert face.crop.shape[0] >= face.box[3] and face.crop.shape[1] >= face.box[2]


def test_portrait_face_on_the_right_of_the_document() -> None:
    doc = render.draw_document("id1", seed=1)
    mirrored = np.ascontiguousarray(doc.image[:, ::-1])
    face = portrait_face(mirrored)
    assert face is not None
    x, y, w, h = doc.portrait
    assert _centre_in(face.box, (doc.image.shape[1] - x - w, y, w, h))


def test_portrait_face_none_without_portrait() -> None:
    doc = render.draw_document("id1", seed=1)
    image = doc.image.copy()
    x, y, w, h = doc.portrait
    image[y : y + h, x : x + w] = image[y : y + h, x + w + 400 : x + 2 * w + 400]
    assert portrait_face(image) is None


def test_portrait_face_corpus_specimen_card() -> None:
    path = CORPUS / "ausweiskopie" / "npa_2021.png"
    if not path.exists():
        pytest.skip(f"specimen corpus not present at {path}")
    scan = cv2.resize(cv2.imread(str(path)), (1011, 638), interpolation=cv2.INTER_AREA)
    face = portrait_face(scan)
    assert face is not None
    assert face.box[0] + face.box[2] / 2 < 0.4 * 1011  # the portrait is on the left
    back = CORPUS / "ausweiskopie" / "npa_back.png"
    if back.exists():
        img = cv2.resize(
            cv2.imread(str(back)), (1011, 638), interpolation=cv2.INTER_AREA
        )
        assert portrait_face(img) is None


def test_cascade_rejects_a_haar_cascade(tmp_path: Path) -> None:
    path = tmp_path / "haar.xml"
    path.write_text(
        "<opencv_storage><cascade><featureType>HAAR</featureType></cascade>"
        "</opencv_storage>"
    )
    with pytest.raises(ValueError, match="haar.xml: not an LBP cascade"):
        LbpCascade(path)


def test_compare_counts_found_false_and_same_boxes() -> None:
    frame = _desk_with_holder()
    blank = np.full((360, 640, 3), 90, np.uint8)
    cases = [
        Case("holder", frame, (900, 120, 300, 380)),
        Case("blank", blank, None),
    ]
    figs = compare(iter(cases), {"old": legacy_find_faces, "new": find_faces})
    for name in ("old", "new"):
        assert figs[name]["images"] == 2
        assert figs[name]["with_face"] == 1
        assert figs[name]["found"] == 1
        assert figs[name]["false"] == 0
        assert figs[name]["missed"] == []
    assert figs["same_boxes"] == 2
