"""More of the document-tools and export commands on bad input, run through the
real `identdesk` console script: exit code, the one line they print, never a
traceback (continues tests/test_cli_bad_input.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import render

REPO = Path(__file__).resolve().parents[1]
IDENTDESK = Path(sys.executable).with_name("identdesk")


def identdesk(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(IDENTDESK), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """td3.png (a drawn passport page), thin.png (3000x3), small.png (20x20),
    thin.webm (3000x4, 2 s at 10 fps)."""
    tmp = tmp_path_factory.mktemp("files")
    cv2.imwrite(str(tmp / "td3.png"), render.draw_document("td3", seed=5).image)
    cv2.imwrite(str(tmp / "thin.png"), np.full((3, 3000, 3), 128, np.uint8))
    cv2.imwrite(str(tmp / "small.png"), np.full((20, 20, 3), 128, np.uint8))
    frames = [np.full((4, 3000, 3), 90 + 60 * (i % 2), np.uint8) for i in range(20)]
    render.write_video(tmp / "thin.webm", frames, 10.0)
    return tmp


# --- frames too small or too narrow to analyse -------------------------------


def test_mrz_read_thin_image_is_named_and_the_batch_goes_on(files):
    td3, thin, small = files / "td3.png", files / "thin.png", files / "small.png"
    result = identdesk("mrz", "read", "--json", td3, thin, small, td3)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0
    assert [r["found"] for r in rows] == [True, False, False, True]
    assert rows[1]["reason"] == "too narrow to analyse (3000 x 3)"
    assert rows[2]["reason"] == "too small to analyse (20 x 20)"
    assert result.stderr == (
        f"identdesk mrz read: '{thin}': too narrow to analyse (3000 x 3)\n"
        f"identdesk mrz read: '{small}': too small to analyse (20 x 20)\n"
    )


def test_mrz_read_table_says_why_nothing_was_found(files):
    result = identdesk("mrz", "read", files / "thin.png")
    assert result.returncode == 0
    assert "  no MRZ found: too narrow to analyse (3000 x 3)\n" in result.stdout


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("thin.png", "too narrow to analyse (3000 x 3)"),
        ("thin.webm", "too narrow to analyse (3000 x 4)"),
    ],
)
def test_doc_analyze_thin_image_or_video(files, name, problem):
    result = identdesk("doc", "analyze", "--json", files / name)
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["problem"] == problem
    assert out["document"] is None and out["faces"] == []
    assert out["mrz"]["found"] is False
    assert result.stderr == f"identdesk: '{files / name}': {problem}\n"


def test_hologram_check_thin_video_is_inconclusive(files):
    result = identdesk(
        "hologram", "check", files / "thin.webm", "--window", "0-2", "--torch-on",
        "0.5-1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["verdict"] == "inconclusive"
    assert out["reason"] == "frames too narrow to analyse (3000 x 4)"
