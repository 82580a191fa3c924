"""`identdesk eval faces`: the command prints each set's figures."""

import argparse
from pathlib import Path

import pytest

from identdesk import cli_faces
from identdesk.cli import Commands
from media.faces import cascade_path

if cascade_path() is None:
    pytest.skip(
        "no LBP face cascade installed (Debian package opencv-data)",
        allow_module_level=True,
    )


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="identdesk")
    cli_faces.register(Commands(parser))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_eval_faces_prints_figures_per_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _run(
        [
            "eval",
            "faces",
            "-n",
            "1",
            "--no-baseline",
            "--corpus",
            str(tmp_path),  # an empty folder: no corpus images
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("load average before [")
    assert "live face, 720p desk frames (find_faces)\n  new:   1 images" in out
    assert "portrait, documents filmed 960x540 through VP8\n  new:   1 images" in out
    assert "specimen corpus images (find_faces)\n  new: no images" in out
    assert "  old:" not in out
