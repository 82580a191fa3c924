"""The document tools in the agent console, in real Chromium.

The phone is the Python client playing a rendered specimen card that follows its
torch; the agent uses the console page.
"""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

from typing import Any

import pytest
from aiortc import AudioStreamTrack

from identdesk.clients import PhoneClient
from media import render
from tests.browser_support import (  # noqa: F401 (fixtures)
    Shots,
    agent_login,
    camera_file,
    chromium,
    consented_tan,
    desk_page,
    phone_page,
    shots,
    wait_frames,
)
from tests.conftest import Server
from tests.test_analysis import HEIGHT, WIDTH, DocumentTrack

pytestmark = pytest.mark.browser


async def _phone(server: Server) -> PhoneClient:
    _, tan = await consented_tan(server)
    scene = render.SceneRenderer(
        render.draw_document("id1", seed=0),
        width=WIDTH,
        height=HEIGHT,
        seed=3,
        motion=0.0,
    )
    holder: list[PhoneClient] = []
    track = DocumentTrack(scene, lambda: holder[0].torch_on)
    phone = PhoneClient(
        server.http, server.base, tracks=lambda: [track, AudioStreamTrack()]
    )
    holder.append(phone)
    await phone.join(tan)
    return phone


async def test_browser_analysis_outline_snapshot_and_hologram(
    chromium: Any, server: Server, shots: Shots
) -> None:
    phone = await _phone(server)
    try:
        agent = await desk_page(chromium)
        await agent_login(agent, server)
        await agent.keyboard.press("n")
        # the call's set-up: signaling, ICE and DTLS of both legs (slow when
        # the two cores are busy)
        await agent.wait_for_selector("#call-view:not([hidden])", timeout=40_000)
        await wait_frames(agent, 5)

        # the live outline is drawn in frame coordinates and follows the zoom
        await agent.wait_for_function(
            "document.querySelector('#outline-poly').getAttribute('points')"
            ".split(' ').length === 4",
            timeout=20_000,
        )
        box = await agent.eval_on_selector("#outline", "s => s.getAttribute('viewBox')")
        assert box == f"0 0 {WIDTH} {HEIGHT}"
        assert await agent.is_visible("#live-hints")
        await agent.keyboard.press("+")
        transforms = await agent.evaluate(
            "[document.querySelector('#video').style.transform,"
            " document.querySelector('#outline').style.transform]"
        )
        assert transforms[0] == transforms[1] and "scale(1.25)" in transforms[0]
        await shots(agent, "outline-zoomed")
        await agent.keyboard.press("0")

        # a capture shows its analysis: valid MRZ, identity matches, rectified image
        await agent.keyboard.press("f")
        card = "#analyses section.analysis"
        # valid, or held back as uncertain after the video codec (never "bad")
        await agent.wait_for_selector(
            f"{card} .badge-small.ok, {card} .badge-small.unsure", timeout=40_000
        )
        statuses = await agent.eval_on_selector_all(
            f"{card} .identity-table tr", "rows => rows.map(r => r.dataset.status)"
        )
        assert statuses == ["match", "match", "match"]
        await agent.wait_for_function(
            f"document.querySelector('{card} img.rectified').naturalWidth === 1011"
        )
        marks = await agent.eval_on_selector_all(
            f"{card} .mrz-table .mark", "m => m.map(x => x.textContent)"
        )
        assert marks and set(marks) == {"✓"}
        await agent.eval_on_selector("#analyses", "e => e.scrollIntoView()")
        await shots(agent, "snapshot-analysis")

        # one key starts the torch challenge; the verdict and overlay appear
        await agent.keyboard.press("l")
        await agent.wait_for_selector("#hologram .running")
        assert await agent.is_disabled("#hologram-start")
        verdict = await agent.wait_for_selector(
            "#hologram [data-verdict]", timeout=60_000
        )
        assert await verdict.get_attribute("data-verdict") == "genuine", (
            await agent.text_content("#hologram")
        )
        await agent.wait_for_function(
            "document.querySelector('#hologram img.rectified').naturalWidth > 100"
        )
        assert not await agent.is_disabled("#hologram-start")
        assert phone.torch_log and phone.torch_log[-1] is False

        # the panel switches language with the rest of the console
        await agent.click("[data-lang-switch]")
        assert "genuine" in await agent.text_content("#hologram [data-verdict]")
        await agent.eval_on_selector("#hologram", "e => e.scrollIntoView()")
        await shots(agent, "hologram-result")
    finally:
        await phone.close()


async def test_browser_analysis_phone_shows_hints_in_its_language(
    chromium: Any, server: Server, shots: Shots
) -> None:
    page = await phone_page(chromium)
    await page.goto(f"{server.base}/phone/")
    await page.wait_for_selector("#step-tan:not([hidden])")
    message = {
        "type": "hints",
        "hints": ["move_closer", "glare"],
        "texts": {
            "de": ["näher herangehen", "Ausweis kippen"],
            "en": ["move closer", "tilt to remove the reflection"],
        },
    }
    await page.evaluate("m => { show('step-call'); onMessage(m); }", message)
    assert await page.text_content("#doc-hints .main") == "näher herangehen"
    assert await page.text_content("#doc-hints .more") == "Ausweis kippen"
    await shots(page, "phone-hints")
    await page.evaluate("I18N.set('en')")
    assert await page.text_content("#doc-hints .main") == "move closer"
    await page.evaluate(
        "m => onMessage(m)", {"type": "hints", "hints": [], "texts": {}}
    )
    assert await page.is_hidden("#doc-hints")
