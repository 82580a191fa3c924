"""Machine readable zone (MRZ) parsing and checking per ICAO Doc 9303.

Pure functions on strings: `parse_mrz(lines)` detects the format (TD1, TD2, TD3,
MRV-A, MRV-B), verifies every check digit, corrects look-alike characters only
where the field's character set and the check digits confirm it, and says whether
the document is expired and whether its type is accepted (only ID cards and
passports are; an expired one is still of an accepted type, said apart).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

FILLER = "<"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"

# Characters an OCR confuses between digits and letters in OCR-B.
TO_DIGIT = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1",
    "Z": "2", "S": "5", "G": "6", "B": "8", "A": "4",
}  # fmt: skip
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B", "4": "A"}

# Document kinds accepted for identification (MISSION.md): passports and ID cards.
ACCEPTED_KINDS = {"P": "passport", "I": "ID card", "A": "ID card", "C": "ID card"}

LINE_LAYOUTS = {(3, 30): "TD1", (2, 36): "TD2", (2, 44): "TD3"}

# Character classes of a field: digits, alpha (letters), alnum (both), check.
DIGITS = set("0123456789<")
ALPHA = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ<")
ALNUM = DIGITS | ALPHA


def char_value(char: str) -> int:
    """The value of one MRZ character in a check digit sum."""
    if char.isdigit():
        return int(char)
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == FILLER:
        return 0
    raise ValueError(f"not an MRZ character: {char!r}")


def check_digit(text: str) -> str:
    """The check digit of `text` (weights 7, 3, 1 repeated; Doc 9303 Part 3)."""
    weights = (7, 3, 1)
    return str(sum(char_value(c) * weights[i % 3] for i, c in enumerate(text)) % 10)


def digit_ok(text: str, digit: str, *, may_be_empty: bool = False) -> bool:
    """True when `digit` is the check digit of `text`.

    An optional-data field that is all fillers may carry `<` as its check digit.
    """
    if may_be_empty and digit == FILLER and set(text) <= {FILLER}:
        return True
    try:
        return digit.isdigit() and check_digit(text) == digit
    except ValueError:
        return False


@dataclass
class MrzResult:
    """The outcome of parsing one MRZ."""

    format: str
    lines: list[str]
    valid: bool
    fields: dict[str, str] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    expired: bool | None = None
    accepted: bool = False
    reason: str = ""
    corrections: list[tuple[int, int, str, str]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.fields.get("document_type", "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "lines": list(self.lines),
            "valid": self.valid,
            "type": self.type,
            "fields": dict(self.fields),
            "checks": dict(self.checks),
            "expired": self.expired,
            "accepted": self.accepted,
            "reason": self.reason,
            "corrections": len(self.corrections),
        }


# A field is (line, start, end, kind); a check is (name, [fields], digit field).
@dataclass(frozen=True)
class _Span:
    line: int
    start: int
    end: int
    kind: str  # "alpha", "digits", "alnum", "check", "sex"


def _layout(fmt: str) -> dict[str, _Span]:
    if fmt == "TD1":
        return {
            "document_type": _Span(0, 0, 2, "alpha"),
            "issuing_state": _Span(0, 2, 5, "alpha"),
            "document_number": _Span(0, 5, 14, "alnum"),
            "document_number_check": _Span(0, 14, 15, "check"),
            "optional_data_1": _Span(0, 15, 30, "alnum"),
            "birth_date": _Span(1, 0, 6, "digits"),
            "birth_date_check": _Span(1, 6, 7, "check"),
            "sex": _Span(1, 7, 8, "sex"),
            "expiry_date": _Span(1, 8, 14, "digits"),
            "expiry_date_check": _Span(1, 14, 15, "check"),
            "nationality": _Span(1, 15, 18, "alpha"),
            "optional_data_2": _Span(1, 18, 29, "alnum"),
            "composite_check": _Span(1, 29, 30, "check"),
            "name": _Span(2, 0, 30, "alpha"),
        }
    width = 44 if fmt in ("TD3", "MRVA") else 36
    spans = {
        "document_type": _Span(0, 0, 2, "alpha"),
        "issuing_state": _Span(0, 2, 5, "alpha"),
        "name": _Span(0, 5, width, "alpha"),
        "document_number": _Span(1, 0, 9, "alnum"),
        "document_number_check": _Span(1, 9, 10, "check"),
        "nationality": _Span(1, 10, 13, "alpha"),
        "birth_date": _Span(1, 13, 19, "digits"),
        "birth_date_check": _Span(1, 19, 20, "check"),
        "sex": _Span(1, 20, 21, "sex"),
        "expiry_date": _Span(1, 21, 27, "digits"),
        "expiry_date_check": _Span(1, 27, 28, "check"),
    }
    if fmt == "TD3":
        spans["optional_data"] = _Span(1, 28, 42, "alnum")
        spans["optional_data_check"] = _Span(1, 42, 43, "check")
        spans["composite_check"] = _Span(1, 43, 44, "check")
    elif fmt == "TD2":
        spans["optional_data"] = _Span(1, 28, 35, "alnum")
        spans["composite_check"] = _Span(1, 35, 36, "check")
    else:
        spans["optional_data"] = _Span(1, 28, width, "alnum")
    return spans


def detect_format(lines: list[str]) -> str:
    """TD1, TD2, TD3, MRVA or MRVB from the line count and length, else ""."""
    if not lines or len({len(line) for line in lines}) != 1:
        return ""
    fmt = LINE_LAYOUTS.get((len(lines), len(lines[0])), "")
    if fmt in ("TD2", "TD3") and lines[0][:1] == "V":
        return "MRVB" if fmt == "TD2" else "MRVA"
    return fmt


def _get(lines: list[str], span: _Span) -> str:
    return lines[span.line][span.start : span.end]


def _put(lines: list[str], span: _Span, text: str) -> None:
    line = lines[span.line]
    lines[span.line] = line[: span.start] + text + line[span.end :]


def _fix_charset(text: str, kind: str) -> str:
    """Map look-alikes into the field's character set where unambiguous."""
    if kind in ("digits", "check"):
        return "".join(TO_DIGIT.get(c, c) for c in text)
    if kind == "alpha":
        return "".join(TO_LETTER.get(c, c) for c in text)
    if kind == "sex":
        return {"0": "<", "H": "M", "E": "F"}.get(text, text)
    return text


