"""The document-tools commands on bad input: one clear line and exit 2 (never a
traceback), a batch that goes on past a bad file, and no wrong verdict on a
user's mistake."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from identdesk.cli import main
from identdesk.cli_doc import image_size
from media import render

REPO = Path(__file__).resolve().parents[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_huge_png(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A PNG whose header declares width x height (its pixel data is cut short:
    OpenCV checks the size before it decodes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (width + 1))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", row)
        + _chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 10 fps, 320x180 rendered clip lit 0.5-1 s."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    clip = render.render_video(
        render.draw_document("id1", seed=3),
        seconds=2.0,
        fps=10.0,
        width=320,
        height=180,
        torch_on=[(0.5, 1.0)],
    )
    render.write_video(path, clip.frames, clip.fps)
    return path


@pytest.fixture(scope="module")
def td3_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doc") / "td3.png"
    cv2.imwrite(str(path), render.draw_document("td3", seed=5).image)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def identdesk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identdesk.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


# --- images above OpenCV's pixel limit ---------------------------------------


def test_image_size_png_and_jpeg_headers(tmp_path):
    assert image_size(write_huge_png(tmp_path / "big.png")) == (40000, 40000)
    jpg = tmp_path / "small.jpg"
    cv2.imwrite(str(jpg), np.zeros((37, 53, 3), np.uint8))
    assert image_size(jpg) == (53, 37)


@pytest.mark.parametrize(
    "command",
    [
        ["mrz", "read", "{big}"],
        ["doc", "analyze", "{big}"],
        ["doc", "render", "{out}", "--image", "{big}"],
        ["eval", "doc", "--specimen", "{big}:id1", "-n", "1"],
    ],
    ids=["mrz-read", "doc-analyze", "doc-render", "eval-doc"],
)
def test_image_too_large_one_line_exit_2(tmp_path, command):
    big = write_huge_png(tmp_path / "big.png")
    args = [a.format(big=big, out=tmp_path / "o.mp4") for a in command]
    result = identdesk(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "image too large: 40000 x 40000, at most 50000000 pixels" in result.stderr
    assert not (tmp_path / "o.mp4").exists()


# --- doc render arguments ------------------------------------------------------


def test_render_video_refuses_zero_fps():
    with pytest.raises(ValueError, match="fps must be above 0, got 0"):
        render.render_video(render.draw_document("id1"), seconds=4, fps=0)


def test_write_video_streams_a_generator(tmp_path):
    produced = []

    def frames():
        for i in range(5):
            produced.append(i)
            yield np.full((64, 96, 3), 40 * i, np.uint8)

    render.write_video(tmp_path / "s.mp4", frames(), 10.0)
    got, times = render.read_video(tmp_path / "s.mp4")
    assert produced == [0, 1, 2, 3, 4]
    assert len(got) == 5 and got[0].shape == (64, 96, 3)


def test_render_long_clip_shows_progress(tmp_path):
    result = identdesk(
        "doc", "render", str(tmp_path / "o.mp4"), "--seconds", "11", "--fps", "10"
    )
    assert result.returncode == 0, result.stderr
    assert "doc render: frame 101/110" in result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'o.mp4'}: 110 frames")


# --- batches go on past a bad file ---------------------------------------------


def test_mrz_read_batch_reports_bad_file_and_goes_on(tmp_path, td3_png, capsys):
    text = tmp_path / "text.png"
    text.write_text("hello")
    code, out, err = run(
        ["mrz", "read", "--json", str(td3_png), str(text), str(td3_png)], capsys
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert [r["found"] for r in rows] == [True, False, True]
    assert rows[1] == {
        "image": str(text),
        "found": False,
        "error": f"cannot read image '{text}': not an image",
    }
    assert err == f"identdesk mrz read: cannot read image '{text}': not an image\n"


def _truth(tmp_path: Path, names: dict[str, list[str]]) -> Path:
    entries = {n: {"mrz": True, "lines": lines} for n, lines in names.items()}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps({"images": entries}))
    return path


def test_eval_mrz_bad_image_counted_apart(tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    doc = render.draw_document("td3", seed=5)
    cv2.imwrite(str(folder / "good.png"), doc.image)
    write_huge_png(folder / "big.png")
    truth = _truth(tmp_path, {"good.png": doc.mrz})
    code, out, err = run(["eval", "mrz", str(folder), "--truth", str(truth)], capsys)
    assert code == 1
    assert "exactly read          1/1 = 100.0%" in out
    assert "unreadable images     1 (named above, not counted)" in out
    assert (
        f"identdesk eval mrz: cannot read '{folder / 'big.png'}': image too large: "
        "40000 x 40000, at most 50000000 pixels\n"
    ) in err


def test_eval_mrz_nothing_annotated_exit_1(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "other.png"), np.zeros((50, 80, 3), np.uint8))
    truth = _truth(tmp_path, {"good.png": ["X"]})
    code, out, err = run(["eval", "mrz", str(tmp_path), "--truth", str(truth)], capsys)
    assert code == 1
    assert out == ""
    assert "nothing to measure" in err


# --- eval hologram --------------------------------------------------------------


def test_eval_hologram_zero_sequences_refused(capsys):
    args = ["eval", "hologram", "-n", "0", "--corpus-n", "0", "--tilt-n", "0"]
    assert run(args, capsys) == (
        2, "", "identdesk: -n 0: give at least 1 sequence per variant\n"
    )  # fmt: skip


def test_eval_hologram_log_lines_start_on_their_own_line():
    result = identdesk(
        "eval", "hologram", "-n", "1", "--corpus-n", "0", "--tilt-n", "0",
        "--seconds", "3.5", "--fps", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stderr.split("\n") if " INFO " in line]
    assert logged, result.stderr
    assert all("eval hologram" not in line for line in logged), result.stderr


# --- broken pipe ----------------------------------------------------------------


def test_reader_gone_exits_quietly(td3_png):
    proc = subprocess.Popen(
        [sys.executable, "-m", "identdesk.cli", "mrz", "read", "--json"]
        + [str(td3_png)] * 3,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head -0` would
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err


# --- the document kind of a rendered image ---------------------------------------


def _wide_td3() -> np.ndarray:
    """A TD3 page scanned with margins to ID-1's proportions (as Canada.png)."""
    page = render.draw_document("td3", seed=5).image
    pad = int(page.shape[1] * 0.12)
    return cv2.copyMakeBorder(page, 0, 0, pad, 0, cv2.BORDER_CONSTANT, value=(255,) * 3)


