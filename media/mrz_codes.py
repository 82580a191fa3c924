"""Issuer and nationality codes of ICAO Doc 9303 Part 3, and the reader's doubt.

No check digit covers the document type, the issuing state, the nationality,
the sex or the names: an OCR slip there passes every check, and so does a swap
between characters whose values differ by a multiple of 10 in a checked field.
The reader uses the code table to pick between the classifier's alternatives
in the two code fields, and `uncertain_fields` names the fields it cannot vouch
for, so that such a reading is not reported valid.
"""

from __future__ import annotations

import numpy as np

from media.mrz import ALPHABET, FILLER, char_value, field_spans

# ISO 3166-1 alpha-3, which Doc 9303 Part 3 takes for states and territories.
ISO_3166 = frozenset(
    """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL
    BEN BES BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA
    CAF CAN CCK CHE CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM
    CYP CZE DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA
    FRO FSM GAB GBR GEO GGY GHA GIB GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM
    GUY HKG HMD HND HRV HTI HUN IDN IMN IND IOT IRL IRN IRQ ISL ISR ITA JAM JEY
    JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA LIE LKA LSO LTU
    LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT MMR MNE MNG MNP MOZ
    MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR NPL NRU NZL
    OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU RUS
    RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK
    SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV
    TWN TZA UGA UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF
    ZMB ZWE
    """.split()
)

# Codes Doc 9303 Part 3 adds: Germany's single letter, British nationality
# classes, organisations, the stateless and refugee codes, and the specimen
# state Utopia; plus codes withdrawn from ISO 3166 that older documents carry.
ICAO_EXTRA = frozenset(
    """
    D GBD GBN GBO GBP GBS EUE UNO UNA UNK XBA XIM XCC XCE XCO XEC XES XDC XOM
    XPO XXA XXB XXC XXX UTO ANT NTZ SCG YUG ROM TMP ZAR
    """.split()
)

COUNTRY_CODES = ISO_3166 | ICAO_EXTRA

# A glyph the classifier gives less than this probability is a guess where no
# check digit can refute it (the corpus' misread letters scored 0.4-0.85).
SURE = 0.9
CODE_FIELDS = ("issuing_state", "nationality")
CODE_SURE = 0.98  # share of the table's likelihood that makes a code sure
SUBSTITUTE = 0.02  # a known code at least this likely as the read is taken

# A check-blind alternative this likely makes a checked field doubtful: on
# corpus images tilted, blurred and recompressed at random, a 0 read as U
# (classifier confident, 0 below 0.1) once passed every check.
BLIND_DOUBT = 0.03
BLIND_FIELDS = (
    "document_number",
    "optional_data",
    "optional_data_1",
    "optional_data_2",
)

