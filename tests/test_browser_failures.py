"""The failure paths a user meets, in real Chromium: each must say what to do."""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signaling.cases import State
from tests.browser_support import (  # noqa: F401 (fixtures)
    Shots,
    call_running,
    camera_file,
    chromium,
    consented_tan,
    launch,
    phone_page,
    shots,
    wait_frames,
)
from tests.conftest import PinnedClock, Server

pytestmark = pytest.mark.browser


async def test_browser_camera_denied_shows_recovery(
    server: Server, camera_file: Path, shots: Shots
) -> None:
    _, tan = await consented_tan(server)
    pw, browser = await launch(camera_file, allow_camera=False)
    try:
        page = await phone_page(browser)
        await page.goto(f"{server.base}/phone/")
        await page.fill("#tan", tan)
        await page.click("#tan-submit")

        # denied: the page explains how to allow the camera, and joining stays off
        await page.wait_for_selector("#camera-denied", state="visible")
        text = await page.text_content("#camera-denied")
        assert "Schloss-Symbol" in text and "Website-Einstellungen" in text
        assert await page.get_attribute("#check-camera", "data-state") == "bad"
        assert await page.is_disabled("#join")
        await shots(page, "phone-camera-denied")

        # the user allows it and tries again: the check passes
        await page.context.grant_permissions(["camera", "microphone"])
        await page.click("#camera-retry")
        await page.wait_for_selector("#join:not([disabled])")
        assert await page.is_hidden("#camera-denied")
        assert await page.get_attribute("#check-camera", "data-state") == "ok"
    finally:
        await browser.close()
        await pw.stop()


async def test_browser_wrong_tan_is_refused(
    chromium: Any, server: Server, shots: Shots
) -> None:
    page = await phone_page(chromium)
    await page.goto(f"{server.base}/phone/")

    await page.fill("#tan", "ABCDE-FGHJK")
    await page.click("#tan-submit")
    await page.wait_for_selector("#tan-error", state="visible")
    assert "kennen wir nicht" in await page.text_content("#tan-error")
    assert await page.get_attribute("#tan", "aria-invalid") == "true"
    assert await page.is_visible("#step-tan")  # the camera is not asked for
    await shots(page, "phone-wrong-tan")

    await page.fill("#tan", "12")
    await page.click("#tan-submit")
    await page.wait_for_function(
        "document.getElementById('tan-error').textContent.includes('10 Buchstaben')"
    )

    # English on request; touch targets stay large
    await page.click("[data-lang-switch]")
    assert await page.text_content("label[for=tan]") == "Transaction number"
    assert await page.get_attribute("html", "lang") == "en"
    height = await page.eval_on_selector(
        "#tan-submit", "b => b.getBoundingClientRect().height"
    )
    assert height >= 48
    await page.fill("#tan", "ABCDE-FGHJK")
    await page.click("#tan-submit")
    await page.wait_for_function(
        "document.getElementById('tan-error').textContent.includes('do not know')"
    )
    await shots(page, "phone-wrong-tan-english")


async def test_browser_outside_service_hours(
    chromium: Any, server: Server, clock: PinnedClock, shots: Shots
) -> None:
    clock.advance(hours=13)  # 23:00 in Berlin
    page = await phone_page(chromium)
    await page.goto(f"{server.base}/phone/")
    await page.wait_for_selector("#step-closed", state="visible")
    text = await page.text_content("#closed-text")
    assert "03.12.2026 06:00" in text
    assert await page.is_hidden("#step-tan")
    await shots(page, "phone-closed")


async def test_browser_agent_hangs_up_phone_waits_again(
    chromium: Any, server: Server, shots: Shots
) -> None:
    phone, agent = await call_running(chromium, server)

    await agent.keyboard.press("h")  # the confirm dialog is accepted
    await phone.wait_for_selector("#step-wait", state="visible")
    await phone.wait_for_selector("#wait-notice", state="visible")
    assert "wieder in der Warteschlange" in await phone.text_content("#wait-notice")
    await agent.wait_for_selector("#queue-view", state="visible")
    await agent.wait_for_selector("#queue-list tr")
    await shots(phone, "phone-agent-left")
    await shots(agent, "agent-after-hangup")

    # the next agent action takes the same case again and the video comes back
    await agent.click("#take-next")
    await phone.wait_for_selector("#step-call", state="visible")
    await wait_frames(agent, 10)


async def test_browser_phone_reload_during_call_rejoins(
    chromium: Any, server: Server, shots: Shots
) -> None:
    phone, agent = await call_running(chromium, server)
    case_id = await agent.eval_on_selector("#case-data dd", "d => d.textContent")

    await phone.reload()
    await agent.wait_for_selector("#phone-state[data-key='phone.rejoined']")
    await shots(agent, "agent-phone-rejoined")

    # the page comes back into the call by itself and the video flows again
    await phone.wait_for_selector("#step-call", state="visible")
    await agent.wait_for_selector("#phone-state[data-key='phone.connected']")
    before = await agent.eval_on_selector(
        "#video", "v => v.getVideoPlaybackQuality().totalVideoFrames"
    )
    await wait_frames(agent, before + 10)
    await shots(phone, "phone-after-reload")
    case = await server.svc.store.get(case_id)
    assert case.state == State.IN_CALL