@pytest.mark.parametrize(
    ("image", "args", "message"),
    [
        (lambda: np.full((500, 710, 3), 200, np.uint8), [], "no --document given: "
         "the image's proportions 1.420 are nearest TD3 (1.420), rendering it as td3"),
        (_wide_td3, [], "no --document given: the image's MRZ is TD3, rendering it "
         "as td3"),
        (lambda: render.draw_document("td3", seed=5).image, ["--document", "id1"],
         "warning: the image's proportions 1.421 differ from ID-1's (1.586) by more "
         "than 8 %: it will be stretched"),
    ],
    ids=["proportions", "mrz", "given-other-proportions"],
)  # fmt: skip
def test_render_image_kind(tmp_path, image, args, message):
    cv2.imwrite(str(tmp_path / "doc.png"), image())
    result = identdesk("doc", "render", str(tmp_path / "o.mp4"), "--image",
                       str(tmp_path / "doc.png"), "--seconds", "3.5", "--fps", "2",
                       *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"identdesk: {message}\n" in result.stderr


# --- flat scans: the image is the document ----------------------------------------


def _inner_frame(kind: str, seed: int) -> np.ndarray:
    """A drawn document with a dark printed frame around its upper left part, an
    outline the search finds inside the scan."""
    img = render.draw_document(kind, seed=seed).image.copy()
    h, w = img.shape[:2]
    top_left, bottom_right = (
        (int(w * 0.03), int(h * 0.04)),
        (int(w * 0.45), int(h * 0.62)),
    )
    cv2.rectangle(img, top_left, bottom_right, (30, 30, 30), 8)
    return img


def _white_border(kind: str, seed: int) -> np.ndarray:
    """A drawn document scanned with a white strip on the left (as Canada.png)."""
    img = render.draw_document(kind, seed=seed).image
    h, w = img.shape[:2]
    pad = (int(h * 0.01), int(h * 0.01), int(w * 0.08), int(w * 0.01))
    return cv2.copyMakeBorder(img, *pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))


