"""Every page the service serves, in real Chromium: no JavaScript error in either
language, from the first load through the whole path to the finish page."""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

from typing import Any

import pytest

from identdesk.clients import create_case, latest_call_tan
from tests.browser_support import (  # noqa: F401 (fixtures)
    PageErrors,
    agent_login,
    camera_file,
    chromium,
    desk_page,
    errors_of,
    phone_page,
    wait_frames,
)
from tests.conftest import Server

pytestmark = pytest.mark.browser

# the console asks who is logged in before it shows the login form
LOGIN_CHECK = "401 GET /agent/api/me"
UNKNOWN_LINK = "404 GET /api/v1/activation/no-such-link"
WRONG_TAN = "AAAAA-AAAAA"
WRONG_TAN_CHECK = "404 POST /api/v1/tan/check"
OTHER = {"de": "en", "en": "de"}


async def _lang(page: Any) -> str:
    return await page.evaluate("document.documentElement.lang")


async def _switch(page: Any, by_hand: bool = False) -> None:
    """Click the language switch and wait until the page says it changed.

    The phone's call view hides the top bar and a modal dialog covers it: there
    `by_hand` (or a hidden switch) does what the switch does."""
    before = await _lang(page)
    if not by_hand and await page.is_visible("[data-lang-switch]"):
        await page.click("[data-lang-switch]")
    else:
        await page.evaluate("lang => I18N.set(lang)", OTHER[before])
    await page.wait_for_function(
        "lang => document.documentElement.lang === lang", arg=OTHER[before]
    )


async def _texts(page: Any, selectors: tuple[str, ...]) -> list[str]:
    return [await page.text_content(selector) for selector in selectors]


async def _both_languages(page: Any, *relabelled: str, by_hand: bool = False) -> None:
    """Show the current step in the other language, then switch back; the texts
    of the `relabelled` selectors change with it and come back."""
    before = await _texts(page, relabelled)
    await _switch(page, by_hand)
    other = await _texts(page, relabelled)
    assert all(a != b for a, b in zip(before, other, strict=True)), (before, other)
    await _switch(page, by_hand)
    assert await _texts(page, relabelled) == before


def _assert_clean(errors: PageErrors, *expected_failed: str) -> None:
    problems = errors.problems(expected_failed)
    assert not problems, "the page reported:\n" + "\n".join(problems)


async def _open(page: Any, url: str, ready: str) -> None:
    await page.goto(url)
    await page.wait_for_selector(ready, state="visible")


@pytest.mark.parametrize(
    ("path", "ready", "phone", "relabelled", "failed"),
    [
        ("/", "h1", True, "h1", ""),
        ("/terms", "h1", True, "", ""),
        ("/phone/", "#step-tan", True, "#tan-title", ""),
        ("/phone/", "#step-desktop", False, "#desktop-title", ""),
        ("/agent/", "#login-view", False, "#login-view h1", LOGIN_CHECK),
        ("/a/no-such-link", "#notice", True, "#notice", UNKNOWN_LINK),
    ],
)
async def test_pages_first_load_reports_no_errors(
    chromium: Any,
    server: Server,
    path: str,
    ready: str,
    phone: bool,
    relabelled: str,
    failed: str,
) -> None:
    page = await (phone_page(chromium) if phone else desk_page(chromium))
    errors = errors_of(page)
    await _open(page, f"{server.base}{path}", ready)
    if not relabelled:  # a page without a language switch
        assert not await page.query_selector("[data-lang-switch]")
        _assert_clean(errors)
        return
    assert await _lang(page) == "de"
    german = await page.text_content(relabelled)
    await _switch(page)
    english = await page.text_content(relabelled)
    assert english != german

    # the choice is kept: a reload starts in English
    await _open(page, f"{server.base}{path}", ready)
    assert (await _lang(page), await page.text_content(relabelled)) == ("en", english)
    await _switch(page)
    assert await page.text_content(relabelled) == german
    _assert_clean(errors, *[failed] * (2 if failed else 0))


# what Chromium does when the user blocks site data: every storage access throws
BLOCK_STORAGE = """
for (const name of ["localStorage", "sessionStorage"]) {
  Object.defineProperty(window, name, {get() {
    throw new DOMException("Access is denied for this document.", "SecurityError");
  }});
}
"""


async def test_pages_phone_with_site_data_blocked_reports_no_errors(
    chromium: Any, server: Server
) -> None:
    page = await desk_page(chromium)
    errors = errors_of(page)
    await page.add_init_script(BLOCK_STORAGE)
    await _open(page, f"{server.base}/phone/", "#step-desktop")
    await page.click("#desktop-continue")
    await page.wait_for_selector("#step-tan", state="visible")
    await _both_languages(page)
    blocked = "(() => { try { return !sessionStorage; } catch (e) { return true; } })()"
    assert await page.evaluate(blocked)
    _assert_clean(errors)


