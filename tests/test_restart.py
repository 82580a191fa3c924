"""A server stopped or killed during a call loses nothing that was saved."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import av
import pytest
from aiortc import AudioStreamTrack

from identdesk.clients import (
    AgentClient,
    PhoneClient,
    activate_and_consent,
    create_case,
)
from identdesk.qa import ServeProcess, free_port
from tests.media_fixtures import SceneTrack


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def export(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identdesk.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _call_then(
    server: ServeProcess, signum: int, tmp_path: Path
) -> tuple[str, str]:
    """Run a call, stop the server with `signum`; returns case id and TAN."""
    key = server.secret(r"API key (idk_\S+)")
    password = server.secret(r"password (\S+)")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        case = await create_case(http, server.base, key)
        consent = await activate_and_consent(http, case["activation_url"])
        phone = PhoneClient(
            http, server.base, tracks=lambda: [SceneTrack(320, 240), AudioStreamTrack()]
        )
        agent = AgentClient(http, server.base)
        try:
            await phone.join(consent["tan"])
            await agent.login("admin", password)
            await agent.take_case()
            await agent.connect_media()
            await agent.wait_frames(90, timeout=40)
            await agent.capture("front")
            await asyncio.get_running_loop().run_in_executor(None, server.stop, signum)
        finally:
            await phone.close()
            await agent.close()
    return case["id"], consent["tan"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
async def test_server_stop_mid_call_keeps_recording_and_case(
    tmp_path: Path, signum: int
) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data)
    server.start()
    case_id, tan = await _call_then(server, signum, tmp_path)
    # the calls ran in media workers; none outlives the server, killed or not
    workers = re.findall(
        r"media worker \d+ started \(pid (\d+)\)", "".join(server.output)
    )
    assert workers, "the server started no media workers"
    deadline = time.monotonic() + 15
    while any(_running(int(pid)) for pid in workers):
        assert time.monotonic() < deadline, "a media worker outlived its server"
        await asyncio.sleep(0.1)

    result = export(data, "evidence", "export", case_id, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "front 320x240" in result.stdout
    if signum == signal.SIGKILL:
        assert "the recording was cut off" in result.stderr
    else:
        assert "cut off" not in result.stderr
    recording = next((tmp_path / "out").glob("*-recording.mkv"))
    with av.open(str(recording)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 20

    # after a restart the case is open again for the same transaction number
    again = ServeProcess(data)
    again.start()
    try:
        async with aiohttp.ClientSession() as http:
            phone = PhoneClient(http, again.base)
            try:
                joined = await phone.join(tan)
                assert joined["case_id"] == case_id
                assert (await phone.log.expect("queued"))["position"] == 1
            finally:
                await phone.close()
    finally:
        again.stop(signal.SIGTERM)
    if signum == signal.SIGKILL:
        # a graceful stop hangs up itself; after a kill the restart does it
        assert "1 interrupted calls put back to consented" in "".join(again.output)


def test_export_of_unknown_case_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = export(data, "evidence", "export", "no-such-case", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no identdesk data in {data}"
    assert not data.exists()
    subprocess.run(
        [sys.executable, "-m", "identdesk.cli", "partner", "add", "p"]
        + ["--data-dir", str(data)],
        check=True,
        capture_output=True,
    )
    result = export(
        data, "recording", "export", "no-such-case", str(tmp_path / "r.mkv")
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"error: no case no-such-case in {data}")


def test_second_server_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServeProcess(data)
    first.start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "identdesk.cli", "serve", "--no-tls"]
            + ["--host", "127.0.0.1", "--port", str(free_port())]
            + ["--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.stop(signal.SIGTERM)
    # refused before it could reset the first server's live cases as interrupted
    assert second.returncode == 1
    assert second.stderr.strip().endswith(
        f"error: another identdesk server is using the data folder {data}"
    )
    assert "interrupted" not in second.stderr + second.stdout