@pytest.mark.parametrize(
    ("make", "kind", "seed"),
    [
        (_inner_frame, "id1", 0),
        (_inner_frame, "id1", 2),
        (lambda kind, seed: render.draw_document(kind, seed=seed).image, "td3", 2),
        (_white_border, "td3", 0),
    ],
    ids=["id1-inner-frame-0", "id1-inner-frame-2", "td3-plain-2", "td3-white-border"],
)
def test_analyze_flat_scan_reads_the_whole_image(make, kind, seed):
    from identdesk.cli_doc import analyze_frame

    out = analyze_frame(make(kind, seed))
    assert out["document"] is None
    assert out["scan"] == kind
    assert out["mrz"]["found"] and out["mrz"]["valid"]
    assert out["quality"]["hints"] == [] and out["quality"]["scan"] is True


def test_analyze_card_lying_inside_a_document_shaped_image_keeps_its_outline():
    from identdesk.cli_doc import analyze_frame

    card = render.draw_document("id1", seed=4).image
    ch, cw = card.shape[:2]
    width = int(cw * 1.1)
    canvas = np.full((int(width / 1.42), width, 3), 90, np.uint8)
    y0, x0 = (canvas.shape[0] - ch) // 2, (width - cw) // 2
    canvas[y0 : y0 + ch, x0 : x0 + cw] = card
    out = analyze_frame(canvas)
    assert "scan" not in out
    assert out["document"]["kind"] == "id1"
    assert out["document"]["corners"][0] == pytest.approx([x0, y0], abs=3)


@pytest.mark.parametrize("seed", [1, 3])
def test_analyze_card_on_a_desk_in_a_3_2_photo_is_not_a_scan(seed):
    # 3:2 (1.5) lies within the scan tolerance of both ID-1 and TD3
    from identdesk.cli_doc import analyze_frame
    from media.document import corner_error

    doc = render.draw_document("id1", seed=seed)
    frame, truth = render.SceneRenderer(doc, width=1200, height=800, seed=seed).frame(
        0.5, False
    )
    out = analyze_frame(frame)
    assert "scan" not in out
    assert corner_error(np.array(out["document"]["corners"]), truth) < 0.02


def test_doc_analyze_scan_prints_scan_quality(tmp_path, capsys):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), _inner_frame("id1", 0))
    code, out, _ = run(["doc", "analyze", str(path)], capsys)
    assert code == 0
    assert "  no outline: the image is a flat scan of a whole id1 document\n" in out
    assert "  quality of the scan: sharpness " in out
    assert "hints:" not in out and "score 0.0" not in out


CORPUS_SCANS = [
    ("passporteye/testdata/100_pass-bdr.jpg", "td3", True),
    ("ausweiskopie/npa_2021.png", "id1", False),
    ("arg0s1080-mrz/docs/images/passports/Canada.png", "td3", True),
    # an outline 2 px inside the image's edges is the scan's own border
    ("arg0s1080-mrz/docs/images/passports/Japan.png", "td3", True),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "kind", "has_mrz"), CORPUS_SCANS)
