"""Reading the MRZ of documents turned or lying askew (media.mrz_locate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from media.mrz_cut import Line
from media.mrz_eval import evaluate_rotations, rotate_image
from media.mrz_locate import direction, group_lines, print_rows, upright
from media.mrz_reader import read_mrz
from media.render import draw_document

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TRUTH = REPO / "tests" / "data" / "mrz_truth.json"
QUARTERS = (90, 180, 270)


def desk(width: int, height: int, seed: int) -> np.ndarray:
    """A wooden desk with printed papers on it, their print along the frame."""
    rng = np.random.default_rng(seed)
    grain = np.sin(np.linspace(0, 40, width))[None, :, None] * 12
    noise = rng.normal(0, 6, (height, width, 1))
    img = np.clip(np.float32((90, 120, 150)) + grain + noise, 0, 255).astype(np.uint8)
    for _ in range(6):
        org = (int(rng.integers(0, width - 300)), int(rng.integers(30, height)))
        cv2.putText(
            img,
            "INVOICE 2024 TOTAL 42 EUR",
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            0.9,
            (30, 30, 30),
            2,
            cv2.LINE_AA,
        )
    return img


def lay(doc: np.ndarray, degrees: float, fill: float, seed: int = 0) -> np.ndarray:
    """A 1280x960 photo of the document lying on the desk, turned by `degrees`
    (counter-clockwise) and `fill` of the frame's width long."""
    width, height = 1280, 960
    h, w = doc.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, fill * width / w)
    m[:, 2] += (width / 2 - w / 2, height / 2 - h / 2)
    return cv2.warpAffine(
        doc,
        m,
        (width, height),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_TRANSPARENT,
        dst=desk(width, height, seed),
    )


def _reading(image: np.ndarray) -> dict:
    """The reading without its time and mean glyph confidence.

    A reading that is sure at once is kept as read (upside down, say); only
    one in doubt is read again on the turned pixels.
    """
    out = read_mrz(image).to_dict()
    del out["ms"], out["confidence"]
    return out


# -- synthetic documents -------------------------------------------------------


@pytest.mark.parametrize("kind", ["id1", "td3"])
def test_read_mrz_drawn_document_quarter_turns_read_as_upright(kind):
    doc = draw_document(kind, seed=1)
    want = _reading(doc.image)
    assert want["lines"] == doc.mrz
    for degrees in QUARTERS:
        assert _reading(rotate_image(doc.image, degrees)) == want, degrees


@pytest.mark.parametrize(
    ("kind", "degrees"),
    [
        ("id1", 12.0),
        ("id1", -27.0),
        ("id1", 45.0),
        ("id1", 160.0),
        ("td3", -15.0),
        ("td3", 30.0),
        ("td3", 45.0),
        ("td3", -120.0),
        ("td3", 200.0),
    ],
)
def test_read_mrz_drawn_document_askew_on_desk(kind, degrees):
    doc = draw_document(kind, seed=2)
    reading = read_mrz(lay(doc.image, degrees, fill=0.5))
    assert reading.lines == doc.mrz
    assert reading.result is not None and reading.result.valid
    assert all(reading.result.checks.values())


@pytest.mark.parametrize("degrees", [0.0, 33.0, -70.0])
def test_read_mrz_empty_desk_not_found(degrees):
    bg = desk(1280, 960, seed=5)
    m = cv2.getRotationMatrix2D((640, 480), degrees, 1.0)
    image = cv2.warpAffine(bg, m, (1280, 960), borderMode=cv2.BORDER_REFLECT)
    d = read_mrz(image).to_dict()
    assert d["found"] is False and d["valid"] is False


@pytest.mark.parametrize("degrees", [0.0, 17.0, -38.0, 63.0, 90.0])
def test_print_rows_direction_of_turned_document(degrees):
    doc = draw_document("td3", seed=0)
    gray = cv2.cvtColor(rotate_image(doc.image, degrees), cv2.COLOR_BGR2GRAY)
    rows = print_rows(gray)
    assert rows is not None
    # a counter-clockwise turn sends rows to -degrees (y down), modulo 180
    off = (rows.degrees + degrees + 90) % 180 - 90
    assert abs(off) <= 1.0


def test_print_rows_blank_image_none():
    assert print_rows(np.full((300, 400), 200, np.uint8)) is None


