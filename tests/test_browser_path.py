"""The whole path in real Chromium: phone (mobile emulation) and agent console."""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

import re
import time
from typing import Any

import cv2
import numpy as np
import pytest

from identdesk.clients import create_case, latest_call_tan
from signaling.cases import APPROVAL_CHECKS, REASON_CODES, State
from tests.browser_support import (  # noqa: F401 (fixtures)
    Shots,
    agent_login,
    camera_file,
    chromium,
    desk_page,
    phone_page,
    shots,
    wait_frames,
)
from tests.conftest import Server

pytestmark = pytest.mark.browser


async def _visible(page: Any, selector: str) -> None:
    await page.wait_for_selector(selector, state="visible")


async def _phone_to_tan(page: Any, server: Server, shots: Shots) -> tuple[str, str]:
    """Activation link, consent, transaction number; returns case id and TAN shown."""
    case = await create_case(server.http, server.base, server.api_key)
    await page.goto(case["activation_url"])
    await _visible(page, "#step-consent")
    await shots(page, "phone-consent")

    # all three consents are needed; the page says so before it asks the server
    await page.click("#consent-submit")
    await _visible(page, "#consent-error")
    for box in ("#c-terms", "#c-processing", "#c-recording"):
        await page.check(box)
    await page.click("#consent-submit")
    await _visible(page, "#step-tan")
    tan = (await page.text_content("#tan")).strip()
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", tan)
    await shots(page, "phone-tan-shown")
    mails = await server.mailbox.wait_for(2)
    assert tan in server.mailbox.body(len(mails) - 1)
    return case["id"], tan


async def _phone_join(page: Any, tan: str, shots: Shots) -> None:
    """Enter the TAN (typed sloppily), pass the device check, enter the queue."""
    await _visible(page, "#step-tan")
    await page.fill("#tan", tan.replace("-", "").lower())
    assert await page.input_value("#tan") == tan  # formatted while typing
    await shots(page, "phone-enter-tan")
    await page.click("#tan-submit")
    await _visible(page, "#step-check")
    await page.wait_for_selector("#join:not([disabled])")
    assert await page.get_attribute("#check-camera", "data-state") == "ok"
    assert await page.get_attribute("#check-network", "data-state") == "ok"
    # the fake camera has no torch: the check says so instead of pretending
    assert await page.get_attribute("#check-torch", "data-state") == "warn"
    await shots(page, "phone-device-check")
    await page.click("#join")
    await _visible(page, "#step-wait")
    await page.wait_for_function(
        "document.getElementById('queue-position').textContent === '1'"
    )
    await shots(page, "phone-waiting")