def test_analyze_corpus_flat_scans(name, kind, has_mrz):
    from identdesk.cli_doc import analyze_frame
    from media.mrz_reader import read_mrz

    corpus = REPO.parent / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"specimen corpus not found at {corpus}")
    image = cv2.imread(str(corpus / name), cv2.IMREAD_COLOR)
    out = analyze_frame(image)
    assert out["document"] is None
    assert out["scan"] == kind
    assert out["portrait"] is not None
    whole = read_mrz(image).to_dict()
    assert out["mrz"]["found"] is has_mrz
    assert out["mrz"]["lines"] == whole["lines"]


# --- files that cannot be read or written --------------------------------------

# root reads and writes through mode 000: the child drops the capabilities
NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search"]  # fmt: skip


def unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    root = os.geteuid() == 0
    if root and not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is missing: mode 000 is no bar")
    return subprocess.run(
        [*(NO_DAC if root else []), sys.executable, "-m", "identdesk.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


@pytest.fixture
def locked(tmp_path, td3_png):
    """noread.png (mode 000), shut/x.png (folder 000), noperm/ (555), ok.png."""
    (tmp_path / "ok.png").write_bytes(td3_png.read_bytes())
    (tmp_path / "noread.png").write_bytes(td3_png.read_bytes())
    (tmp_path / "noread.png").chmod(0)
    for name, mode in (("shut", 0), ("noperm", 0o555)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(td3_png.read_bytes())
        (tmp_path / name).chmod(mode)
    yield tmp_path
    for name in ("shut", "noperm"):
        (tmp_path / name).chmod(0o755)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["doc", "analyze", "noread.png"], "cannot read 'noread.png': permission"),
        (["doc", "analyze", "shut/x.png"], "cannot read 'shut/x.png': permission"),
        (["doc", "render", "o.mp4", "--image", "noread.png"], "cannot read 'noread"),
        (["eval", "doc", "--specimen", "noread.png:id1"], "cannot read 'noread.png'"),
        (["eval", "mrz", ".", "--truth", "noread.png"], "file 'noread.png': permis"),
        (["eval", "mrz", "shut"], "cannot read folder 'shut': permission denied"),
        (["doc", "render", "noperm/r.mp4"], "cannot write 'noperm/r.mp4': permission"),
        (["doc", "analyze", "ok.png", "--save", "noperm/o"], "write to 'noperm/o': p"),
    ],
)
def test_unreadable_or_unwritable_one_line_exit_2(locked, command, message):
    result = unprivileged(*command, cwd=locked)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (locked / "noperm" / "r.mp4").exists()


