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


# --- evidence and recording exports -------------------------------------------


async def _case_with_evidence(data: Path, recording: bytes) -> str:
    import argparse

    from identdesk.app import build_services
    from identdesk.cli_serve import settings_from

    svc = await build_services(settings_from(argparse.Namespace(data_dir=data)))
    try:
        partner_id, _ = await svc.accounts.add_partner("p")
        identity = {"given_names": "ERIKA", "surname": "MUSTERMANN",
                    "birth_date": "1983-08-12"}  # fmt: skip
        case, _ = await svc.store.create(
            partner_id, identity, "e@example.org", None, None, "de"
        )
        png = cv2.imencode(".png", np.full((24, 32, 3), 90, np.uint8))[1].tobytes()
        await svc.evidence.add(case.id, "front", "image/png", png, 32, 24)
        await svc.evidence.add(case.id, "recording", "video/x-matroska", recording)
        return case.id
    finally:
        await svc.engine.dispose()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder with a case holding a front snapshot and a 1 s recording."""
    import asyncio

    tmp = tmp_path_factory.mktemp("export")
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(10)]
    render.write_video(tmp / "rec.mkv", frames, 10.0)
    data = tmp / "data"
    return data, asyncio.run(_case_with_evidence(data, (tmp / "rec.mkv").read_bytes()))


def _export(case: tuple[Path, str], *args: object) -> subprocess.CompletedProcess[str]:
    data, case_id = case
    what = "recording" if str(args[0]).endswith(".mkv") else "evidence"
    return identdesk(what, "export", case_id, *args, "--data-dir", data)


def test_export_folder_that_cannot_be_made(case, tmp_path):
    (tmp_path / "file").write_text("keep")
    for folder, reason in (
        ("/proc/ev", "files cannot be created in '/proc'"),
        (f"{tmp_path}/file", "it is a file, not a folder"),
        (f"{tmp_path}/file/sub", f"'{tmp_path}/file' is a file, not a folder"),
    ):
        result = _export(case, folder)
        message = (
            f"cannot export to '{folder}': {reason}"
            if reason.startswith("it is")
            else f"cannot create folder '{folder}': {reason}"
        )
        assert (result.returncode, result.stderr) == (2, f"identdesk: {message}\n")
    assert (tmp_path / "file").read_text() == "keep"


def test_export_does_not_overwrite_without_overwrite(case, tmp_path):
    keep = tmp_path / "keep.mkv"
    keep.write_text("keep")
    result = _export(case, keep)
    assert (result.returncode, result.stderr) == (
        2,
        f"identdesk: will not overwrite '{keep}': give --overwrite to replace it\n",
    )
    assert keep.read_text() == "keep"
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "01-front.png").write_text("keep")
    result = _export(case, tmp_path / "ev")
    assert result.returncode == 2
    assert "will not overwrite" in result.stderr and "01-front.png" in result.stderr
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["01-front.png"]
    assert (tmp_path / "ev" / "01-front.png").read_text() == "keep"

    # with --overwrite both are replaced, and no partial file is left
    assert _export(case, keep, "--overwrite").returncode == 0
    assert keep.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # Matroska's EBML header
    result = _export(case, tmp_path / "ev", "--overwrite")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert names == ["01-front.png", "02-recording.mkv"]
    assert cv2.imread(str(tmp_path / "ev" / "01-front.png")).shape == (24, 32, 3)
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def test_export_into_a_new_folder(case, tmp_path):
    result = _export(case, tmp_path / "new" / "ev")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "new" / "ev").iterdir()) == [
        "01-front.png",
        "02-recording.mkv",
    ]


def test_failed_export_leaves_nothing_half_written(tmp_path):
    import asyncio

    data = tmp_path / "data"
    case_id = asyncio.run(_case_with_evidence(data, b"not a recording" * 1000))
    out = tmp_path / "out.mkv"
    result = _export((data, case_id), out)
    assert result.returncode == 1
    assert "could not be exported" in result.stderr
    assert list(tmp_path.iterdir()) == [data]


# --- argument messages ------------------------------------------------------------


@pytest.fixture(scope="module")
def td3_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 10 fps, 640x360 clip of a drawn passport page lit 0.5-1 s."""
    path = tmp_path_factory.mktemp("td3") / "td3.mp4"
    clip = render.render_video(
        render.draw_document("td3", seed=3), seconds=2.0, fps=10.0, width=640,
        height=360, torch_on=[(0.5, 1.0)],
    )  # fmt: skip
    render.write_video(path, clip.frames, clip.fps)
    return path


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (["doc", "render", "{tmp}/r.mp4", "--torch-on", "1e400-2"],
         "--torch-on 1e400-2: give finite seconds"),
        (["hologram", "check", "{video}", "--window", "0-2", "--torch-on", "inf-2"],
         "--torch-on inf-2: give finite seconds"),
        (["doc", "render", "{tmp}/r.mp4", "--seconds", "8", "--torch-on",
          "2-3,,5-6"], "--torch-on '2-3,,5-6': an empty interval between commas"),
        (["hologram", "check", "{video}", "--window", "0-2", "--torch-on",
          "0.5-1,"], "--torch-on '0.5-1,': an empty interval between commas"),
        (["doc", "analyze", "{png}", "--save", "{png}/sub"], "cannot write to "
         "'{png}/sub': '{png}' is a file, not a folder"),
        (["doc", "render", "/proc/out.mp4", "--seconds", "1", "--torch-on",
          "0.2-0.5"], "cannot write '/proc/out.mp4': files cannot be created in "
         "'/proc'"),
        # refused before the analysis, which would log its verdict
        (["hologram", "check", "{video}", "--window", "0-2", "--torch-on", "0.5-1",
          "--overlay", "/proc/x.png"], "cannot write '/proc/x.png': files cannot be "
         "created in '/proc'"),
        (["eval", "faces", "--corpus", "/nonexistent", "-n", "1"], "--corpus "
         "'/nonexistent': no such folder"),
        (["eval", "faces", "--corpus", "{png}", "-n", "1"], "--corpus '{png}': not "
         "a folder"),
    ],
)  # fmt: skip
def test_argument_messages(files, td3_video, tmp_path, command, line):
    names = {"tmp": tmp_path, "png": files / "td3.png", "video": td3_video}
    result = identdesk(*[a.format(**names) for a in command])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"identdesk: {line.format(**names)}\n"
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_hologram_check_says_when_the_document_kind_disagrees(td3_video):
    check = ["hologram", "check", td3_video, "--window", "0-2", "--torch-on", "0.5-1"]
    note = (
        "the document looks like a TD3 passport page (td3), not the --document "
        "id1 given: the check looked at it as id1"
    )
    result = identdesk(*check, "--document", "id1", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["reason"].endswith(f"; {note}")
    assert f"identdesk: warning: {note}\n" in result.stderr
    result = identdesk(*check, "--document", "td3", "--json")
    assert "looks like" not in result.stdout + result.stderr


# --- doc render: one seed, one file ----------------------------------------------


def test_render_same_seed_same_file(tmp_path):
    outs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        out = tmp_path / f"{name}.webm"
        args = ["doc", "render", out, "--seconds", "4", "--fps", "5", "--seed", seed]
        result = identdesk(*args, "--resolution", "720p")
        assert result.returncode == 0, result.stderr
        truth = json.loads(out.with_suffix(".truth.json").read_text())
        pattern = result.stdout.split("torch-on ")[1].split(",  and")[0]
        outs[name] = (out.read_bytes(), truth, pattern.split(", and its")[0])
    assert outs["a"] == outs["b"]  # video bytes, truth file and torch pattern
    assert outs["a"][2] != outs["c"][2] and outs["a"][0] != outs["c"][0]
    assert outs["a"][1]["frames"] == outs["b"][1]["frames"]


def test_seeded_torch_pattern_follows_the_challenge_rules():
    for seed in range(40):
        lit = render.seeded_torch_pattern(6.0, seed)
        assert lit == render.seeded_torch_pattern(6.0, seed)
        assert len(lit) >= 2 and lit[0][0] >= 0.5 and lit[-1][1] <= 6.0
        assert 1.5 <= sum(b - a for a, b in lit) <= 4.2
        assert all(0.4 <= b - a <= 1.0 or b == 6.0 for a, b in lit)
        gaps = [c - b for (_, b), (c, _) in zip(lit, lit[1:], strict=False)]
        assert all(0.4 <= g <= 1.0 for g in gaps)
    with pytest.raises(ValueError, match="needs at least 3.3 s"):
        render.seeded_torch_pattern(3.0, 1)


# --- doc analyze VIDEO: the best frame --------------------------------------------


def test_doc_analyze_video_picks_a_later_sharper_frame(tmp_path):
    # a still card, every frame slightly blurred but the 7th: all score 1.0
    # capped, and the first frame has no previous one to measure motion against
    scene = render.SceneRenderer(
        render.draw_document("id1", seed=0), width=1280, height=720, seed=3, motion=0
    )
    frames = []
    for i in range(10):
        image, _ = scene.frame(i / 10, False)
        frames.append(image if i == 6 else cv2.GaussianBlur(image, (0, 0), 1.5))
    render.write_video(tmp_path / "b.mkv", frames, 10.0)
    result = identdesk("doc", "analyze", "--json", tmp_path / "b.mkv")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["frame"], out["time"], out["frames"]) == (6, 0.6, 10)
    assert out["document"]["kind"] == "id1"
    result = identdesk("doc", "analyze", tmp_path / "b.mkv")
    assert result.stdout.startswith(f"{tmp_path / 'b.mkv'}: 1280x720, best frame 6")


