"""`identdesk doc render`'s truth file and `identdesk eval videos` on videos it
rendered (a drawn ID-1 card, genuine and as a flat copy, 720p, 3 s at 15 fps),
and `identdesk eval hologram --specimen`."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from identdesk.cli import main
from media import render
from media.render_truth import RenderTruth, read_truth, write_video_and_truth

TORCH = "0.6-1.2,1.8-2.4"
SEEDS = {"genuine": 11, "flat": 12}
FRAMES = 45  # 3 s at 15 fps
NOTHING = "identdesk eval videos: nothing to measure: no video with a matching "


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """genuine.mp4 and flat.mp4 with their truth files."""
    folder = tmp_path_factory.mktemp("videos")
    for name, seed in SEEDS.items():
        code = main(
            ["doc", "render", str(folder / f"{name}.mp4"), "--seconds", "3",
             "--fps", "15", "--torch-on", TORCH, "--seed", str(seed),
             "--attack", "none" if name == "genuine" else name]
        )  # fmt: skip
        assert code == 0
    return folder


@pytest.fixture(scope="module")
def measured(rendered: Path) -> dict:
    # capsys is per test: the module's one run prints into a buffer
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["eval", "videos", str(rendered), "--json"])
    assert code == 0
    return json.loads(buf.getvalue())


def _copy(rendered: Path, to: Path, truth: bool = True) -> Path:
    shutil.copy(rendered / "genuine.mp4", to / "a.mp4")
    if truth:
        shutil.copy(rendered / "genuine.truth.json", to / "a.truth.json")
    return to / "a.mp4"


# --- the truth file ---------------------------------------------------------------


def test_render_truth_file_beside_the_video(rendered):
    # and no temporary file left beside them
    assert sorted(p.name for p in rendered.iterdir()) == [
        "flat.mp4", "flat.truth.json", "genuine.mp4", "genuine.truth.json"
    ]  # fmt: skip
    data = json.loads((rendered / "flat.truth.json").read_text())
    assert {k: v for k, v in data.items() if k != "frames"} == {
        "format": "identdesk render truth", "version": 1, "kind": "id1",
        "attack": "flat", "fps": 15.0, "width": 1280, "height": 720,
        "seconds": 3.0, "seed": 12, "partial": False,
        "torch_on": [[0.6, 1.2], [1.8, 2.4]], "source": "drawn",
    }  # fmt: skip
    frames = data["frames"]
    assert [f["index"] for f in frames] == list(range(FRAMES))
    assert [f["lit"] for f in frames] == [
        render.lit_at(i / 15, [(0.6, 1.2), (1.8, 2.4)]) for i in range(FRAMES)
    ]
    assert sum(f["lit"] for f in frames) == 18


@pytest.mark.parametrize("index", [0, 13, 44])
def test_render_truth_corners_are_the_renderers(rendered, index):
    truth = read_truth(rendered / "genuine.truth.json")
    scene = render.SceneRenderer(render.draw_document("id1", seed=11), seed=11)
    frame = truth.frames[index]
    _, corners = scene.frame(frame.t, frame.lit)
    assert frame.t == index / 15
    assert np.array_equal(frame.corners, corners.astype(np.float64))


def test_failed_render_leaves_neither_file(tmp_path):
    out = tmp_path / "card.mp4"
    out.write_bytes(b"an older video")
    (tmp_path / "card.truth.json").write_text("{}")
    scene = render.SceneRenderer(render.draw_document("id1"), width=64, height=48)
    truth = RenderTruth.of(scene, 15.0, 1.0, [], False, "drawn")
    with pytest.raises(ValueError, match="no frames to write to 'card.mp4'"):
        write_video_and_truth(out, scene, truth, 0)
    assert list(tmp_path.iterdir()) == []


# --- eval videos ------------------------------------------------------------------


def test_eval_videos_counts_and_detection(measured, rendered):
    videos = {Path(v["video"]).name: v for v in measured["videos"]}
    assert sorted(videos) == ["flat.mp4", "genuine.mp4"]
    for v in videos.values():
        assert v["frames"] == FRAMES
        assert v["tracked"]["frames"] == FRAMES  # the live loop on every frame
        assert v["search"]["frames"] == 5  # frames 0, 10, ..., 40
        for fig in (v["search"], v["tracked"]):
            assert 0.0 <= fig["detected"] <= 1.0
            assert 0.0 <= fig["within_2pct"] <= fig["detected"]
    genuine = videos["genuine.mp4"]
    assert genuine["search"]["within_2pct"] >= 0.8
    assert genuine["tracked"]["within_2pct"] >= 0.9
    assert genuine["live_ms"]["frames"] == FRAMES
    totals = measured["detection"]
    assert totals["frames"] == 10 and totals["tracked"]["frames"] == 2 * FRAMES
    assert measured["skipped"] == [] and len(measured["load_before"]) == 3


def test_eval_videos_hologram_verdicts(measured):
    videos = {Path(v["video"]).name: v["hologram"] for v in measured["videos"]}
    assert videos["genuine.mp4"]["expected"] == "genuine"
    assert videos["flat.mp4"]["expected"] == "not genuine"
    assert videos["genuine.mp4"]["verdict"] == "genuine"
    assert videos["flat.mp4"]["verdict"] != "genuine"
    totals = measured["hologram"]
    assert sorted(totals) == ["flat", "genuine"]
    assert totals["genuine"]["sequences"] == 1
    assert totals["flat"]["error_rate"] == 0.0


def test_eval_videos_text_goes_on_past_a_video_without_truth(
    rendered, tmp_path, capsys
):
    (tmp_path / "b").mkdir()
    lone = _copy(rendered, tmp_path / "b", truth=False)
    good = _copy(rendered, tmp_path)
    args = ["eval", "videos", str(tmp_path), "--search-every", "45"]
    code, out, err = run(args, capsys)
    assert code == 1
    assert err.count("identdesk eval videos: ") == 1
    assert (
        f"identdesk eval videos: no truth file '{tmp_path}/b/a.truth.json' beside "
        f"'{lone}' (`identdesk doc render` writes both)\n"
    ) in err
    lines = out.splitlines()
    assert lines[0].startswith(f"{good}: 45 frames id1 none  search within 2% ")
    assert "of   1  tracked within 2% " in lines[0]
    assert "hologram genuine (expected genuine: right)" in lines[0]
    assert "all 1 videos: bar = within 2% of the diagonal on >= 95% of frames" in out
    assert "  search (1 frame in 45), bar frames " in out
    assert "bar: genuine passes and flat copy fails in >= 95% each" in out
    assert lines[-1] == "skipped               1 (named above, not measured)"


def _truncated(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _setting(key: str, value: Any) -> Callable[[Path], None]:
    """Spoils the truth file by setting `key` (a function of the old value)."""

    def spoil(path: Path) -> None:
        data = json.loads(path.read_text())
        data[key] = value(data[key]) if callable(value) else value
        path.write_text(json.dumps(data))

    return spoil


def _not_a_video(path: Path) -> None:
    (path.parent / "a.mp4").write_bytes(b"\0" * 2048)


MISMATCH = "'{video}' does not match its truth file: the video "


@pytest.mark.parametrize(
    ("spoil", "line"),
    [
        (Path.unlink, "no truth file '{truth}' beside '{video}' (`identdesk doc "
         "render` writes both)"),
        (_truncated, "bad truth file '{truth}': not JSON (cut short or not a truth "
         "file)"),
        (_setting("frames", lambda f: f[:40]), MISMATCH + "has 45 frames, the "
         "truth file 40"),
        (_setting("width", 640), MISMATCH + "is 1280x720, the truth file says "
         "640x720"),
        (_setting("attack", "paper"), "bad truth file '{truth}': 'attack' 'paper': "
         "give one of none, flat, screen"),
        (_setting("version", 2), "bad truth file '{truth}': version 2, this "
         "identdesk reads version 1"),
        (_not_a_video, "cannot read '{video}': not a video"),
        (_setting("width", 100000), "'{video}': 45 frames of 100000x720 take 9.1 "
         "GB decoded, more than the 4 GB eval videos holds: render a shorter "
         "video"),
    ],
    ids=["no-truth", "truncated", "fewer-frames", "size", "attack", "version",
         "not-a-video", "too-large"],
)  # fmt: skip
def test_eval_videos_bad_video_one_line_exit_1(rendered, tmp_path, capsys, spoil, line):
    video = _copy(rendered, tmp_path)
    truth = tmp_path / "a.truth.json"
    spoil(truth)
    code, out, err = run(["eval", "videos", str(video)], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"identdesk eval videos: {line.format(video=video, truth=truth)}\n"
        f"{NOTHING}truth file among '{video}'\n"
    )


def test_eval_videos_empty_folder_exit_1(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no video here")
    code, out, err = run(["eval", "videos", str(tmp_path)], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"identdesk eval videos: no videos (.mp4, .mkv, .webm) in folder "
        f"'{tmp_path}'\n{NOTHING}truth file among '{tmp_path}'\n"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--search-every", "0"], "--search-every 0: give 1 or more (1: every frame)"),
    ],
)
def test_eval_videos_bad_option_exit_2(tmp_path, capsys, args, line):
    code, out, err = run(["eval", "videos", str(tmp_path), *args], capsys)
    assert (code, out, err) == (2, "", f"identdesk: {line}\n")


def test_eval_videos_not_a_video_path(tmp_path, capsys):
    image = tmp_path / "card.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    gone = tmp_path / "gone.mp4"
    code, _, err = run(["eval", "videos", str(image), str(gone)], capsys)
    assert code == 1
    assert err.startswith(
        f"identdesk eval videos: '{image}': not a video (.mp4, .mkv, .webm) or a "
        f"folder\nidentdesk eval videos: cannot read '{gone}': no such file or "
        "folder\n"
    )


# --- eval hologram --specimen -----------------------------------------------------


def test_eval_hologram_specimen_renders_the_image_given(tmp_path, capsys):
    png = tmp_path / "drawn_td3.png"
    cv2.imwrite(str(png), render.draw_document("td3", seed=21).image)
    args = [
        "eval", "hologram", "-n", "1", "--corpus-n", "1", "--tilt-n", "0",
        "--seconds", "3.5", "--fps", "3", "--specimen", f"{png}:td3", "--json",
    ]  # fmt: skip
    code, out, _ = run(args, capsys)
    assert code == 0
    result = json.loads(out)
    assert result["corpus_images"] == [str(png)]
    corpus = result["corpus_rendered"]
    assert sorted(corpus) == ["flat", "genuine", "screen"]
    assert all(f["sequences"] == 1 for f in corpus.values())
    assert sum(sum(f["verdicts"].values()) for f in corpus.values()) == 3


def test_eval_hologram_specimen_without_kind_refused(tmp_path, capsys):
    args = ["eval", "hologram", "--specimen", str(tmp_path / "x.png")]
    assert run(args, capsys) == (
        2, "", f"identdesk: --specimen '{tmp_path}/x.png': give IMAGE:id1 or "
        "IMAGE:td3\n",
    )  # fmt: skip