def test_mrz_read_unreadable_image_gets_an_error_entry(locked):
    result = unprivileged("mrz", "read", "--json", "noread.png", "ok.png", cwd=locked)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 2
    assert rows[0]["error"] == "cannot read image 'noread.png': permission denied"
    assert rows[1]["found"] is True


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import av

    tmp_path = tmp_path_factory.mktemp("bad")
    os.mkfifo(tmp_path / "pipe.png")  # opening it would wait for a writer
    (tmp_path / "d.png").mkdir()
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.mp4").touch()
    cv2.imwrite(str(tmp_path / "card.jpg"), np.full((90, 140, 3), 128, np.uint8))
    with av.open(str(tmp_path / "voice.mp4"), "w") as container:  # audio only
        stream = container.add_stream("aac", rate=48000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return tmp_path


HOLO = ["hologram", "check", "{video}", "--window", "0-2"]
RENDER = ["doc", "render", "{tmp}/r.mp4"]
EVAL_MRZ = "identdesk eval mrz: "


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ([*RENDER, "--fps", "0"], "--fps 0: give 1 to 60 frames per second"),
        ([*RENDER, "--fps", "-5"], "--fps -5: give 1 to 60 frames per second"),
        ([*RENDER, "--fps", "nan"], "--fps nan: give 1 to 60 frames per second"),
        ([*RENDER, "--fps", "1000"], "--fps 1000: give 1 to 60 frames per second"),
        ([*RENDER, "--seconds", "-1"], "--seconds -1: give a length above 0 and at "
         "most 600 s (10 minutes)"),
        ([*RENDER, "--seconds", "nan"], "--seconds nan: give a length above 0 and at "
         "most 600 s (10 minutes)"),
        ([*RENDER, "--seconds", "100000"], "--seconds 100000: give a length above 0 "
         "and at most 600 s (10 minutes)"),
        ([*RENDER, "--seconds", "1", "--torch-on", "5-6"], "--torch-on 5-6: outside "
         "0-1 s"),
        ([*HOLO, "--torch-on", "3-4"], "--torch-on 3-4: outside 0-2 s"),
        ([*HOLO, "--torch-on", "0.2-0.8,0.5-1.5"], "--torch-on 0.5-1.5: overlaps the "
         "interval before it"),
        ([*HOLO, "--torch-on", "1-2.5"], "--torch-on 1-2.5: outside 0-2 s"),
        ([*HOLO, "--torch-on", "0.5-nan"], "--torch-on 0.5-nan: give finite seconds"),
        ([*HOLO, "--torch-on", "0.5-inf"], "--torch-on 0.5-inf: give finite seconds"),
        ([*HOLO[:3], "--window", "0.5-2", "--torch-on", "0.2-1"], "--torch-on 0.2-1: "
         "outside 0.5-2 s"),
        ([*HOLO[:3], "--window", "0-inf", "--torch-on", "0.5-1"], "--window '0-inf': "
         "give finite seconds from 0"),
        ([*HOLO[:3], "--window", "nan-2", "--torch-on", "0.5-1"], "--window 'nan-2': "
         "give finite seconds from 0"),
        ([*HOLO[:3], "--window", "0-9", "--torch-on", "0.5-1"], "--window 0-9: the "
         "video ends at 2.00 s, before the window does (times count from the "
         "video's first frame)"),
        ([*HOLO[:3], "--window", "0-0.3", "--torch-on", "0-0.1"], "cannot use "
         "'{video}': needs at least 6 frames between 0 and 0.3 s, found 4"),
        (["hologram", "check", "{tmp}/card.jpg", "--window", "0-5", "--torch-on",
          "1-2"], "cannot read '{tmp}/card.jpg': a still image (jpeg_pipe), not a "
         "video"),
        (["hologram", "check", "{tmp}/empty.mp4", "--window", "0-1", "--torch-on",
          "0-0.5"], "cannot read '{tmp}/empty.mp4': the file is empty"),
        (["doc", "analyze", "{tmp}"], "cannot read '{tmp}': it is a folder, not a "
         "file"),
        (["hologram", "check", "{tmp}/voice.mp4", "--window", "0-1", "--torch-on",
          "0-0.5"], "cannot read '{tmp}/voice.mp4': no video stream in it"),
        (["doc", "analyze", "{tmp}/pipe.png"], "cannot read '{tmp}/pipe.png': not a "
         "regular file"),
        (["doc", "analyze", "{png}/x.png"], "cannot read '{png}/x.png': no such file"),
        (["doc", "analyze", "{png}", "--save", "{png}"], "--save '{png}': it is a "
         "file, not a folder"),
        ([*HOLO, "--torch-on", "1-2", "--overlay", "o.xyz"], "--overlay 'o.xyz': "
         "give a .png or .jpg file"),
        ([*HOLO, "--torch-on", "1-2", "--overlay", "{tmp}/no/x.png"], "cannot write "
         "'{tmp}/no/x.png': no such folder '{tmp}/no'"),
        ([*HOLO, "--torch-on", "1-2", "--overlay", "{tmp}/d.png"], "cannot write "
         "'{tmp}/d.png': it is a folder"),
        (["doc", "render", "{tmp}/r.mp4", "--seed=-1"], "--seed -1: give 0 or more"),
        (["eval", "doc", "--seed=-1"], "--seed -1: give 0 or more"),
        (["eval", "hologram", "--seed=-1"], "--seed -1: give 0 or more"),
        (["eval", "doc", "-n", "0"], "-n 0: give at least 1 scene"),
        (["eval", "doc", "-n=-1"], "-n -1: give at least 1 scene"),
        (["eval", "doc", "--frames", "0"], "--frames 0: give at least 1 frame per "
         "scene"),
        (["eval", "doc", "--track-frames=-1"], "--track-frames -1: give 0 (none) or "
         "more"),
        (["doc", "render", "{tmp}/r.mp4", "--torch-on", ",,"], "--torch-on ',,': give "
         "at least one interval START-END"),
        ([*HOLO, "--torch-on", ",,"], "--torch-on ',,': give at least one interval "
         "START-END"),
        ([*HOLO[:3], "--window=-1-5", "--torch-on", "1-2"], "--window: bad interval "
         "'-1-5': times start at 0 s"),
        (["eval", "mrz", "{png}"], EVAL_MRZ + "'{png}' is a file, not a folder of "
         "images"),
        (["eval", "mrz", "{tmp}", "--truth", "{tmp}/text.jpg"], EVAL_MRZ + "cannot "
         "read annotation file '{tmp}/text.jpg': not JSON of the form "
         '{{"images": {{...}}}}'),
    ],
)  # fmt: skip
def test_bad_input_one_line(bad_files, td3_png, video, capsys, command, line):
    names = {"tmp": bad_files, "png": td3_png, "video": video}
    code, out, err = run([a.format(**names) for a in command], capsys)
    if not line.startswith(EVAL_MRZ):
        line = "identdesk: " + line
    assert (code, out, err) == (2, "", line.format(**names) + "\n")
    assert not (bad_files / "r.mp4").exists()  # nothing half-written


