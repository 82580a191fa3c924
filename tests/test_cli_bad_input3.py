"""Still more of the offline tools on bad input, run through the real
`identdesk` console script: exit code, the message, never a traceback
(continues tests/test_cli_bad_input2.py)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_cli_bad_input2 import IDENTDESK, identdesk

# --- qa run / qa phone: not a video -------------------------------------------------


def _not_videos(folder: Path) -> dict[str, str]:
    """Files that are not videos, each with the reason doc analyze gives."""
    (folder / "NOTAVIDEO").write_text("this is not a video\n")
    noise = random.Random(2).randbytes(4000)
    # a demuxer takes raw H.264 bytes, but no frame decodes (libav said
    # "Invalid data found when processing input: 'avcodec_send_packet()'")
    (folder / "clip.h264").write_bytes(b"\x00\x00\x00\x01\x67" + noise)
    cv2.imwrite(str(folder / "still.png"), np.full((64, 64, 3), 128, np.uint8))
    return {
        "NOTAVIDEO": "not a video",
        "clip.h264": "not a video (no frame of it decodes)",
        "still.png": "a still image (png_pipe), not a video",
    }


@pytest.mark.parametrize("command", [["qa", "run"], ["qa", "phone"]])
def test_qa_says_not_a_video_as_doc_analyze_does(tmp_path, command):
    for name, reason in _not_videos(tmp_path).items():
        path = tmp_path / name
        result = identdesk(*command, path, "--api-key", "k", timeout=60)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"error: cannot read {path}: {reason}\n"
    # doc analyze reads a file by its suffix: as a video, the same words
    (tmp_path / "clip.mp4").write_bytes((tmp_path / "NOTAVIDEO").read_bytes())
    result = identdesk("doc", "analyze", tmp_path / "clip.mp4")
    assert result.returncode == 2
    assert (
        result.stderr == f"identdesk: cannot read '{tmp_path}/clip.mp4': not a video\n"
    )


# --- hologram check: a window past the end of a clip that starts late -----------------


def _late_clip(path: Path, seconds: float, fps: int, start: float) -> Path:
    """A small clip whose stream starts at `start` s (cut from a longer one)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(round(seconds * fps)):
            image = np.full((96, 160, 3), 60 + i % 120, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = round(start * fps) + i  # time base 1/fps
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_window_past_the_end_of_a_late_clip_says_when_it_ends(tmp_path):
    clip = _late_clip(tmp_path / "off.mkv", 5.0, 30, 10.0)
    # no frame in the window, and some
    for window, lit in (("10-14", "11-12"), ("3-6", "3.5-4")):
        result = identdesk(
            "hologram", "check", clip, "--window", window, "--torch-on", lit
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"identdesk: --window {window}: the video ends at 5.00 s, before the "
            "window does (times count from the video's first frame, which its "
            "stream starts at 10.00 s)\n"
        )
    # a window inside the video with too few frames is still said so
    result = identdesk(
        "hologram", "check", clip, "--window", "4.9-4.95", "--torch-on", "4.9-4.95"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"identdesk: cannot use '{clip}': needs at least 6 frames between 4.9 and "
        "4.95 s, found 2\n"
    )


# --- progress: \r on a terminal, plain lines elsewhere --------------------------------


def test_render_progress_is_plain_lines_off_a_terminal(tmp_path):
    out = tmp_path / "p.mp4"
    result = identdesk("doc", "render", out, "--seconds", "4", "--torch-on", "1-2")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    frames = [f"doc render: frame {i}/120\n" for i in (1, 26, 51, 76, 101)]
    assert result.stderr == "".join(frames)


def test_render_progress_rewrites_one_line_on_a_terminal(tmp_path):
    import os
    import pty

    main_fd, terminal = pty.openpty()
    out = tmp_path / "p.mp4"
    args = ["doc", "render", out, "--seconds", "4", "--torch-on", "1-2"]
    with open(terminal, "wb") as stderr:
        result = subprocess.run(
            [str(IDENTDESK), *map(str, args)], stderr=stderr, timeout=180
        )
    shown = b""
    while chunk := _read_some(main_fd):
        shown += chunk
    os.close(main_fd)
    assert result.returncode == 0
    frames = [f"\rdoc render: frame {i}/120" for i in (1, 26, 51, 76, 101)]
    assert shown.decode() == "".join(frames) + "\r\n"  # the terminal's \n


def _read_some(fd: int) -> bytes:
    import os

    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the terminal's other side is closed
        return b""


def test_progress_off_a_terminal_at_each_tenth(monkeypatch, capsys):
    from identdesk import cli

    monkeypatch.setattr(cli._Progress, "tenth", None)
    for i in range(1, 1001):
        cli.progress(f"eval: image {i}/1000")
    cli.end_progress()
    lines = capsys.readouterr().err.splitlines()
    tenths = [f"eval: image {i}/1000" for i in (1, *range(100, 1001, 100))]
    assert set(tenths) <= set(lines)
    assert len(lines) < 15  # and one more only if 5 s went by


# --- doc render --help says what the code does --------------------------------


def test_render_help_names_the_mrz_before_the_proportions():
    result = identdesk("doc", "render", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert (
        "document kind (default: id1; with --image the kind the image's MRZ names, "
        "TD1 id1 and TD3 td3, else the kind nearest its proportions)"
    ) in text


# --- doc analyze --json: one coordinate system, live faces apart ---------------------


def _iou(a: list[int], b: list[int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _analysed(path: Path) -> dict:
    result = identdesk("doc", "analyze", "--json", path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_doc_analyze_portrait_box_in_input_coordinates(tmp_path):
    from media import render

    card = render.draw_document("id1", seed=0)
    scene = render.SceneRenderer(card, width=1280, height=720, seed=3, motion=0)
    frame, corners = scene.frame(0.0, False)
    render.draw_portrait(frame, (1000, 200, 260, 320))  # the holder beside it
    cv2.imwrite(str(tmp_path / "desk.png"), frame)
    out = _analysed(tmp_path / "desk.png")
    portrait, (tw, th) = out["portrait"], out["rectified_size"]
    assert (tw, th) == (1011, 638)
    # the rectified box carried into the frame through the true corners
    x, y, w, h = portrait["box_rectified"]
    rect = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
    hom = cv2.getPerspectiveTransform(rect, np.asarray(corners, np.float32))
    box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    quad = cv2.perspectiveTransform(box.reshape(-1, 1, 2), hom).reshape(-1, 2)
    assert np.abs(quad - portrait["corners"]).max() < 5
    x0, y0 = quad.min(0)
    x1, y1 = quad.max(0)
    true_box = [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]
    assert _iou(portrait["box"], true_box) > 0.8
    # the holder beside the card is the one live face
    assert out["live_faces"] == 1
    assert [f["on_document"] for f in out["faces"]].count(False) == 1
    live = next(f for f in out["faces"] if not f["on_document"])
    assert _iou(live["box"], [1000, 200, 260, 320]) > 0.1
    text = identdesk("doc", "analyze", tmp_path / "desk.png").stdout
    assert "  faces in frame: 1 (1 live, 0 on the document); portrait on" in text


def test_doc_analyze_flat_scan_has_no_live_face(tmp_path):
    from media import render

    # the document at half its rectified size: the image is the document
    image = cv2.resize(render.draw_document("id1", seed=0).image, (506, 319))
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    out = _analysed(tmp_path / "scan.png")
    assert out["scan"] == "id1" and out["document"] is None
    assert out["live_faces"] == 0
    assert out["faces"] and all(f["on_document"] for f in out["faces"])
    portrait = out["portrait"]
    half = [round(v * 506 / 1011) for v in portrait["box_rectified"]]
    assert np.abs(np.subtract(portrait["box"], half)).max() <= 2
    # the face found in the image is the portrait, in the same coordinates
    assert _iou(out["faces"][0]["box"], portrait["box"]) > 0.6
    text = identdesk("doc", "analyze", tmp_path / "scan.png").stdout
    assert "  faces in frame: 1 (0 live, 1 on the document); portrait on" in text
