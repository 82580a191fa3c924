"""Still more of the offline tools on bad input, run through the real
`identdesk` console script: exit code, the message, never a traceback
(continues tests/test_cli_bad_input2.py)."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_cli_bad_input2 import identdesk

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