def _charset_ok(text: str, kind: str) -> bool:
    allowed = {"digits": DIGITS, "check": DIGITS, "alpha": ALPHA, "sex": set("MFX<")}
    return set(text) <= allowed.get(kind, ALNUM)


def _long_number(number: str, digit: str, optional: str) -> tuple[str, str, bool]:
    """Document number, its check digit and whether it validates.

    Doc 9303 Part 5/6: a number longer than 9 characters puts `<` in the check
    digit position and continues in the optional data, followed by its check
    digit and a filler. Issuers differ on whether the `<` takes part in the sum,
    so both variants are accepted.
    """
    if digit != FILLER or not optional or optional[0] == FILLER:
        return number, digit, digit_ok(number, digit)
    tail = optional.split(FILLER, 1)[0]
    if len(tail) < 2:
        return number, digit, False
    extra, cd = tail[:-1], tail[-1]
    full = number + extra
    ok = digit_ok(full, cd) or digit_ok(number + FILLER + extra, cd)
    return full, cd, ok


def _run_checks(fmt: str, lines: list[str]) -> tuple[dict[str, bool], str]:
    """Check digit verdicts and the (possibly long) document number."""
    spans = _layout(fmt)

    def g(name: str) -> str:
        return _get(lines, spans[name])

    checks: dict[str, bool] = {}
    number = g("document_number").rstrip(FILLER)
    if fmt in ("TD1", "TD2"):
        optional = g("optional_data_1" if fmt == "TD1" else "optional_data")
        full, _, ok = _long_number(
            g("document_number"), g("document_number_check"), optional
        )
        number = full.replace(FILLER, "") if ok else number
        checks["document_number"] = ok
    else:
        checks["document_number"] = digit_ok(
            g("document_number"), g("document_number_check")
        )
    checks["birth_date"] = digit_ok(g("birth_date"), g("birth_date_check"))
    checks["expiry_date"] = digit_ok(g("expiry_date"), g("expiry_date_check"))
    if fmt == "TD3":
        checks["optional_data"] = digit_ok(
            g("optional_data"), g("optional_data_check"), may_be_empty=True
        )
    if fmt == "TD1":
        a, b = lines[0], lines[1]
        composite = a[5:30] + b[0:7] + b[8:15] + b[18:29]
        checks["composite"] = digit_ok(composite, b[29])
    elif fmt in ("TD2", "TD3"):
        b = lines[1]
        end = len(b) - 1
        checks["composite"] = digit_ok(b[0:10] + b[13:20] + b[21:end], b[end])
    return checks, number


