"""Headless Chromium for the browser tests: a fake camera, phone and desk contexts.

Debian's chromium is driven by Playwright; nothing is downloaded. The fake camera
plays a generated Y4M file of the synthetic ID-card scene in a loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from identdesk.clients import activate_and_consent, create_case, latest_call_tan
from tests.conftest import Server
from tests.media_fixtures import card_scene

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
]
PHONE = {
    "viewport": {"width": 360, "height": 640},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
    ),
    "locale": "de-DE",
}
DESK = {"viewport": {"width": 1440, "height": 900}, "locale": "de-DE"}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make test installs it)"
)


def write_y4m(
    path: Path, frames: int = 30, width: int = 640, height: int = 480
) -> Path:
    """The card scene as an uncompressed Y4M clip that Chromium plays as its camera."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            yuv = cv2.cvtColor(card_scene(i * 2, width, height), cv2.COLOR_BGR2YUV_I420)
            out.write(b"FRAME\n")
            out.write(np.ascontiguousarray(yuv).tobytes())
    return path


@pytest.fixture(scope="session")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "card.y4m")


async def launch(camera: Path, allow_camera: bool = True) -> tuple[Any, Any]:
    """Start Playwright and Chromium; without allow_camera every prompt is denied."""
    from playwright.async_api import async_playwright

    args = [*BASE_ARGS, f"--use-file-for-fake-video-capture={camera}"]
    if allow_camera:
        args.append("--use-fake-ui-for-media-stream")
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=args
    )
    return pw, browser


@pytest.fixture
async def chromium(camera_file: Path, server: Server) -> AsyncIterator[Any]:
    """A headless Chromium whose camera permission prompts are accepted.

    It depends on `server` so that it closes first: open page sockets would hold
    the server's shutdown until its timeout.
    """
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make test installs it)")
    pw, browser = await launch(camera_file)
    try:
        yield browser
    finally:
        await browser.close()
        await pw.stop()

    # an uncaught error in any page the test opened fails it, whatever it checked
    reports = WATCHED.pop(browser, {}).values()
    thrown = [line for seen in reports for line in seen.thrown]
    assert not thrown, "a page threw:\n" + "\n".join(thrown)


class Shots:
    """Numbered screenshots of one test in artifacts/screenshots/."""

    def __init__(self, test: str) -> None:
        self.folder = SCREENSHOTS
        self.folder.mkdir(parents=True, exist_ok=True)
        self.test = test
        self.count = 0

    async def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.test}-{self.count:02d}-{step}.png"
        await page.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name.removeprefix("test_"))


@dataclass
class PageErrors:
    """What a page reported over the DevTools protocol while a test drove it."""

    thrown: list[str] = field(default_factory=list)  # uncaught errors, rejections
    console: list[str] = field(default_factory=list)  # console.error and the like
    failed: list[str] = field(default_factory=list)  # "401 GET /path" answers

    def problems(self, expected_failed: tuple[str, ...] = ()) -> list[str]:
        """Every report except the failed loads the test expects (each once)."""
        unexpected = list(self.failed)
        for item in expected_failed:
            if item in unexpected:
                unexpected.remove(item)
        return [*self.thrown, *self.console, *unexpected]


def watch_errors(page: Any) -> PageErrors:
    """Collect the page's errors from now on, across its navigations."""
    seen = PageErrors()

    def thrown(error: Any) -> None:
        seen.thrown.append(f"{page.url}: {error.stack or error.message}")

    def console(message: Any) -> None:
        # an error status is logged as "Failed to load resource"; `failed` has it
        if message.type == "error" and not message.text.startswith(
            "Failed to load resource"
        ):
            where = message.location
            place = f"{where.get('url')}:{where.get('lineNumber')}"
            seen.console.append(f"{place}: {message.text}")

    def answered(response: Any) -> None:
        if response.status >= 400:
            path = urlsplit(response.url).path
            seen.failed.append(f"{response.status} {response.request.method} {path}")

    page.on("pageerror", thrown)
    page.on("console", console)
    page.on("response", answered)
    return seen