# --- times from the video's first frame ----------------------------------------------


def test_window_times_count_from_the_first_frame(tmp_path):
    import av

    clip = render.render_video(
        render.draw_document("id1", seed=3), seconds=2.0, fps=10.0, width=320,
        height=180, torch_on=[(0.5, 1.0)],
    )  # fmt: skip
    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for i, image in enumerate(clip.frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = 100 + i  # the stream starts at 10 s (time base 1/10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert float(next(container.decode(video=0)).time) == 10.0

    check = ["hologram", "check", path, "--window", "0-2", "--torch-on", "0.5-1"]
    late = identdesk(*check, "--json")
    assert late.returncode == 0, late.stderr
    render.write_video(tmp_path / "zero.mkv", clip.frames, 10.0)
    check[2] = tmp_path / "zero.mkv"
    # the same frames from 0 s: the same figures
    assert json.loads(late.stdout) == json.loads(identdesk(*check, "--json").stdout)
    result = identdesk(*check[:3], "--window", "0-9", "--torch-on", "0.5-1")
    assert result.stderr.endswith(
        "the video ends at 2.00 s, before the window does (times count from the "
        "video's first frame)\n"
    )
    analysed = json.loads(identdesk("doc", "analyze", "--json", path).stdout)
    assert 0 <= analysed["time"] < 2


# --- doc analyze --save -------------------------------------------------------------


def test_doc_analyze_save_writes_rectified_portrait_and_live_face(tmp_path):
    scene = render.SceneRenderer(
        render.draw_document("id1", seed=0), width=1280, height=720, seed=3, motion=0
    )
    frame, _ = scene.frame(0.0, False)
    render.draw_portrait(frame, (1000, 200, 260, 320))  # the holder beside the card
    cv2.imwrite(str(tmp_path / "desk.png"), frame)
    result = identdesk(
        "doc", "analyze", "--json", tmp_path / "desk.png", "--save", tmp_path / "out"
    )
    assert result.returncode == 0, result.stderr
    names = ["rectified.png", "portrait.png", "live_face.png"]
    assert json.loads(result.stdout)["saved"] == names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    shapes = {n: cv2.imread(str(tmp_path / "out" / n)).shape for n in names}
    assert shapes["rectified.png"][:2] == (638, 1011)
    # the live face crop comes from the desk (a 260x320 face), not the card
    assert 200 < shapes["live_face.png"][1] < 400
    assert shapes["portrait.png"][1] < shapes["rectified.png"][1] / 2

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 200, np.uint8))
    result = identdesk("doc", "analyze", blank, "--save", tmp_path / "none")
    assert "  saved: nothing found to save\n" in result.stdout