def _correct(fmt: str, lines: list[str]) -> list[str]:
    """Apply confirmed look-alike corrections; returns the corrected lines."""
    spans = _layout(fmt)
    out = list(lines)

    # fields with a single character class: digits and letters cannot be confused
    # there, so a look-alike is mapped; dates and check digits are then confirmed
    # (or refuted) by the check digits below.
    for span in spans.values():
        text = _get(out, span)
        if span.kind == "alnum" or _charset_ok(text, span.kind):
            continue
        fixed = _fix_charset(text, span.kind)
        if span.kind == "check" and span.end - span.start == 1 and fixed == FILLER:
            continue
        _put(out, span, fixed)

    # a field group whose check still fails after the mapping keeps what was read
    checks, _ = _run_checks(fmt, out)
    groups = {
        "birth_date": ("birth_date", "birth_date_check"),
        "expiry_date": ("expiry_date", "expiry_date_check"),
    }
    for check, names in groups.items():
        if not checks.get(check, True):
            for name in names:
                _put(out, spans[name], _get(lines, spans[name]))

    # alphanumeric fields (document number, optional data) stay as read: their
    # check digit is the only confirmation (the composite repeats the same sum
    # for the document number), and one mod-10 digit would accept a wrong swap
    # one time in ten
    return out


def _parse_date(text: str, *, expiry: bool, today: dt.date) -> dt.date | None:
    if not text.isdigit() or len(text) != 6:
        return None
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:6])
    if expiry:
        # an expiry more than 50 years ahead is a 20th-century date
        year = 2000 + yy if 2000 + yy <= today.year + 50 else 1900 + yy
    else:
        year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    try:
        return dt.date(year, mm, dd)
    except ValueError:
        return None


def _names(text: str) -> tuple[str, str]:
    primary, _, secondary = text.partition("<<")
    return (
        primary.replace(FILLER, " ").strip(),
        secondary.replace(FILLER, " ").strip(),
    )


def _fields(fmt: str, lines: list[str], number: str, today: dt.date) -> dict[str, str]:
    spans = _layout(fmt)
    raw = {name: _get(lines, span) for name, span in spans.items()}
    surname, given = _names(raw["name"])
    out = {
        "document_type": raw["document_type"].rstrip(FILLER),
        "issuing_state": raw["issuing_state"].replace(FILLER, ""),
        "surname": surname,
        "given_names": given,
        "document_number": number,
        "nationality": raw["nationality"].replace(FILLER, ""),
        "sex": raw["sex"].replace(FILLER, "") or "X",
    }
    for key, expiry in (("birth_date", False), ("expiry_date", True)):
        date = _parse_date(raw[key], expiry=expiry, today=today)
        out[key] = date.isoformat() if date else raw[key]
    for key in ("optional_data", "optional_data_1", "optional_data_2"):
        if key in raw:
            out[key] = raw[key].strip(FILLER)
    return out


