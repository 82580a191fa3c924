"""Signaling messages: every WebSocket frame is parsed into one of these models.

A frame that does not parse gets an `error` message quoting what was wrong; the
connection stays open and nothing else is affected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signaling.call_tan import DIGITS as CALL_TAN_DIGITS
from signaling.call_tan import normalize as normalize_call_tan
from signaling.cases import APPROVAL_CHECKS, DECISIONS, REASON_CODES, SNAPSHOT_KINDS
from signaling.errors import ApiError

MAX_SDP = 64 * 1024
MAX_NOTE = 2000
INSTRUCTIONS = (
    "show_front",
    "show_back",
    "show_face",
    "tilt_card",
    "hold_still",
    "move_closer",
    "more_light",
    "read_document_number",
    "enter_tan",
    "custom",
)


@dataclass(frozen=True)
class Join:
    tan: str


@dataclass(frozen=True)
class CallTanEntry:
    """The code from the in-call mail, as the user typed it (digits only)."""

    tan: str


@dataclass(frozen=True)
class Offer:
    sdp: str


@dataclass(frozen=True)
class TorchState:
    on: bool
    available: bool
    detail: str = ""


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class TakeNext:
    pass


@dataclass(frozen=True)
class Capture:
    kind: str


@dataclass(frozen=True)
class Torch:
    on: bool


@dataclass(frozen=True)
class TorchChallenge:
    """Start the server-chosen torch pattern and the hologram check."""


@dataclass(frozen=True)
class Instruction:
    key: str
    text: str = ""


@dataclass(frozen=True)
class Decide:
    decision: str
    reason: str
    note: str = ""
    checks: tuple[str, ...] = ()  # the checklist items the agent confirmed


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class SendCallTan:
    """E-mail the user a fresh one-time code to enter during the call."""


def _bad(message: str, code: str = "bad_message") -> ApiError:
    return ApiError(400, code, message)


def _load(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"message is not valid JSON: {exc}", "malformed_json") from exc
    except RecursionError:
        raise _bad("message is nested too deeply", "malformed_json") from None
    if not isinstance(data, dict):
        raise _bad(f"message must be a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("type"), str):
        raise _bad('message needs a string field "type"')
    return data


def _field(data: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    if name not in data:
        if required:
            raise _bad(f"{data['type']!r} message needs the field {name!r}")
        return None
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(
            f"field {name!r} of {data['type']!r} must be {kind.__name__}, "
            f"got {json.dumps(value)[:40]}"
        )
    return value


def _offer(data: dict[str, Any]) -> Offer:
    sdp = _field(data, "sdp", str)
    if len(sdp) > MAX_SDP:
        raise _bad(f"SDP of {len(sdp)} characters is too long", "bad_sdp")
    if not sdp.startswith("v=0"):
        raise _bad(f"SDP must start with 'v=0', got {sdp[:20]!r}", "bad_sdp")
    # one audio and one video section, as every call leg carries both directions
    kinds = sorted(
        line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")
    )
    if kinds != ["audio", "video"]:
        raise _bad(
            f"the offer must have one audio and one video section, got {kinds}",
            "bad_sdp",
        )
    return Offer(sdp)


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = _field(data, name, str)
    if value not in allowed:
        raise _bad(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


def _call_tan(data: dict[str, Any]) -> CallTanEntry:
    text = _field(data, "tan", str)[:64]
    code = normalize_call_tan(text)
    if code is None:
        # a typing mistake, not a guess: it does not count against the code; the
        # entry is not quoted back, it is close to a secret
        raise _bad(
            f"the code from the e-mail is {CALL_TAN_DIGITS} digits, got "
            f"{len(text)} characters"
            + (
                " with other signs than digits"
                if any(not (c.isdigit() or c in " -\t") for c in text)
                else ""
            ),
            "call_tan_malformed",
        )
    return CallTanEntry(code)


PhoneMessage = Join | Offer | TorchState | CallTanEntry | Ping


def parse_phone(raw: str | bytes) -> PhoneMessage:
    data = _load(raw)
    kind = data["type"]
    if kind == "join":
        return Join(_field(data, "tan", str)[:64])
    if kind == "offer":
        return _offer(data)
    if kind == "torch_state":
        return TorchState(
            on=_field(data, "on", bool),
            available=_field(data, "available", bool),
            detail=(_field(data, "detail", str, required=False) or "")[:200],
        )
    if kind == "call_tan":
        return _call_tan(data)
    if kind == "ping":
        return Ping()
    raise _bad(f"unknown message type {kind[:40]!r} from the phone", "unknown_type")


AgentMessage = (
    TakeNext
    | Offer
    | Capture
    | Torch
    | TorchChallenge
    | Instruction
    | Decide
    | Hangup
    | SendCallTan
    | Ping
)


def parse_agent(raw: str | bytes) -> AgentMessage:
    data = _load(raw)
    kind = data["type"]
    if kind == "take_next":
        return TakeNext()
    if kind == "offer":
        return _offer(data)
    if kind == "capture":
        return Capture(_choice(data, "kind", SNAPSHOT_KINDS))
    if kind == "torch":
        return Torch(_field(data, "on", bool))
    if kind == "torch_challenge":
        return TorchChallenge()
    if kind == "instruction":
        key = _choice(data, "key", INSTRUCTIONS)
        text = (_field(data, "text", str, required=key == "custom") or "")[:200]
        return Instruction(key, text)
    if kind == "decide":
        decision = _choice(data, "decision", DECISIONS)
        reason = _choice(data, "reason", REASON_CODES[decision])
        note = _field(data, "note", str, required=False) or ""
        if len(note) > MAX_NOTE:
            raise _bad(f"note of {len(note)} characters is longer than {MAX_NOTE}")
        checks = _field(data, "checks", list, required=False) or []
        unknown = [c for c in checks if c not in APPROVAL_CHECKS]
        if unknown:
            raise _bad(
                f"unknown checklist items {unknown!r}; known: {list(APPROVAL_CHECKS)}"
            )
        return Decide(decision, reason, note, tuple(dict.fromkeys(checks)))
    if kind == "hangup":
        return Hangup()
    if kind == "send_call_tan":
        return SendCallTan()
    if kind == "ping":
        return Ping()
    raise _bad(f"unknown message type {kind[:40]!r} from the agent", "unknown_type")
