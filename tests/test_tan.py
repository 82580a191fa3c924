import math
import re

from signaling.tan import (
    ALPHABET,
    LENGTH,
    format_tan,
    new_tan,
    normalize_tan,
    tan_digest,
)


def test_new_tan_is_grouped_and_unambiguous() -> None:
    for _ in range(200):
        tan = new_tan()
        assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", tan)
        assert not set(tan) & set("01ILO")


def test_new_tan_has_at_least_40_bits() -> None:
    assert LENGTH * math.log2(len(ALPHABET)) >= 40
    assert len({new_tan() for _ in range(1000)}) == 1000


def test_normalize_tan_ignores_case_spaces_and_dashes() -> None:
    assert normalize_tan("k7m2q-4xtrb") == "K7M2Q4XTRB"
    assert normalize_tan(" K7M2Q 4XTRB ") == "K7M2Q4XTRB"
    assert format_tan("K7M2Q4XTRB") == "K7M2Q-4XTRB"


def test_normalize_tan_rejects_wrong_length_and_letters() -> None:
    assert normalize_tan("K7M2Q-4XTR") is None
    assert normalize_tan("K7M2Q-4XTRB7") is None
    # O and I are read as 0 and 1, which we never issue
    assert normalize_tan("O7M2Q-4XTRB") is None


def test_tan_digest_depends_on_the_key() -> None:
    assert tan_digest(b"a", "K7M2Q4XTRB") != tan_digest(b"b", "K7M2Q4XTRB")
    assert len(tan_digest(b"a", "K7M2Q4XTRB")) == 64
