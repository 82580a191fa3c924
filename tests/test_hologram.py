"""The torch-driven hologram check on rendered sequences."""

import json

import numpy as np
import pytest

from identdesk.cli import main
from media import render
from media.hologram import check_hologram, check_tilt, random_torch_pattern

PATTERN = [(0.6, 1.3), (2.0, 2.6)]


def _video(attack, seed=1, kind="id1"):
    doc = render.draw_document(kind, seed=seed)
    return render.render_video(
        doc,
        seconds=3.0,
        fps=6,
        width=640,
        height=360,
        attack=attack,
        torch_on=PATTERN,
        seed=seed,
    )


def test_check_hologram_genuine_passes():
    v = _video("none")
    result = check_hologram(v.frames, v.times, PATTERN)
    assert result.verdict == "genuine", result.reason
    assert result.score > 0.6
    assert result.figures["responding_cells"] >= 1
    assert result.figures["hot_spot_gain"] > 0.06  # the torch's mirror image
    assert result.figures["brightness_correlation"] > 0.8
    assert result.overlay is not None and result.overlay.ndim == 3
    lit = [iv for iv in result.intervals if iv.torch]
    dark = [iv for iv in result.intervals if not iv.torch and iv.frames]
    assert min(iv.hue_change for iv in lit) > max(iv.hue_change for iv in dark)


def test_check_hologram_flat_copy_is_suspect():
    v = _video("flat", seed=2, kind="td3")
    result = check_hologram(v.frames, v.times, PATTERN)
    assert result.verdict == "suspect"
    assert "flat copy" in result.reason


def test_check_hologram_screen_replay_is_not_genuine():
    v = _video("screen", seed=3)
    result = check_hologram(v.frames, v.times, PATTERN)
    assert result.verdict == "suspect"


def _tilt_video(attack, seed):
    doc = render.draw_document("id1", seed=seed)
    return render.render_video(
        doc, seconds=3.0, fps=6, width=640, height=360, attack=attack, seed=seed
    )


def test_check_tilt_genuine_changes_colour_with_angle():
    v = _tilt_video("none", seed=906)
    result = check_tilt(v.frames, v.times)
    assert result.verdict == "genuine", result.reason
    assert result.figures["responding_cells"] >= 1
    assert result.overlay is not None


def test_check_tilt_flat_copy_is_not_genuine():
    v = _tilt_video("flat", seed=931)
    result = check_tilt(v.frames, v.times)
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("no area changes colour as the document tilts")


def test_check_tilt_screen_replay_is_suspect():
    # the replayed card's hologram changes colour with the tilt as a real one
    # does; the screen's refresh bands give it away
    v = _tilt_video("screen", seed=906)
    result = check_tilt(v.frames, v.times)
    assert result.figures["responding_cells"] >= 1
    assert result.verdict == "suspect"
    assert "screen" in result.reason
    g = _tilt_video("none", seed=906)
    genuine = check_tilt(g.frames, g.times)
    assert genuine.figures["moving_bands"] < result.figures["moving_bands"] / 3


def test_check_tilt_still_document_inconclusive():
    doc = render.draw_document("id1", seed=906)
    frame, _ = render.SceneRenderer(doc, width=640, height=360, seed=906).frame(
        0.0, False
    )
    result = check_tilt([frame] * 12, [i / 6 for i in range(12)])
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("the document was hardly tilted")


def test_check_hologram_too_few_lit_frames_inconclusive():
    v = _video("none")
    keep = [i for i, t in enumerate(v.times) if t < 0.8]
    result = check_hologram(
        [v.frames[i] for i in keep], [v.times[i] for i in keep], PATTERN
    )
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("too few usable frames")


def test_check_hologram_no_document_inconclusive():
    frames = [np.full((360, 640, 3), 90, np.uint8)] * 10
    result = check_hologram(frames, [i / 4 for i in range(10)], [(0.5, 1.5)])
    assert result.verdict == "inconclusive"
    assert result.reason == "document found in only 0% of frames"


def test_random_torch_pattern_is_unpredictable_and_well_formed():
    patterns = [random_torch_pattern(4.0) for _ in range(20)]
    assert len({tuple(p) for p in patterns}) > 15
    for p in patterns:
        assert len(p) >= 2
        assert p[0][0] >= 0.5
        assert all(a < b for a, b in p)
        assert all(p[i][1] < p[i + 1][0] for i in range(len(p) - 1))
        assert p[-1][1] <= 4.0


def test_hologram_check_command_prints_verdict(tmp_path, capsys):
    v = _video("none")
    path = tmp_path / "genuine.mp4"
    render.write_video(path, v.frames, v.fps)
    code = main(
        [
            "hologram",
            "check",
            str(path),
            "--window",
            "0-3",
            "--torch-on",
            "0.6-1.3,2-2.6",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["verdict"] == "genuine"
    assert {"start", "end", "torch", "hue_change"} <= set(out["intervals"][0])


def test_hologram_check_command_unreadable_file_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video")
    code = main(
        ["hologram", "check", str(path), "--window", "0-3", "--torch-on", "1-2"]
    )
    assert code == 2
    assert f"cannot read '{path}': not a video" in capsys.readouterr().err


def test_hologram_check_command_needs_torch_or_tilt(tmp_path, capsys):
    code = main(["hologram", "check", str(tmp_path / "x.mp4"), "--window", "0-3"])
    assert code == 2
    assert "give either --torch-on A-B[,C-D...] or --tilt" in capsys.readouterr().err


def test_hologram_check_command_bad_window_exits_2(tmp_path, capsys):
    code = main(
        [
            "hologram",
            "check",
            str(tmp_path / "x.mp4"),
            "--window",
            "3-1",
            "--torch-on",
            "1-2",
        ]
    )
    assert code == 2
    assert "bad interval '3-1'" in capsys.readouterr().err


@pytest.mark.parametrize("attack", ["flat", "screen"])
def test_render_command_writes_attack_video(tmp_path, capsys, attack):
    out = tmp_path / f"{attack}.webm"
    code = main(
        [
            "doc",
            "render",
            str(out),
            "--attack",
            attack,
            "--seconds",
            "0.3",
            "--torch-on",
            "0.1-0.3",
        ]
    )
    assert code == 0
    frames, _ = render.read_video(out)
    assert len(frames) == 9
    assert frames[0].shape == (720, 1280, 3)