# --- memory: image and window limits ------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_image_over_50_megapixels_refused_before_decoding(tmp_path, suffix):
    # PNG from our own header parser, WebP and TIFF from libav's probe
    big = tmp_path / f"big{suffix}"
    cv2.imwrite(str(big), np.zeros((6000, 9000, 3), np.uint8))
    for command in (["doc", "analyze"], ["mrz", "read"]):
        result = identdesk(*command, big)
        assert result.returncode == 2
        assert result.stderr.endswith(
            f"cannot read{' image' if command[0] == 'mrz' else ''} '{big}': image "
            "too large: 9000 x 6000, at most 50000000 pixels\n"
        )


def test_hologram_check_window_at_most_60_s(files):
    result = identdesk(
        "hologram", "check", files / "thin.webm", "--window", "0-61", "--torch-on",
        "1-2",
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        2,
        "identdesk: --window 0-61: at most 60 s long (the check holds the window's "
        "frames)\n",
    )


def test_long_window_frames_are_thinned(tmp_path):
    from identdesk.cli_doc_io import read_video

    frames = [np.full((360, 1280, 3), i % 250, np.uint8) for i in range(60)]
    render.write_video(tmp_path / "v.webm", frames, 30.0)
    full, times = read_video(str(tmp_path / "v.webm"))
    assert len(full) == 60 and full[0].shape == (360, 1280, 3)
    thin, thin_times = read_video(str(tmp_path / "v.webm"), thin=True)
    assert len(thin) == 30 and thin[0].shape == (180, 640, 3)
    assert thin_times == times[::2]


