"""`identdesk bench media`, run tiny: the report's shape and that frames arrived."""

from __future__ import annotations

import json

import pytest

from identdesk.cli import main

CALL_KEYS = {
    "call", "cpu_cores", "fps", "frozen", "max_gap_ms", "rss_mb",
    "first_frame_s", "decodable", "lost", "sent_fps",
}  # fmt: skip


def test_bench_media_tiny_run_reports_both_relays(capsys) -> None:
    args = ["--calls", "1", "--seconds", "2", "--resolution", "360p", "--json"]
    code = main(["bench", "media", *args])
    captured = capsys.readouterr()
    assert code == 0
    assert "gateway: measuring 2 s" in captured.err
    report = json.loads(captured.out)
    assert report["calls"] == 1 and report["resolution"] == "360p"
    for run in ("gateway", "baseline"):
        assert len(report[run]["calls"]) == 1
        assert set(report[run]["calls"][0]) == CALL_KEYS
        assert report[run]["cpu_cores_total"] > 0
    call = report["gateway"]["calls"][0]
    assert call["decodable"] and call["fps"] > 10
    assert call["first_frame_s"] is not None and call["first_frame_s"] < 1.5
    assert set(report["ratio"]) == {
        "cpu_cores_per_call", "cpu_cores_per_30fps", "rss_mb_per_call",
    }  # fmt: skip


def test_bench_media_refuses_zero_calls(capsys) -> None:
    assert main(["bench", "media", "--calls", "0"]) == 2
    assert capsys.readouterr().err == (
        "--calls must be at least 1 and --seconds positive, got 0 and 10\n"
    )


def test_bench_media_with_workers_counts_their_cpu(capsys) -> None:
    args = ["--calls", "2", "--seconds", "2", "--resolution", "360p"]
    code = main(["bench", "media", *args, "--workers", "2", "--baseline-calls", "0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 media worker processes" in captured.out
    assert "packets lost from phones n/a (in the workers)" in captured.out
    rows = [line.split() for line in captured.out.splitlines()]
    calls = [row for row in rows if row[:1] == ["gateway"] and row[1].isdigit()]
    assert len(calls) == 2
    for row in calls:
        cores, fps = float(row[2]), float(row[4])
        # the relaying happens in the workers: the figure includes their CPU
        assert cores > 0.04 and fps > 10


def test_bench_media_refuses_negative_workers(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "media", "--workers", "-1"])
    assert exited.value.code == 2
    assert "media workers '-1': give a number of processes" in capsys.readouterr().err