# the error reports of the pages phone_page and desk_page opened, per browser
WATCHED: dict[Any, dict[Any, PageErrors]] = {}


def errors_of(page: Any) -> PageErrors:
    """What a page that phone_page or desk_page opened has reported so far."""
    return WATCHED[page.context.browser][page]


async def _watched_page(browser: Any, options: dict[str, Any]) -> Any:
    context = await browser.new_context(**options)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    WATCHED.setdefault(browser, {})[page] = watch_errors(page)
    return page


async def phone_page(browser: Any, **extra: Any) -> Any:
    return await _watched_page(browser, {**PHONE, **extra})


async def desk_page(browser: Any) -> Any:
    return await _watched_page(browser, DESK)


async def consented_tan(server: Server) -> tuple[dict[str, Any], str]:
    """A case consented through the API (for tests that start on the phone)."""
    case = await create_case(server.http, server.base, server.api_key)
    consent = await activate_and_consent(server.http, case["activation_url"])
    return case, consent["tan"]


async def agent_login(page: Any, server: Server) -> None:
    await page.goto(f"{server.base}/agent/")
    await page.fill("#login-name", server.agent_name)
    await page.fill("#login-password", server.agent_password)
    await page.click("#login-submit")
    await page.wait_for_selector("#desk:not([hidden])")


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = ""
) -> Any:
    """Poll an async check until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what or 'condition'} not met within {timeout} s: {last!r}")


async def video_frames(page: Any, selector: str) -> int:
    """Frames the page's video element has decoded so far."""
    return await page.eval_on_selector(
        selector,
        "v => v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames"
        " : 0",
    )


async def phone_in_queue(page: Any, server: Server, tan: str) -> None:
    """Open the phone page, enter the TAN, pass the device check, join the queue."""
    await page.goto(f"{server.base}/phone/")
    await page.fill("#tan", tan)
    await page.click("#tan-submit")
    await page.wait_for_selector("#join:not([disabled])")
    await page.click("#join")
    await page.wait_for_selector("#step-wait", state="visible")


async def call_running(browser: Any, server: Server) -> tuple[Any, Any]:
    """A phone in a call with a logged-in agent whose console decodes its video."""
    _, tan = await consented_tan(server)
    phone = await phone_page(browser)
    agent = await desk_page(browser)
    agent.on("dialog", lambda dialog: dialog.accept())
    await phone_in_queue(phone, server, tan)
    await agent_login(agent, server)
    await agent.click("#take-next")
    await phone.wait_for_selector("#step-call", state="visible")
    await wait_frames(agent, 10)
    return phone, agent


async def wait_frames(page: Any, more_than: int, timeout: float = 20_000) -> int:
    """Wait until the console's video has decoded more than `more_than` frames."""
    await page.wait_for_function(
        "n => document.getElementById('video').getVideoPlaybackQuality()"
        ".totalVideoFrames > n",
        arg=more_than,
        timeout=timeout,
    )
    return await video_frames(page, "#video")


async def confirm_call_tan(phone: Any, agent: Any, server: Server) -> None:
    """The agent sends the in-call code (C) and the phone enters it from the mail."""
    await agent.keyboard.press("c")
    await phone.wait_for_selector("#call-tan-form", state="visible")
    code = await latest_call_tan(lambda: server.mailbox.messages)
    await phone.fill("#call-tan", code)
    await phone.click("#call-tan-submit")
    await agent.wait_for_selector("#call-tan-state[data-state=confirmed]")


async def ready_to_approve(phone: Any, agent: Any, server: Server) -> None:
    """Front, back and face captured, the checklist ticked, the in-call code
    confirmed: what the console and the server ask of an approval."""
    for key, kind in (("f", "front"), ("b", "back"), ("g", "face")):
        await agent.keyboard.press(key)
        await agent.wait_for_selector(f"#gallery button[data-kind={kind}] img")
    await confirm_call_tan(phone, agent, server)
    for name in await agent.eval_on_selector_all(
        "#checklist input:not([disabled])", "bs => bs.map(b => b.name)"
    ):
        await agent.check(f"#checklist input[name={name}]")
