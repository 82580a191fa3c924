"""`identdesk eval doc`: detection figures on rendered scenes, as JSON and text."""

import json

import cv2

from identdesk.cli import main
from media import render


def test_eval_doc_json_reports_bar_frames_and_live_ms(capsys):
    argv = ["eval", "doc", "-n", "2", "--frames", "1", "--track-frames", "3"]
    assert main([*argv, "--corpus-scenes", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    syn = out["synthetic"]
    assert syn["frames"] + syn["mostly_out"]["frames"] == 2
    assert 0.0 <= syn["within_2pct"] <= 1.0
    assert syn["live_ms"]["frames"] == 6
    assert syn["tracked"]["frames"] + syn["tracked"]["mostly_out"]["frames"] == 6
    assert out["corpus_rendered"] is None


def test_eval_doc_specimen_rendered_instead_of_corpus(tmp_path, capsys):
    path = tmp_path / "card.png"
    cv2.imwrite(str(path), render.draw_document("id1", seed=4).image)
    argv = ["eval", "doc", "-n", "1", "--frames", "1", "--track-frames", "1"]
    argv += ["--corpus-scenes", "1", "--specimen", f"{path}:id1", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["corpus_images"] == [str(path)]
    assert out["corpus_rendered"]["frames"] == 1


def test_eval_doc_bad_specimen_kind_refused(capsys):
    argv = ["eval", "doc", "--specimen", "card.png:td1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--specimen 'card.png:td1': give IMAGE:id1 or IMAGE:td3" in err