def test_upright_quarter_turn_moves_pixels_exactly():
    doc = draw_document("id1", seed=0)
    gray = cv2.cvtColor(doc.image, cv2.COLOR_BGR2GRAY)
    turned = cv2.rotate(gray, cv2.ROTATE_90_CLOCKWISE)
    h = turned.shape[0]
    # a band reading downwards in the turned image, 3 degrees off the vertical
    band = [Line((100.0, 50.0), (100.0 + 0.05 * h, 50.0 + h * 0.9), 12.0)]
    view = upright(turned, band)
    assert view.back is None
    assert np.array_equal(view.image, gray)


def test_upright_askew_band_view_maps_back_to_source():
    gray = np.zeros((400, 600), np.uint8)
    band = [Line((100.0, 300.0), (400.0, 100.0), 10.0)]
    view = upright(gray, band)
    assert view.back is not None and view.angles == (0.0,)
    assert view.frame == pytest.approx(direction(band))
    # the view's x axis runs along the band
    a = view.back @ np.array([0.0, 0.0, 1.0])
    b = view.back @ np.array([100.0, 0.0, 1.0])
    assert np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])) == pytest.approx(
        direction(band)
    )


def test_group_lines_near_vertical_share_one_direction():
    # three vertical lines whose axes point either way (as the blob finder
    # gives them): the group must keep one direction and one order
    xs = (300.0, 320.0, 340.0)
    lines = [
        Line((x, 100.0), (x, 500.0), 10.0)
        if i != 1
        else Line((x, 500.0), (x, 100.0), 10.0)
        for i, x in enumerate(xs)
    ]
    group = next(g for g in group_lines(lines) if len(g) == 3)
    units = [tuple(np.round(ln.unit, 6)) for ln in group]
    assert len(set(units)) == 1
    across = [float(np.dot(ln.center, (-ln.unit[1], ln.unit[0]))) for ln in group]
    assert across == sorted(across)


# -- the eval command ----------------------------------------------------------


def test_cli_eval_mrz_rotate_prints_figures_per_angle(tmp_path):
    doc = draw_document("td3", seed=3)
    cv2.imwrite(str(tmp_path / "doc.png"), doc.image)
    truth = tmp_path / "truth.json"
    truth.write_text(
        json.dumps({"images": {"doc.png": {"mrz": True, "lines": doc.mrz}}})
    )
    out = subprocess.run(
        [sys.executable, "-m", "identdesk.cli", "eval", "mrz", str(tmp_path),
         "--truth", str(truth), "--rotate", "0,90,180,270,25", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert list(report["rotations"]) == ["0", "90", "180", "270", "25"]
    for figures in report["rotations"].values():
        assert figures["exactly_read"] == 1 and figures["wrong_valid"] == 0
        assert figures["ms_mean"] > 0
    assert len(report["load"]) == 3


def test_cli_eval_mrz_rotate_bad_angle_exit_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "identdesk.cli", "eval", "mrz", str(tmp_path),
         "--rotate", "0,ninety"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "not an angle in degrees: 'ninety' (in '0,ninety')" in out.stderr


# -- the specimen corpus -------------------------------------------------------


@pytest.fixture
def one_cv_thread():
    """OpenCV on one thread, as the CLI runs it (identdesk.cli): on this 2-core
    machine, shared with other jobs, its own thread pool only slows it down."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_corpus_rotated_figures(one_cv_thread):
    if not CORPUS.is_dir():
        pytest.skip(f"specimen corpus not found at {CORPUS}")
    rotations = (90.0, 180.0, 270.0, 15.0, -30.0)
    reports = evaluate_rotations(CORPUS, TRUTH, rotations)
    figures = {r: rep.to_dict() for r, rep in reports.items()}
    for rotation, f in figures.items():
        assert f["wrong_valid"] == 0, rotation
        assert f["found_without_mrz"] == 0, rotation
    # quarter turns move the upright pixels: 67/70 exact as upright (95.7%)
    for rotation in (90.0, 180.0, 270.0):
        assert figures[rotation]["exact_rate"] >= 0.95, rotation
    # askew, each image is resampled once more before the reader sees it:
    # measured 62-66/70 at angles from 5 to 350 degrees
    for rotation in (15.0, -30.0):
        assert figures[rotation]["exact_rate"] >= 0.88, rotation