async def _consent(page: Any, server: Server) -> str:
    """The activation link, its consent and the transaction number it shows."""
    case = await create_case(server.http, server.base, server.api_key)
    await _open(page, case["activation_url"], "#step-consent")
    await _both_languages(page, "#step-consent h1")
    await page.click("#consent-submit")  # nothing ticked: the page says so
    await page.wait_for_selector("#consent-error", state="visible")
    for box in ("#c-terms", "#c-processing", "#c-recording"):
        await page.check(box)
    await page.click("#consent-submit")
    await page.wait_for_selector("#step-tan", state="visible")
    await _both_languages(page, "#tan-until")
    return str(case["activation_url"])


async def _submit(page: Any, field: str, value: str, button: str) -> None:
    await page.fill(field, value)
    await page.click(button)


async def _phone_waits(page: Any) -> str:
    """From the start page's link through the device check into the queue."""
    tan = (await page.text_content("#tan")).strip()
    await page.click("#phone-link")
    await page.wait_for_selector("#step-tan", state="visible")
    await _both_languages(page, "#tan-title")
    await _submit(page, "#tan", WRONG_TAN, "#tan-submit")
    await page.wait_for_selector("#tan-error", state="visible")
    await _both_languages(page, "#tan-error")
    await _submit(page, "#tan", tan, "#tan-submit")
    await page.wait_for_selector("#join:not([disabled])")
    await _both_languages(page, "#check-camera .detail", "#check-network .detail")
    await page.click("#join")
    await page.wait_for_selector("#step-wait", state="visible")
    await page.wait_for_function(
        "document.getElementById('queue-wait').textContent !== '–'"
    )
    await _both_languages(page, "#queue-wait")
    return tan


async def _call_tan(phone: Any, agent: Any, server: Server) -> None:
    """The in-call code: once wrong (its message relabelled), then right."""
    await agent.keyboard.press("c")
    await phone.wait_for_selector("#call-tan-form", state="visible")
    code = await latest_call_tan(lambda: server.mailbox.messages)
    await _submit(
        phone, "#call-tan", f"{(int(code) + 1) % 10**6:06d}", "#call-tan-submit"
    )
    await agent.wait_for_selector("#call-tan-state[data-state=wrong]")
    await phone.wait_for_selector("#call-tan-result.error", state="visible")
    await _both_languages(phone, "#call-tan-result")
    await _submit(phone, "#call-tan", code, "#call-tan-submit")
    await agent.wait_for_selector("#call-tan-state[data-state=confirmed]")


async def _agent_calls(phone: Any, agent: Any, server: Server) -> None:
    """Take the call, instruct, torch, in-call code, approve."""
    agent.on("dialog", lambda dialog: dialog.accept())
    await agent_login(agent, server)
    await agent.wait_for_selector("#queue-list tr")
    await _both_languages(agent, "#take-next")
    await agent.click("#take-next")
    await phone.wait_for_selector("#step-call", state="visible")
    await wait_frames(agent, 5)
    for key, kind in (("f", "front"), ("b", "back"), ("g", "face")):
        await agent.keyboard.press(key)
        await agent.wait_for_selector(f"#gallery button[data-kind={kind}] img")
    await agent.click("#instructions [data-instruction=show_back]")
    await phone.wait_for_function(
        "document.getElementById('instruction').textContent !== ''"
    )
    await agent.keyboard.press("t")
    await phone.wait_for_selector("#torch-hint", state="visible")
    await _both_languages(phone, "#instruction", "#torch-state", "#torch-hint")
    assert await phone.is_visible("#torch-hint")
    await _both_languages(agent, "#checklist")
    await _call_tan(phone, agent, server)

    for name in await agent.eval_on_selector_all(
        "#checklist input:not([disabled])", "bs => bs.map(b => b.name)"
    ):
        await agent.check(f"#checklist input[name={name}]")
    await agent.keyboard.press("d")
    await agent.wait_for_selector("#decision-dialog", state="visible")
    await agent.check("#decision-form input[value=approve]")
    await _both_languages(agent, "#decide-submit", by_hand=True)
    await agent.click("#decide-submit")
    await agent.wait_for_selector("#last-result", state="visible")
    await _both_languages(agent, "#last-result")


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_pages_whole_path_reports_no_errors(
    chromium: Any, server: Server, lang: str
) -> None:
    """Start page, phone page and console, each step shown in both languages."""
    phone, agent = await phone_page(chromium), await desk_page(chromium)
    phone_errors, agent_errors = errors_of(phone), errors_of(agent)
    if lang == "en":
        for page, path in ((phone, "/"), (agent, "/agent/")):
            await _open(page, f"{server.base}{path}", "[data-lang-switch]")
            await _switch(page)

    link = await _consent(phone, server)
    await _phone_waits(phone)
    await _agent_calls(phone, agent, server)

    # the finish page is written in the language shown, also after a switch
    await phone.wait_for_selector("#step-done", state="visible")
    title = await phone.text_content("#done-title")
    assert title == {"de": "Vielen Dank!", "en": "Thank you!"}[lang]
    await _both_languages(phone, "#done-title", "#done-text")
    assert await _lang(phone) == await _lang(agent) == lang

    # the activation link of a decided case says it is closed, in either language
    await _open(phone, link, "#step-closed-case")
    await _both_languages(phone, "#closed-text")

    _assert_clean(phone_errors, WRONG_TAN_CHECK)
    expected = [LOGIN_CHECK] * (2 if lang == "en" else 1)
    _assert_clean(agent_errors, *expected)