def _invalid(fmt: str, lines: list[str], reason: str) -> MrzResult:
    return MrzResult(format=fmt, lines=lines, valid=False, reason=reason)


def parse_mrz(
    lines: list[str], *, today: dt.date | None = None, correct: bool = True
) -> MrzResult:
    """Parse and check an MRZ given as its lines (without line breaks)."""
    today = today or dt.date.today()
    lines = [line.strip().upper().replace(" ", "") for line in lines]
    fmt = detect_format(lines)
    if not fmt:
        shape = "x".join(str(len(line)) for line in lines) or "0"
        return _invalid("", lines, f"no ICAO MRZ layout ({len(lines)} lines, {shape})")
    if fmt == "TD2" and lines[0][:5] == "IDFRA":
        # the French ID card before 2021 uses its own 2x36 layout (not ICAO TD2)
        return _invalid(fmt, lines, "French national ID layout, not ICAO TD2")
    if fmt in ("TD1", "TD2") and lines[0][:1] == "P":
        # Doc 9303 Parts 5 and 6: a TD1 or TD2 document code starts with A, C
        # or I; a passport's MRZ is TD3 (Part 4), and a TD3 whose lines were
        # cut short reads as 2x36 with the same check digit places
        return _invalid(fmt, lines, f"passport code 'P' in a {fmt} layout")
    if any(c not in ALPHABET for line in lines for c in line):
        return _invalid(fmt, lines, "characters outside the MRZ alphabet")

    fixed = _correct(fmt, lines) if correct else list(lines)
    corrections = [
        (li, ci, a, b)
        for li, (old, new) in enumerate(zip(lines, fixed, strict=True))
        for ci, (a, b) in enumerate(zip(old, new, strict=True))
        if a != b
    ]
    checks, number = _run_checks(fmt, fixed)
    fields = _fields(fmt, fixed, number, today)
    spans = _layout(fmt)
    bad_set = [
        name
        for name, span in spans.items()
        if not _charset_ok(_get(fixed, span), span.kind)
    ]
    birth = _parse_date(_get(fixed, spans["birth_date"]), expiry=False, today=today)
    expiry = _parse_date(_get(fixed, spans["expiry_date"]), expiry=True, today=today)
    failed = [name for name, ok in checks.items() if not ok]
    reasons = []
    if failed:
        reasons.append("check digit failed: " + ", ".join(failed))
    if bad_set:
        reasons.append("bad characters in: " + ", ".join(bad_set))
    if birth is None and "<" not in _get(fixed, spans["birth_date"]):
        reasons.append("birth date is not a date")
    if expiry is None:
        reasons.append("expiry date is not a date")
    valid = not reasons
    expired = None if expiry is None else expiry < today

    kind = ACCEPTED_KINDS.get(fields["document_type"][:1])
    if not valid:
        reason = "; ".join(reasons)
    elif kind is None:
        label = "visa" if fmt.startswith("MRV") else "document"
        code = fields["document_type"]
        reason = f"{label} type {code!r} is not accepted: only ID cards and passports"
    elif expired:
        reason = f"{kind} expired on {expiry}"
    else:
        reason = ""
    return MrzResult(
        format=fmt,
        lines=fixed,
        valid=valid,
        fields=fields,
        checks=checks,
        expired=expired,
        accepted=valid and kind is not None,
        reason=reason,
        corrections=corrections,
    )


def field_spans(fmt: str) -> dict[str, tuple[int, int, int]]:
    """Every field of the format: name -> (line, start, end)."""
    return {n: (s.line, s.start, s.end) for n, s in _layout(fmt).items()}


def alnum_positions(fmt: str) -> list[tuple[int, int]]:
    """(line, column) of every character in a field that mixes letters and digits."""
    return [
        (span.line, col)
        for span in _layout(fmt).values()
        if span.kind == "alnum"
        for col in range(span.start, span.end)
    ]
