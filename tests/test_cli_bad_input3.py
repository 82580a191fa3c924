"""Still more of the offline tools on bad input, run through the real
`identdesk` console script: exit code, the message, never a traceback
(continues tests/test_cli_bad_input2.py)."""

from __future__ import annotations

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
