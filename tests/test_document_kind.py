"""Telling an ID-1 card from a TD3 page by the MRZ's character pitch."""

import cv2
import numpy as np
import pytest

from media import render
from media.document import ASPECT, order_corners
from media.document_kind import mrz_kind, mrz_scores


def _cut_scene(kind, seed=7, t=3.3, blank_mrz=False):
    """A frame with one short side out of view, and the outline A, B, B', A'
    whose side A-B is the short side in view."""
    doc = render.draw_document(kind, seed=seed)
    if blank_mrz:
        image = doc.image.copy()
        h = image.shape[0]
        image[int(0.68 * h) :] = image[int(0.66 * h) : int(0.67 * h)].mean((0, 1))
        doc = render.SpecimenDocument(
            doc.kind, image, doc.mrz, doc.portrait, doc.holograms
        )
    frame, truth = render.SceneRenderer(doc, seed=seed, partial=True).frame(t, False)
    q = order_corners(truth).astype(np.float64)
    inside = ((q >= 0) & (q <= [1280, 720])).all(1)
    # TL-BL or TR-BR: the short side whose corners are both in view
    order = [0, 3, 2, 1] if inside[0] and inside[3] else [1, 2, 3, 0]
    quad = q[order]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return gray, quad, inside.sum()


@pytest.mark.parametrize("kind", ["id1", "td3"])
def test_mrz_kind_cut_document_told_by_pitch(kind):
    gray, quad, in_view = _cut_scene(kind)
    assert in_view == 2
    assert mrz_kind(gray, quad, ASPECT[kind], True) == kind


def test_mrz_scores_pitch_of_the_other_kind_scores_low():
    gray, quad, _ = _cut_scene("id1")
    scores = mrz_scores(gray, quad, ASPECT["id1"], True)
    assert scores["id1"] > 0.3
    assert scores["td3"] < scores["id1"] - 0.2


def test_mrz_kind_without_mrz_is_unknown():
    gray, quad, _ = _cut_scene("id1", blank_mrz=True)
    assert mrz_kind(gray, quad, ASPECT["id1"], True) is None