# --- doc render: the image, an existing OUT, a folder --------------------------------

RENDER_SHORT = ["--seconds", "1", "--fps", "5", "--torch-on", "0.2-0.6"]


@pytest.mark.parametrize(
    ("shape", "problem"),
    [((1, 1), "too small to analyse (1 x 1)"),
     ((2000, 10), "too narrow to analyse (10 x 2000)")],
)  # fmt: skip
def test_render_refuses_an_image_the_tools_cannot_analyse(tmp_path, shape, problem):
    image = tmp_path / "doc.png"
    cv2.imwrite(str(image), np.full((*shape, 3), 128, np.uint8))
    result = identdesk(
        "doc", "render", tmp_path / "r.mp4", "--image", image, *RENDER_SHORT
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"identdesk: --image '{image}': {problem}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.png"]


def test_render_replaces_out_only_with_overwrite(tmp_path):
    out, truth = tmp_path / "r.mp4", tmp_path / "r.truth.json"
    assert identdesk("doc", "render", out, *RENDER_SHORT).returncode == 0
    before = (out.read_bytes(), truth.read_bytes())
    again = [*RENDER_SHORT, "--seed", "4"]
    result = identdesk("doc", "render", out, *again)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"identdesk: will not overwrite '{out}', '{truth}': give --overwrite to "
        "replace them\n"
    )
    assert (out.read_bytes(), truth.read_bytes()) == before
    out.unlink()  # the truth file alone is not replaced either
    result = identdesk("doc", "render", out, *again)
    assert result.stderr == (
        f"identdesk: will not overwrite '{truth}': give --overwrite to replace it\n"
    )
    assert not out.exists() and truth.read_bytes() == before[1]
    result = identdesk("doc", "render", out, *again, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads(truth.read_text())["seed"] == 4


def test_render_to_a_folder_says_so(tmp_path):
    for out in (str(tmp_path), f"{tmp_path}/"):
        result = identdesk("doc", "render", out, *RENDER_SHORT)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"identdesk: cannot write '{out}': it is a folder\n"
    assert list(tmp_path.iterdir()) == []


def test_eval_mrz_missing_folder_says_no_such_folder(tmp_path):
    # it once said none of the images under the folder was annotated (exit 1)
    for given, named in (("/nonexistent", "/nonexistent"), (f"{tmp_path}/gone/",
                         f"{tmp_path}/gone")):  # fmt: skip
        result = identdesk("eval", "mrz", given)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"identdesk eval mrz: cannot read folder '{named}': no such folder\n"
        )
