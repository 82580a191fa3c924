"""SIGTERM to serve's whole process group, as service managers send it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import free_port


def test_serve_stops_cleanly_when_its_process_group_is_terminated(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "IDENTDESK_SERVICE_HOURS": "always",
        "IDENTDESK_MEDIA_WORKERS": "2",
    }
    command = ["serve", "--no-tls", "--host", "127.0.0.1", "--port", str(free_port())]
    proc = subprocess.Popen(
        [sys.executable, "-m", "identdesk.cli", *command]
        + ["--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own group, signalled as a whole below
    )
    output: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "identdesk is running" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(60), "".join(output)
        assert "".join(output).count("media worker") == 2
        os.killpg(proc.pid, signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    reader.join(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    log = "".join(output)
    assert status == 0, log
    assert " ERROR " not in log and "Traceback" not in log, log
    assert log.rstrip().endswith("- stopped"), log
