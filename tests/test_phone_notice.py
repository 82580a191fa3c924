"""The phone page's notice follows a language switch, in real Chromium against a
real server on loopback."""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import (  # noqa: F401 (fixtures)
    camera_file,
    chromium,
    consented_tan,
    phone_in_queue,
    phone_page,
)
from tests.conftest import Server

pytestmark = pytest.mark.browser

REPLACED = {
    "de": "Diese Identifizierung wurde auf einem anderen Gerät oder Tab fortgesetzt.",
    "en": "This identification was continued on another device or tab.",
}


async def _notice(page: Any) -> tuple[str, str]:
    """The notice shown (empty when hidden) and the page's language."""
    text, lang = await page.evaluate(
        "(() => { const n = document.getElementById('notice');"
        " return [n.hidden ? '' : n.textContent, document.documentElement.lang]; })()"
    )
    return text, lang


async def test_phone_notice_shown_before_a_switch_is_in_the_new_language(
    chromium: Any, server: Server
) -> None:
    _, tan = await consented_tan(server)
    first, second = await phone_page(chromium), await phone_page(chromium)
    await phone_in_queue(first, server, tan)

    # the same transaction number on another device: the first phone is told
    await phone_in_queue(second, server, tan)
    await first.wait_for_selector("#notice", state="visible")
    assert await _notice(first) == (REPLACED["de"], "de")

    await first.click("[data-lang-switch]")
    await first.wait_for_function("document.documentElement.lang === 'en'")
    assert await _notice(first) == (REPLACED["en"], "en")
    await first.click("[data-lang-switch]")
    await first.wait_for_function("document.documentElement.lang === 'de'")
    assert await _notice(first) == (REPLACED["de"], "de")