def test_hologram_check_overlay_without_a_response_image(video, tmp_path, capsys):
    args = [*HOLO, "--torch-on", "0.5-1", "--overlay", str(tmp_path / "r.png")]
    code, _, err = run([a.format(video=video) for a in args], capsys)
    assert code == 0 and not (tmp_path / "r.png").exists()  # too few lit frames
    assert err.startswith(f"identdesk: no response image to write to '{tmp_path}/r")


def test_eval_doc_no_corpus_scenes_asked_for(capsys):
    args = ["eval", "doc", "-n", "1", "--frames", "1", "--track-frames", "0"]
    code, out, _ = run([*args, "--corpus-scenes", "0"], capsys)
    assert code == 0 and "corpus scenes: none asked for (--corpus-scenes 0)" in out
    assert "corpus not present" not in out and "live loop (tracked): none" in out


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_refused(tmp_path, td3_png, capfd, suffix):
    # checked before decoding: no libpng or libjpeg warning on stderr either
    _, buf = cv2.imencode(suffix, cv2.imread(str(td3_png)))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(buf.tobytes()[: len(buf) // 2])
    error = f"cannot read '{cut}': the image is truncated"
    for args in (["doc", "analyze"], ["doc", "render", f"{tmp_path}/o.mp4", "--image"]):
        assert run([*args, str(cut)], capfd) == (2, "", f"identdesk: {error}\n")
    code, out, _ = run(["mrz", "read", "--json", str(cut)], capfd)
    assert (code, json.loads(out)["error"]) == (2, error.replace("read", "read image"))


def test_hologram_check_torch_on_in_any_order(video, capsys):
    check = ["hologram", "check", str(video), "--window", "0-2", "--json"]
    ordered = run([*check, "--torch-on", "0.2-0.5,1-1.5"], capsys)
    assert ordered[0] == 0
    assert run([*check, "--torch-on", "1-1.5,0.2-0.5"], capsys) == ordered


def test_hologram_check_negative_window_hint(video, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["hologram", "check", str(video), "--window", "-1-5", "--torch-on", "1-2"])
    assert exit_.value.code == 2
    assert (
        "(times start at 0 s; a value beginning with '-' is given as --window=VALUE)"
        in capsys.readouterr().err
    )
