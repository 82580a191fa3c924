import pytest

from signaling.cases import TRANSITIONS, State
from signaling.errors import ApiError
from tests.conftest import Server


async def _new_case(server: Server) -> str:
    case, _ = await server.svc.store.create(
        (await _partner(server)),
        {"given_names": "ERIKA", "surname": "MUSTERMANN", "birth_date": "1983-08-12"},
        "erika@example.org",
        None,
        "ref",
        "de",
    )
    return case.id


async def _partner(server: Server) -> str:
    partner = await server.svc.accounts.partner_by_key(server.api_key)
    assert partner is not None
    return partner


async def test_transition_illegal_is_refused_with_clear_error(server: Server) -> None:
    case_id = await _new_case(server)
    with pytest.raises(ApiError) as info:
        await server.svc.store.transition(case_id, State.DECIDED, "test")
    assert info.value.status == 409
    assert info.value.message == (
        f"case {case_id} is 'created' and cannot become 'decided'"
    )
    assert (await server.svc.store.get(case_id)).state == State.CREATED


async def test_transition_path_is_logged_with_timestamps(server: Server) -> None:
    case_id = await _new_case(server)
    store = server.svc.store
    await store.transition(case_id, State.ACTIVATED, "user")
    tan = await store.consent(case_id)
    assert (await store.by_tan(tan)).id == case_id
    events = await store.events(case_id)
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "created"),
        ("created", "activated"),
        ("activated", "consented"),
    ]
    assert all(e["at"].startswith("2026-12-02T09:00") for e in events)


async def test_tan_expires(server: Server, clock) -> None:
    case_id = await _new_case(server)
    store = server.svc.store
    await store.transition(case_id, State.ACTIVATED, "user")
    tan = await store.consent(case_id)
    clock.advance(hours=25)
    with pytest.raises(ApiError) as info:
        await store.by_tan(tan)
    assert info.value.code == "tan_expired"
    assert (await store.get(case_id)).state == State.EXPIRED


async def test_personal_data_is_encrypted_in_the_database(server: Server) -> None:
    case_id = await _new_case(server)
    db_file = server.svc.settings.data_dir / "identdesk.sqlite3"
    raw = db_file.read_bytes() + (
        db_file.with_suffix(".sqlite3-wal").read_bytes()
        if db_file.with_suffix(".sqlite3-wal").exists()
        else b""
    )
    assert b"MUSTERMANN" not in raw
    assert b"erika@example.org" not in raw
    assert (await server.svc.store.identity(case_id))["surname"] == "MUSTERMANN"


def test_transitions_final_states_have_no_exit() -> None:
    assert TRANSITIONS[State.EXPIRED] == set()
    assert TRANSITIONS[State.WITHDRAWN] == set()
    assert all(
        State.WITHDRAWN in TRANSITIONS[s]
        for s in State
        if s not in (State.EXPIRED, State.WITHDRAWN)
    )
