"""The agent console and the server's document check, in real Chromium against a
real server on loopback: an approval refused for an expired reading, then given
with an override reason and a note, recorded in the case log.

The fake camera films a card without an MRZ, so its snapshots' analyses read none;
the expired reading is stored as tests/test_desk.py stores one (the real parser's
result on the specimen's MRZ, read on a day after its expiry). For the override
offered before any refusal, the console is handed an analysis message carrying
such a reading (a visa's MRZ), as the server would send it.
"""

# ruff: noqa: F811 (pytest fixtures are imported and then named as parameters)

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from media.mrz import parse_mrz
from media.mrz_reader import MrzReading
from media.specimen import specimen_mrz
from signaling.cases import State
from tests.browser_support import (  # noqa: F401 (fixtures)
    call_running,
    camera_file,
    chromium,
    ready_to_approve,
)
from tests.conftest import PinnedClock, Server
from tests.test_desk import _store_reading

pytestmark = pytest.mark.browser

REFUSED = {
    "de": "Freigabe abgelehnt: Laut der letzten Dokumentprüfung ist das Dokument "
    "abgelaufen; nur ein gültiger Ausweis oder Pass wird angenommen. Ablehnen "
    "(Dokument abgelaufen) oder mit einem Grund für die Abweichung und einer Notiz "
    "freigeben, wenn die MRZ falsch gelesen oder die Gültigkeit verlängert wurde.",
    "en": "Approval refused: the latest document check reads the document as "
    "expired; only a valid ID card or passport is accepted. Reject (Document "
    "expired), or approve with an override reason and a note if the MRZ was "
    "misread or the validity was extended.",
}
NOTE_NEEDED = {
    "de": "Eine Abweichung braucht eine Notiz, die sie erklärt.",
    "en": "An override needs a note that explains it.",
}
NOTE = "validity extended by an official entry on the back"


async def _text(page: Any, selector: str) -> str:
    return str(await page.text_content(selector))


async def _focused(page: Any) -> str:
    return str(await page.evaluate("document.activeElement.value"))


# the console's socket is open before a test can listen: note what it sends
RECORD_SENT = """() => {
  const ws = desk.ws, send = ws.send.bind(ws);
  window.sentDecisions = [];
  ws.send = (data) => {
    const message = JSON.parse(data);
    if (message.type === "decide") window.sentDecisions.push(message);
    send(data);
  };
}"""


async def _sent(page: Any) -> list[dict[str, Any]]:
    return list(await page.evaluate("window.sentDecisions"))


