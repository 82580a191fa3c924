"""ICAO 9303 MRZ parsing and checking (media.mrz)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from media.mrz import ALPHABET, char_value, check_digit, detect_format, parse_mrz
from media.mrz_codes import (
    check_blind_fields,
    choose_codes,
    code_posterior,
    known_code,
    uncertain_fields,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TODAY = dt.date(2026, 1, 15)

# ICAO Doc 9303 specimen data of the fictional state Utopia.
TD3 = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]
TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"]
TD1 = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
]
MRVA = [
    "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
]
MRVB = ["V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX4009078F9612109<<<<<<<<"]


def with_expiry(lines: list[str], fmt: str, yymmdd: str) -> list[str]:
    """The MRZ with a new expiry date and recomputed check digits."""
    out = list(lines)
    if fmt == "TD1":
        b = out[1]
        b = b[:8] + yymmdd + check_digit(yymmdd) + b[15:]
        a = out[0]
        b = b[:29] + check_digit(a[5:30] + b[0:7] + b[8:15] + b[18:29])
        out[1] = b
        return out
    b = out[1]
    b = b[:21] + yymmdd + check_digit(yymmdd) + b[28:]
    if fmt in ("TD2", "TD3"):
        end = len(b) - 1
        b = b[:end] + check_digit(b[0:10] + b[13:20] + b[21:end])
    out[1] = b
    return out


def test_check_digit_icao_examples():
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"
    assert check_digit("ZE184226B<<<<<") == "1"
    assert check_digit("<<<<") == "0"


@pytest.mark.parametrize(
    ("lines", "fmt"),
    [(TD3, "TD3"), (TD2, "TD2"), (TD1, "TD1"), (MRVA, "MRVA"), (MRVB, "MRVB")],
)
def test_parse_mrz_utopia_specimens_valid(lines, fmt):
    result = parse_mrz(lines, today=TODAY)
    assert result.format == fmt
    assert result.valid, result.reason
    assert all(result.checks.values())
    assert result.fields["surname"] == "ERIKSSON"
    assert result.fields["given_names"] == "ANNA MARIA"
    assert result.expired is True
    # ID cards and passports are of an accepted type, visas are not; the
    # expiry is reported apart
    assert result.accepted is (fmt not in ("MRVA", "MRVB"))


def test_parse_mrz_td3_fields():
    fields = parse_mrz(TD3, today=TODAY).fields
    assert fields["document_type"] == "P"
    assert fields["issuing_state"] == "UTO"
    assert fields["document_number"] == "L898902C3"
    assert fields["birth_date"] == "1974-08-12"
    assert fields["expiry_date"] == "2012-04-15"
    assert fields["sex"] == "F"
    assert fields["optional_data"] == "ZE184226B"


def test_parse_mrz_checks_listed_per_format():
    assert set(parse_mrz(TD3).checks) == {
        "document_number",
        "birth_date",
        "expiry_date",
        "optional_data",
        "composite",
    }
    assert set(parse_mrz(TD1).checks) == {
        "document_number",
        "birth_date",
        "expiry_date",
        "composite",
    }
    assert "composite" not in parse_mrz(MRVA).checks


def test_parse_mrz_unexpired_passport_accepted():
    lines = with_expiry(TD3, "TD3", "300101")
    result = parse_mrz(lines, today=TODAY)
    assert result.valid and result.expired is False
    assert result.accepted is True
    assert result.reason == ""


def test_parse_mrz_unexpired_id_card_accepted():
    result = parse_mrz(with_expiry(TD1, "TD1", "300101"), today=TODAY)
    assert result.accepted is True


def test_parse_mrz_visa_refused_with_reason():
    lines = with_expiry(MRVA, "MRVA", "300101")
    result = parse_mrz(lines, today=TODAY)
    assert result.valid and result.expired is False
    assert result.accepted is False
    assert "visa" in result.reason and "not accepted" in result.reason


def test_parse_mrz_expired_said_apart_from_the_type():
    result = parse_mrz(TD3, today=TODAY)
    assert result.expired is True and result.accepted is True
    assert "expired" in result.reason


def test_parse_mrz_long_td1_document_number():
    lines = [
        "I<UTOD23145890<7349<<<<<<<<<<<",
        "3407127M9507122UTO<<<<<<<<<<<2",
        "STEVENSON<<PETER<JOHN<<<<<<<<<",
    ]
    result = parse_mrz(lines, today=TODAY)
    assert result.valid, result.reason
    assert result.fields["document_number"] == "D23145890734"


def test_parse_mrz_changed_check_digit_invalid():
    bad = [TD3[0], TD3[1][:9] + "7" + TD3[1][10:]]
    result = parse_mrz(bad, today=TODAY)
    assert not result.valid
    assert result.checks["document_number"] is False
    assert result.accepted is False


def test_parse_mrz_corrects_lookalikes_only_where_confirmed():
    noisy = [
        "P<UT0ERIK55ON<<ANNA<MAR1A<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO740BIZZF12041S9ZE184226B<<<<<1O",
    ]
    assert not parse_mrz(noisy, correct=False).valid
    result = parse_mrz(noisy, today=TODAY)
    assert result.valid
    assert result.lines == TD3
    assert result.corrections


def test_parse_mrz_uncorrectable_date_stays_invalid():
    # "X" is no look-alike of a digit: nothing to correct, the date check fails
    bad = [TD3[0], TD3[1][:13] + "74X8122" + TD3[1][20:]]
    result = parse_mrz(bad, today=TODAY)
    assert not result.valid
    assert result.checks["birth_date"] is False


@pytest.mark.parametrize("lines", [TD3, TD2, TD1])
def test_parse_mrz_single_substitution_never_wrong_valid(lines):
    """Any one changed character in a checked field: invalid, or corrected back.

    Characters whose values are equal modulo 10 (1 and L, 3 and D) are left out:
    the 7-3-1 check digit of Doc 9303 cannot tell them apart by design.
    """
    fmt = detect_format(lines)
    checked = {
        "TD3": [(1, i) for i in range(0, 44) if not 10 <= i < 13 and i != 20],
        "TD2": [(1, i) for i in range(0, 36) if not 10 <= i < 13 and i != 20],
        "TD1": [(0, i) for i in range(5, 30)]
        + [(1, i) for i in range(0, 30) if i != 7 and not 15 <= i < 18],
    }[fmt]
    for row, col in checked:
        for char in ALPHABET:
            if (char_value(char) - char_value(lines[row][col])) % 10 == 0:
                continue
            bad = list(lines)
            bad[row] = bad[row][:col] + char + bad[row][col + 1 :]
            result = parse_mrz(bad, today=TODAY)
            assert not result.valid or result.lines == lines, (row, col, char)


def test_parse_mrz_wrong_shape_invalid():
    result = parse_mrz(["P<UTO", "L898"])
    assert not result.valid and result.format == ""
    assert "no ICAO MRZ layout" in result.reason


def test_parse_mrz_td3_cut_to_td2_length_invalid():
    # a passport's lines cut short at 36 characters keep the TD2 check digit
    # places; with a composite check that happens to pass it must still fail
    line1 = TD3[0][:36]
    head = TD3[1][:28] + "1234567"
    line2 = head + check_digit(head[0:10] + head[13:20] + head[21:35])
    lines = [line1, line2]
    assert parse_mrz(["I" + line1[1:], line2], today=TODAY).valid
    result = parse_mrz(lines, today=TODAY)
    assert result.format == "TD2" and not result.valid
    assert result.reason == "passport code 'P' in a TD2 layout"


def test_parse_mrz_non_mrz_characters_invalid():
    bad = [TD3[0], TD3[1][:43] + "#"]
    assert not parse_mrz(bad).valid


def test_parse_mrz_french_national_id_not_td2():
    lines = [
        "IDFRABERTHIER<<<<<<<<<<<<<<<<<<<<<<<",
        "9409923102854CORINNE<<<<<<<6512068F4",
    ]
    result = parse_mrz(lines)
    assert not result.valid
    assert "French" in result.reason


def test_to_dict_has_report_keys():
    d = parse_mrz(TD3, today=TODAY).to_dict()
    for key in ("lines", "valid", "type", "fields", "checks", "expired", "accepted"):
        assert key in d
    assert d["type"] == "P"


def _vectors() -> list[dict]:
    path = CORPUS / "mrz_vectors.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def test_corpus_vectors_give_expected_result():
    vectors = _vectors()
    if not vectors:
        pytest.skip(f"no MRZ vectors at {CORPUS / 'mrz_vectors.json'}")
    for v in vectors:
        raw = parse_mrz(v["lines"], correct=False)
        corrected = parse_mrz(v["lines"])
        name = v["name"]
        if v["expect"] is True:
            assert raw.valid and corrected.valid, name
        elif v["expect"] is False and "OCR-NOISE" in name:
            # invalid as given; the confirmed correction makes it the specimen
            assert not raw.valid, name
            assert corrected.valid and corrected.corrections, name
        else:
            # negatives, and the layouts and variants that must not validate
            assert not raw.valid and not corrected.valid, name


def _probs(text: str, doubts: dict[int, dict[str, float]] | None = None) -> np.ndarray:
    """Glyph probabilities that favour `text`, with some positions in doubt."""
    out = np.full((len(text), len(ALPHABET)), 0.001)
    for i, c in enumerate(text):
        for ch, p in (doubts or {}).get(i, {c: 0.99}).items():
            out[i, ALPHABET.index(ch)] = p
    return out / out.sum(axis=1, keepdims=True)


def test_known_code_icao_additions():
    for code in ("D<<", "UTO", "XXA", "EUE", "UNO", "GBR", "NLD"):
        assert known_code(code), code
    for code in ("NLO", "HBV", "QQQ", "<<<"):
        assert not known_code(code), code


def test_code_posterior_picks_known_alternative():
    # the D of NLD read as O (0.61) over D (0.34): NLO is no code
    code, share, ratio = code_posterior(_probs("NLO", {2: {"O": 0.61, "D": 0.34}}))
    assert code == "NLD"
    assert share > 0.98 and 0.3 < ratio < 1


def test_choose_codes_replaces_unknown_issuer():
    lines = [TD3[0].replace("P<UTO", "P<HBV"), TD3[1].replace("UTO", "HRV", 1)]
    probs = _probs("".join(lines), {3: {"B": 0.6, "R": 0.35}})
    fixed, doubts = choose_codes("TD3", lines, probs)
    assert fixed[0].startswith("P<HRV") and fixed[1] == lines[1]
    assert doubts == []


def test_choose_codes_unknown_code_stays_doubtful():
    lines = [TD3[0].replace("P<UTO", "P<QQQ"), TD3[1]]
    fixed, doubts = choose_codes("TD3", lines, _probs("".join(lines)))
    assert fixed == lines
    assert doubts == ["issuing_state"]


def test_uncertain_fields_low_glyph_in_name():
    probs = _probs("".join(TD3), {16: {"L": 0.55, "E": 0.44}})
    doubtful, lowest = uncertain_fields("TD3", TD3, probs, [])
    assert doubtful == ["name"]
    assert lowest < 0.6


def test_check_blind_fields_j_for_9_in_number():
    # J (19) and 9 share a check value modulo 10: the check digit cannot tell;
    # Z (35) for 2 would change it
    probs = _probs("".join(TD3), {44 + 5: {"2": 0.7, "Z": 0.3}})
    assert check_blind_fields("TD3", TD3, probs) == []
    probs = _probs("".join(TD3), {44 + 2: {"9": 0.7, "J": 0.3}})
    assert check_blind_fields("TD3", TD3, probs) == ["document_number"]


def test_mrz_vectors_command(tmp_path, capsys):
    from identdesk.cli import main

    noisy = [
        TD3[0].replace("O", "0", 1),
        TD3[1],
    ]  # UT0: a look-alike the check digits confirm
    wrong = [TD3[0], TD3[1][:9] + "7" + TD3[1][10:]]  # document number check digit
    vectors = [
        {"name": "utopia", "lines": TD3, "expect": True},
        {"name": "wrong digit", "lines": wrong, "expect": False},
        {"name": "noisy", "lines": noisy, "expect": False},
    ]
    path = tmp_path / "v.json"
    path.write_text(json.dumps(vectors))
    assert main(["mrz", "vectors", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 give their expected result as given" in out
    assert "1 become valid after look-alike corrections" in out
    vectors[1]["expect"] = True  # a vector the parser disagrees with
    path.write_text(json.dumps(vectors))
    assert main(["mrz", "vectors", str(path), "--json"]) == 1
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["agrees"] for r in rows] == [True, False, True]
    path.write_text("{}")
    assert main(["mrz", "vectors", str(path)]) == 2
    assert "not a JSON list" in capsys.readouterr().err