_ALL = list(range(len(ALPHABET)))
# for each character, the others with the same check-digit value modulo 10
_TWINS = [
    [
        j
        for j, b in enumerate(ALPHABET)
        if b != a and char_value(b) % 10 == char_value(a) % 10
    ]
    for a in ALPHABET
]
_LETTERS = [ALPHABET.index(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ<"]
_DOCUMENT_CODES = [ALPHABET.index(c) for c in "PVIAC"]
FIELD_CHARSETS = {
    "document_type": _LETTERS,
    "issuing_state": _LETTERS,
    "name": _LETTERS,
    "nationality": _LETTERS,
    "sex": [ALPHABET.index(c) for c in "MFX<"],
}


def known_code(field_text: str) -> bool:
    """True when a 3-character code field (fillers included) is in the table."""
    return field_text.replace(FILLER, "") in COUNTRY_CODES


def uncovered_fields(fmt: str) -> dict[str, tuple[int, int, int]]:
    """Fields no check digit covers: name -> (line, start, end)."""
    names = ["document_type", "issuing_state", "name", "nationality", "sex"]
    if fmt.startswith("MRV"):
        names.append("optional_data")
    spans = field_spans(fmt)
    return {n: spans[n] for n in names}


def _code_matrix() -> tuple[list[str], np.ndarray]:
    codes = sorted(COUNTRY_CODES)
    padded = [c.ljust(3, FILLER) for c in codes]
    return padded, np.array([[ALPHABET.index(ch) for ch in c] for c in padded])


_CODES, _CODE_INDEX = _code_matrix()


def code_posterior(rows: np.ndarray) -> tuple[str, float, float]:
    """The likeliest known code for 3 glyphs' class probabilities.

    Returns the code, its share of the likelihood of all known codes (the
    table as a prior) and its likelihood relative to the glyph-wise best read.
    """
    letters = rows[:, _LETTERS] / np.maximum(
        rows[:, _LETTERS].sum(axis=1, keepdims=True), 1e-9
    )
    full = np.zeros_like(rows)
    full[:, _LETTERS] = letters
    like = full[np.arange(3), _CODE_INDEX].prod(axis=1)
    k = int(np.argmax(like))
    total = float(like.sum())
    share = float(like[k]) / total if total > 0 else 0.0
    ratio = float(like[k]) / max(float(letters.max(axis=1).prod()), 1e-12)
    return _CODES[k], share, ratio


def choose_codes(
    fmt: str, lines: list[str], probs: np.ndarray
) -> tuple[list[str], list[str]]:
    """Code fields set to the likeliest known code; the fields still in doubt.

    `probs` holds one row of class probabilities per character, line after
    line. A code is taken from the table when the print allows it (at least
    SUBSTITUTE of the best read's likelihood); it is sure only when it holds
    CODE_SURE of the table's likelihood and the print favours it.
    """
    count = len(lines[0])
    out = list(lines)
    doubtful = []
    for name in CODE_FIELDS:
        row, start, end = field_spans(fmt)[name]
        rows = probs[row * count + start : row * count + end]
        code, share, ratio = code_posterior(rows)
        if ratio >= SUBSTITUTE:
            out[row] = out[row][:start] + code + out[row][end:]
        if not (share >= CODE_SURE and ratio >= 0.3):
            doubtful.append(name)
    return out, doubtful


def uncertain_fields(
    fmt: str, lines: list[str], probs: np.ndarray, code_doubts: list[str]
) -> tuple[list[str], float]:
    """Fields read with doubt, and the lowest glyph probability in uncovered ones.

    An uncovered field is doubtful when one of its glyphs scored below SURE for
    the character in `lines` (among the field's character set); code fields are
    judged against the table instead (`code_doubts`, from `choose_codes`); a
    checked field is doubtful where `check_blind_fields` says so.
    """
    count = len(lines[0])
    doubtful = []
    lowest = 1.0
    for name, (row, start, end) in uncovered_fields(fmt).items():
        if name in CODE_FIELDS:
            if name in code_doubts or not known_code(lines[row][start:end]):
                doubtful.append(name)
            continue
        # only the field's own character set competes: a letter that resembles a
        # digit is no doubt where digits cannot stand
        p = [
            _share(probs[row * count + col], c, _allowed(name, col - start))
            for col, c in enumerate(lines[row][start:end], start)
        ]
        lowest = min(lowest, min(p))
        if min(p) < SURE:
            doubtful.append(name)
    doubtful.extend(check_blind_fields(fmt, lines, probs))
    return doubtful, lowest


def _allowed(name: str, offset: int) -> list[int]:
    """Class indices a character of the field may take at `offset`."""
    if name == "document_type" and offset == 0:
        return _DOCUMENT_CODES  # Doc 9303: P, V (TD3 size), I, A, C (cards)
    return FIELD_CHARSETS.get(name, _ALL)


def _share(p: np.ndarray, char: str, allowed: list[int]) -> float:
    """The probability of `char` among the allowed classes only."""
    k = ALPHABET.index(char)
    if k not in allowed:
        return 0.0
    return float(p[k] / max(float(p[allowed].sum()), 1e-9))


def check_blind_fields(fmt: str, lines: list[str], probs: np.ndarray) -> list[str]:
    """Checked letter-and-digit fields where a likely alternative escapes the check.

    A check digit sums character values with weights 7, 3, 1 modulo 10, so a
    character swapped for one whose value differs by a multiple of 10 (G/6,
    S/8, Z/5, P/F, U/0) leaves it unchanged: such a doubt needs the reader's
    confidence, as an uncovered field does.
    """
    count = len(lines[0])
    spans = field_spans(fmt)
    blind = []
    for name in BLIND_FIELDS:
        if name not in spans or name in uncovered_fields(fmt):
            continue
        row, start, end = spans[name]
        for col in range(start, end):
            c = lines[row][col]
            p = probs[row * count + col]
            twins = _TWINS[ALPHABET.index(c)]
            if twins and float(p[twins].max()) >= BLIND_DOUBT:
                blind.append(name)
                break
    return blind