async def test_browser_whole_path_approved(
    chromium: Any, server: Server, shots: Shots
) -> None:
    phone = await phone_page(chromium)
    agent = await desk_page(chromium)
    agent.on("dialog", lambda dialog: dialog.accept())

    case_id, tan = await _phone_to_tan(phone, server, shots)
    await phone.click("#phone-link")
    await _phone_join(phone, tan, shots)

    # the agent logs in and sees the waiting case with its waiting time
    await agent_login(agent, server)
    await agent.wait_for_selector("#queue-list tr")
    assert re.fullmatch(
        r"\d+:\d\d", (await agent.text_content("#queue-list td:last-child"))
    )
    await shots(agent, "agent-queue")

    # take next (N); the phone's video plays in the console, frames decoded
    await agent.keyboard.press("n")
    await agent.wait_for_selector("#call-view", state="visible", timeout=40_000)
    await _visible(phone, "#step-call")
    first = await wait_frames(agent, 15)
    await wait_frames(agent, first + 10)
    assert await agent.eval_on_selector("#video", "v => v.videoWidth") == 640
    await agent.wait_for_function(
        "document.getElementById('stat-resolution').textContent === '640×480'"
    )
    await agent.wait_for_function(
        "/kbit|Mbit/.test(document.getElementById('stat-bitrate').textContent)"
    )
    assert (await agent.text_content("#case-data")).count("MUSTERMANN") == 1
    await shots(agent, "agent-call")
    await shots(phone, "phone-call")

    # one-key capture of front, back and face; full-resolution stills in the gallery
    for key, kind in (("f", "front"), ("b", "back"), ("g", "face")):
        await agent.keyboard.press(key)
        await agent.wait_for_selector(f"#gallery button[data-kind={kind}] img")
    await agent.wait_for_function(
        "[...document.querySelectorAll('#gallery img')]"
        ".every(i => i.naturalWidth === 640)"
    )
    await agent.click("#gallery button[data-kind=front]")
    await _visible(agent, "#viewer")
    await agent.wait_for_function(
        "document.getElementById('viewer-img').naturalHeight === 480"
    )
    await shots(agent, "agent-snapshot-viewer")
    await agent.keyboard.press("Escape")

    # the torch request reaches the phone, which has none: both sides are told
    await agent.keyboard.press("t")
    await agent.wait_for_selector("#torch-state[data-state=none]")
    await _visible(phone, "#torch-hint")
    assert "Lampe" in await phone.text_content("#torch-hint")
    assert "nicht steuerbar" in await phone.text_content("#torch-state")

    # an instruction appears on the phone in large type
    await agent.click("#instructions [data-instruction=show_back]")
    await phone.wait_for_function(
        "document.getElementById('instruction').textContent.includes('Rückseite')"
    )
    size = await phone.eval_on_selector(
        "#instruction", "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert size >= 24
    await shots(phone, "phone-instruction")

    # digital zoom with the keyboard
    await agent.keyboard.press("+")
    assert "scale(1.25)" in await agent.eval_on_selector(
        "#video", "v => v.style.transform"
    )
    await shots(agent, "agent-zoomed")

    # an approval needs every checklist item confirmed, as the server demands
    boxes = await agent.eval_on_selector_all(
        "#checklist input", "bs => bs.map(b => b.name)"
    )
    assert tuple(boxes) == APPROVAL_CHECKS
    for name in boxes:
        if name != "tan":
            await agent.check(f"#checklist input[name={name}]")
    await _call_tan(phone, agent, server, shots)

    # the decision dialog offers exactly the server's reason codes
    await agent.keyboard.press("d")
    await _visible(agent, "#decision-dialog")
    for decision, codes in REASON_CODES.items():
        await agent.check(f"#decision-form input[value={decision}]")
        options = await agent.eval_on_selector_all(
            "#reason option", "os => os.map(o => o.value)"
        )
        assert tuple(options) == codes
    await agent.check("#decision-form input[value=approve]")
    await agent.fill("#note", "specimen card, all checks fine")
    await shots(agent, "agent-decision")
    await agent.click("#decide-submit")

    # the phone shows the finish page; the agent is back at the queue
    await _visible(phone, "#step-done")
    assert await phone.text_content("#done-title") == "Vielen Dank!"
    await _visible(agent, "#last-result")
    await shots(phone, "phone-done")
    await shots(agent, "agent-decided")
    assert "Freigeben" in await agent.text_content("#last-result")
    case = await server.svc.store.get(case_id)
    assert (case.state, case.decision, case.reason_code) == (
        State.DECIDED,
        "approve",
        "ok",
    )


async def _call_tan(phone: Any, agent: Any, server: Server, shots: Shots) -> None:
    """The code sent in the call (C): entered on the phone over the running video,
    once wrong, then right; the console ticks the checklist's "tan" item itself."""
    tan_box = "#checklist input[name=tan]"
    assert await agent.is_disabled(tan_box)
    assert not await agent.is_checked(tan_box)
    assert "Code im Gespräch bestätigt" in await agent.text_content("#checklist")
    await agent.keyboard.press("c")
    await agent.wait_for_selector("#call-tan-state[data-state=sent]")
    await _visible(phone, "#call-tan-form")
    assert (
        await phone.text_content("#call-tan-title")
        == "Bitte geben Sie den Code aus der E-Mail ein"
    )
    code = await latest_call_tan(lambda: server.mailbox.messages)
    await shots(phone, "phone-call-tan")

    wrong = f"{(int(code) + 1) % 10**6:06d}"
    await phone.fill("#call-tan", f"{wrong[:3]}x{wrong[3:]}")
    assert await phone.input_value("#call-tan") == wrong  # digits only
    await phone.click("#call-tan-submit")
    await phone.wait_for_function(
        "document.getElementById('call-tan-result').textContent.includes('noch 2')"
    )
    await agent.wait_for_selector("#call-tan-state[data-state=wrong]")

    await phone.fill("#call-tan", code)
    await phone.click("#call-tan-submit")
    await phone.wait_for_function(
        "document.getElementById('call-tan-result').textContent"
        " === 'Code bestätigt. Vielen Dank!'"
    )
    await agent.wait_for_selector("#call-tan-state[data-state=confirmed]")
    await agent.wait_for_selector(f"{tan_box}:checked")
    # the video kept running through it
    await wait_frames(agent, await wait_frames(agent, 0) + 5)
    await shots(agent, "agent-call-tan-confirmed")


async def test_browser_desktop_visitor_sees_qr_code(
    chromium: Any, server: Server, shots: Shots
) -> None:
    page = await desk_page(chromium)
    await page.goto(f"{server.base}/phone/")
    await _visible(page, "#step-desktop")
    await page.wait_for_function("document.getElementById('qr').naturalWidth > 0")
    path = await shots(page, "desktop-qr")

    # the code on the screen opens the phone page of this server; decode the
    # element's own pixels, enlarged, until the deadline (rendering may settle)
    assert path.exists()
    deadline = time.monotonic() + 10
    text = ""
    while not text and time.monotonic() < deadline:
        png = await page.locator("#qr").screenshot()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        image = cv2.copyMakeBorder(
            image, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255
        )
        image = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert text == f"{server.base}/phone/"

    await page.click("#desktop-continue")
    await _visible(page, "#step-tan")


async def test_browser_agent_login_english_logout(
    chromium: Any, server: Server, shots: Shots
) -> None:
    page = await desk_page(chromium)
    await page.goto(f"{server.base}/agent/")
    await page.fill("#login-name", server.agent_name)
    await page.fill("#login-password", "not the password")
    await page.click("#login-submit")
    await _visible(page, "#login-error")
    assert await page.text_content("#login-error") == "Name oder Passwort falsch."
    await shots(page, "agent-login-failed")

    await agent_login(page, server)
    await page.click("[data-lang-switch]")
    assert "Take next case" in await page.text_content("#take-next")
    assert await page.text_content("#queue-empty") == "Nobody is waiting."
    await page.keyboard.press("?")
    await _visible(page, "#help")
    assert "Toggle torch" in await page.text_content("#help-keys")
    await shots(page, "agent-english-help")
    await page.keyboard.press("Escape")

    # logout ends the session: the API refuses the old cookie
    await page.click("#logout")
    await _visible(page, "#login-view")
    status = await page.evaluate("fetch('/agent/api/me').then(r => r.status)")
    assert status == 401
