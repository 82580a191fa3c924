"""`identdesk qa run` from the command line, on generated videos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from identdesk.qa import QaError, default_script, load_script, probe_video
from tests.media_fixtures import card_scene


def write_video(
    path: Path, seconds: float, width: int, height: int, audio: bool
) -> Path:
    codec = {".mp4": "libx264", ".webm": "libvpx", ".mkv": "libx264"}[path.suffix]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libvpx":
            video.options = {"deadline": "realtime", "cpu-used": "8"}
        sound = (
            container.add_stream(
                "libopus" if path.suffix == ".webm" else "aac", rate=48000
            )
            if audio
            else None
        )
        for i in range(int(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(
                card_scene(i, width, height), format="bgr24"
            )
            for packet in video.encode(frame):
                container.mux(packet)
        if sound is not None:
            samples = np.zeros((2, 960), np.float32)
            for i in range(int(seconds * 50)):
                chunk = av.AudioFrame.from_ndarray(
                    samples, format="fltp", layout="stereo"
                )
                chunk.sample_rate = 48000
                chunk.pts = i * 960
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def identdesk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identdesk.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "size", "audio"),
    [
        ("a.mp4", (1280, 720), True),
        ("b.webm", (1280, 720), False),
        ("c.mkv", (1920, 1080), False),
        ("d.webm", (1920, 1080), True),
    ],
)
def test_probe_video_reads_containers(tmp_path, name, size, audio) -> None:
    info = probe_video(str(write_video(tmp_path / name, 0.2, *size, audio)))
    assert (info.width, info.height) == size
    assert info.has_audio is audio


def test_probe_video_unreadable_file_is_clear(tmp_path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(QaError, match=r"cannot read .*notes.mp4: "):
        probe_video(str(bad))


def test_qa_run_unreadable_video_exits_2(tmp_path) -> None:
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(b"\x1a\x45\xdf\xa3 garbage")
    result = identdesk("qa", "run", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read {bad}")


def test_qa_run_bad_script_exits_2(tmp_path) -> None:
    video = write_video(tmp_path / "v.webm", 0.5, 320, 240, False)
    script = tmp_path / "steps.json"
    script.write_text(json.dumps([{"at": 1, "action": "capture", "kind": "selfie"}]))
    result = identdesk("qa", "run", str(video), "--script", str(script))
    assert result.returncode == 2
    assert (
        "script step 0: kind must be one of front, back, face, other" in result.stderr
    )


def test_load_script_needs_a_decision(tmp_path) -> None:
    script = tmp_path / "steps.json"
    script.write_text(json.dumps([{"at": 1, "action": "torch", "on": True}]))
    with pytest.raises(QaError, match="has no 'decide' step"):
        load_script(str(script))


def test_default_script_scales_to_the_video() -> None:
    steps = default_script(20.0)
    assert [s["at"] for s in steps] == [3.0, 6.0, 9.0, 13.0, 17.0, 19.0]
    assert steps[-1]["action"] == "decide"


@pytest.mark.slow
def test_qa_run_walks_the_whole_path(tmp_path) -> None:
    video = write_video(tmp_path / "phone.webm", 4.0, 1280, 720, False)
    script = tmp_path / "steps.json"
    script.write_text(
        json.dumps(
            [
                {"at": 0.5, "action": "capture", "kind": "front"},
                {"at": 1.0, "action": "torch", "on": True},
                {"at": 1.5, "action": "torch", "on": False},
                {"at": 2.0, "action": "capture", "kind": "back"},
                {
                    "at": 2.5,
                    "action": "decide",
                    "decision": "reject",
                    "reason": "document_invalid",
                },
            ]
        )
    )
    result = identdesk("qa", "run", str(video), "--script", str(script), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [
        (s["kind"], s["width"], s["height"], s["decoded"]) for s in report["snapshots"]
    ] == [
        ("front", 1280, 720, True),
        ("back", 1280, 720, True),
    ]
    assert [(t["asked"], t["on"]) for t in report["torch"]] == [
        (True, True),
        (False, False),
    ]
    assert report["decision"]["decision"] == "reject"
    assert report["frames_at_agent"] > 30
    assert report["timings"]["first_frame_s"] < 5.0
    assert report["callback"]["signature_valid"] is True
    assert report["recording"]["bytes"] > 10_000


@pytest.mark.slow
def test_bench_cycles_reports_server_memory() -> None:
    result = identdesk("bench", "cycles", "--count", "2", "--seconds", "0.5", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [s["cycle"] for s in report["samples"]] == [0, 1, 2]
    assert all(s["rss_mb"] > 20 for s in report["samples"])
    assert report["end_mb"] == report["samples"][-1]["rss_mb"]
