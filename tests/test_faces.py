"""Live face and document portrait crops with the packaged LBP cascade."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from media import render
from media.faces import cascade_path, find_faces, portrait_face

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

if cascade_path() is None:
    pytest.skip(
        "no LBP face cascade installed (Debian package opencv-data)",
        allow_module_level=True,
    )


def test_portrait_face_found_on_drawn_card():
    doc = render.draw_document("id1")
    face = portrait_face(doc.image)
    assert face is not None
    x, y, w, h = face.box
    px, py, pw, ph = doc.portrait
    assert px <= x + w / 2 <= px + pw and py <= y + h / 2 <= py + ph
    assert face.crop.shape[0] >= h and face.crop.shape[1] >= w


def test_find_faces_blank_image_finds_none():
    assert find_faces(np.full((480, 640, 3), 127, np.uint8)) == []


def test_find_faces_live_frame_with_card():
    doc = render.draw_document("id1")
    frame = np.full((720, 1280, 3), 90, np.uint8)
    face = cv2.resize(doc.image[95:430, 35:285], (300, 402))
    frame[100:502, 900:1200] = face  # a "person" beside the card
    faces = find_faces(frame)
    assert faces
    x, y, w, h = faces[0].box
    assert 900 <= x + w / 2 <= 1200


def test_find_faces_corpus_specimen_portrait():
    path = CORPUS / "ausweiskopie" / "npa_2021.png"
    if not path.exists():
        pytest.skip(f"specimen corpus not present at {path}")
    faces = find_faces(cv2.imread(str(path)))
    assert faces
    x, y, w, h = faces[0].box
    assert x + w / 2 < 0.4 * 708  # the portrait is on the left of the card
