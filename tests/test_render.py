"""Synthetic specimen documents and the phone-camera renderer."""

import numpy as np
import pytest

from media import render


def _check(text: str) -> str:
    total = 0
    for i, ch in enumerate(text):
        value = int(ch) if ch.isdigit() else (ord(ch) - 55 if ch.isalpha() else 0)
        total += value * (7, 3, 1)[i % 3]
    return str(total % 10)


def test_draw_document_id1_is_300dpi_with_td1_mrz():
    doc = render.draw_document("id1")
    assert doc.image.shape == (638, 1011, 3)
    assert [len(line) for line in doc.mrz] == [30, 30, 30]
    line1, line2, _ = doc.mrz
    assert line1[14] == _check(line1[5:14])
    assert line2[6] == _check(line2[0:6])
    assert line2[14] == _check(line2[8:14])


def test_draw_document_td3_has_valid_composite():
    doc = render.draw_document("td3")
    assert doc.image.shape == (1039, 1476, 3)
    line2 = doc.mrz[1]
    assert len(line2) == 44
    assert line2[43] == _check(line2[0:10] + line2[13:20] + line2[21:43])


def test_draw_document_unknown_kind_rejected():
    with pytest.raises(ValueError, match="unknown document kind 'td2'"):
        render.draw_document("td2")


def test_render_video_reports_lit_frames_and_corners():
    doc = render.draw_document("id1")
    video = render.render_video(
        doc, seconds=1.0, fps=6, width=640, height=360, torch_on=[(0.3, 0.7)]
    )
    assert len(video.frames) == 6
    assert video.lit == [False, False, True, True, True, False]
    assert video.frames[0].shape == (360, 640, 3)
    assert all(c.shape == (4, 2) for c in video.corners)
    # the torch makes the document brighter
    inside = [f[150:210, 280:360].mean() for f in video.frames]
    assert inside[3] > inside[0] + 5


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv"])
def test_write_video_round_trip(tmp_path, suffix):
    doc = render.draw_document("id1")
    video = render.render_video(doc, seconds=0.5, fps=10, width=320, height=180)
    path = tmp_path / f"out{suffix}"
    render.write_video(path, video.frames, video.fps)
    frames, times = render.read_video(path)
    assert len(frames) == 5
    assert times[1] == pytest.approx(0.1, abs=0.01)
    assert np.abs(frames[2].astype(int) - video.frames[2]).mean() < 12


def test_write_video_unknown_suffix_rejected(tmp_path):
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="unsupported video file 'x.gif'"):
        render.write_video(tmp_path / "x.gif", [frame], 10)


def test_parse_intervals_bad_input_quoted():
    assert render.parse_intervals("0.5-1,2-3.5") == [(0.5, 1.0), (2.0, 3.5)]
    with pytest.raises(ValueError, match="bad interval '2-1'"):
        render.parse_intervals("2-1")
    with pytest.raises(ValueError, match="bad interval 'x'"):
        render.parse_intervals("x")


def test_flat_attack_keeps_hologram_colours_under_torch():
    doc = render.draw_document("id1")
    scene = render.SceneRenderer(doc, attack="flat", seed=3)
    dark = scene._doc_appearance(scene.pose(0.0), False, 0.0)
    lit = scene._doc_appearance(scene.pose(0.0), True, 0.0)
    x, y, w, h = doc.holograms[0]

    def hue(img):
        b, g, r = img[y : y + h, x : x + w].reshape(-1, 3).astype(float).mean(0)
        total = b + g + r
        return np.degrees(np.arctan2(g / total - 1 / 3, r / total - 1 / 3))

    # brighter (and a little paler), but the same hue: ink does not diffract
    assert lit[y : y + h, x : x + w].mean() > dark[y : y + h, x : x + w].mean()
    assert abs(hue(lit) - hue(dark)) < 5