async def test_console_override_approves_an_expired_reading_with_a_note(
    chromium: Any, server: Server, clock: PinnedClock
) -> None:
    phone, agent = await call_running(chromium, server)
    case_id = await agent.evaluate("desk.caseInfo.id")
    await ready_to_approve(phone, agent, server)
    # the specimen expires on 2034-10-31
    clock.advance(seconds=5)
    await _store_reading(server, case_id, specimen_mrz("id1"), date(2035, 1, 1))

    # nothing shown in the console speaks against the document: no override offered
    await agent.keyboard.press("d")
    await agent.wait_for_selector("#decision-dialog", state="visible")
    assert await agent.is_hidden("#override-box")
    assert await agent.is_checked("#decision-form input[value=approve]")
    await agent.keyboard.press("Enter")

    # refused: the banner and the reopened dialog say why, on the override choice
    await agent.wait_for_selector("#override-box", state="visible", timeout=30_000)
    assert await _text(agent, "#desk-error") == REFUSED["de"]
    assert await _text(agent, "#override-why") == REFUSED["de"]
    assert await _focused(agent) == ""  # "none" is chosen and has the focus
    assert await agent.is_enabled("#decide-submit")

    # the arrow keys pick the reason; now the note is required
    await agent.keyboard.press("ArrowDown")
    await agent.keyboard.press("ArrowDown")
    assert await _focused(agent) == "validity_extended"
    assert await agent.is_disabled("#decide-submit")
    assert await _text(agent, "#decision-warning") == NOTE_NEEDED["de"]
    assert await agent.get_attribute("#note-label", "data-i18n") == (
        "decide.note_required"
    )

    # what the console shows follows a language switch, the refusal included
    await agent.evaluate("I18N.set('en')")
    assert await _text(agent, "#desk-error") == REFUSED["en"]
    assert await _text(agent, "#override-why") == REFUSED["en"]
    assert await _text(agent, "#decision-warning") == NOTE_NEEDED["en"]
    assert await _text(agent, "#note-label") == (
        "Note (required: why the check's reading is wrong)"
    )

    # Tab to the note, type it, Tab past "cancel" to the submit button
    await agent.evaluate(RECORD_SENT)
    await agent.keyboard.press("Tab")
    await agent.keyboard.type(NOTE)
    assert await agent.is_enabled("#decide-submit")
    assert await agent.is_hidden("#decision-warning")
    await agent.keyboard.press("Tab")
    await agent.keyboard.press("Tab")
    await agent.keyboard.press("Enter")
    await agent.wait_for_selector("#last-result", state="visible", timeout=30_000)
    await phone.wait_for_selector("#step-done", state="visible")
    assert await agent.is_hidden("#desk-error")

    # the override is in the case log, before the decision
    events = await server.svc.store.events(case_id)
    overrides = [e for e in events if e["action"] == "override"]
    assert [e["detail"] for e in overrides] == [
        "approve despite document_expired: validity_extended "
        "(explained in the sealed note)"
    ]
    actions = [e["action"] for e in events]
    assert actions.index("override") < actions.index("checklist")
    case = await server.svc.store.get(case_id)
    assert (case.state, case.decision, case.reason_code) == (
        State.DECIDED,
        "approve",
        "ok",
    )
    # one decision went out after the refusal, with the reason and the note
    assert [(m.get("override"), m["note"]) for m in await _sent(agent)] == [
        ("validity_extended", NOTE)
    ]


def _analysis(lines: list[str], today: date) -> dict[str, Any]:
    """A snapshot analysis message, its MRZ the real parser's reading of `lines`."""
    reading = MrzReading(True, lines, result=parse_mrz(lines, today=today))
    return {
        "type": "analysis",
        "snapshot": "s",
        "kind": "back",
        "images": {},
        "quality": {"found": False},
        "mrz": reading.to_dict(),
    }


async def test_console_override_offered_when_the_shown_analysis_speaks_against(
    chromium: Any, server: Server
) -> None:
    phone, agent = await call_running(chromium, server)
    await agent.evaluate(RECORD_SENT)
    visa = specimen_mrz("td3")
    visa[0] = "V" + visa[0][1:]
    message = _analysis(visa, date(2026, 12, 2))
    assert message["mrz"]["valid"] and not message["mrz"]["accepted"]

    # offered up front, before any refusal, once the analysis arrives (also into
    # an open dialog), and only for an approval
    await agent.keyboard.press("d")
    await agent.wait_for_selector("#decision-dialog", state="visible")
    assert await agent.is_hidden("#override-box")
    await agent.evaluate("m => onMessage(m)", message)
    await agent.wait_for_selector("#override-box", state="visible")
    assert await _text(agent, "#override-why") == (
        "Laut der letzten Dokumentprüfung ist die Dokumentart nicht zugelassen: "
        "freigeben nur mit einem Grund für die Abweichung und einer Notiz."
    )
    await agent.check("#decision-form input[value=reject]")
    assert await agent.is_hidden("#override-box")
    await agent.check("#decision-form input[value=approve]")
    await agent.check("#decision-form input[value=mrz_misread]")
    assert await _text(agent, "#decision-warning") == (
        "Für eine Freigabe fehlen Aufnahmen: Vorderseite, Rückseite, Gesicht. "
        "Noch nicht bestätigt: Lichtbild passt zur Person, Hologramm wechselt bei "
        "Licht und Kippen, MRZ und Prüfziffern stimmen, Dokument gültig, "
        "Ausweisnummer vorgelesen, Daten stimmen mit dem Fall überein, Code im "
        "Gespräch bestätigt. " + NOTE_NEEDED["de"]
    )
    # Escape closes the dialog as the console's other dialogs; nothing was sent
    await agent.keyboard.press("Escape")
    await agent.wait_for_selector("#decision-dialog", state="hidden")
    assert await _sent(agent) == []
    assert await phone.is_visible("#step-call")
