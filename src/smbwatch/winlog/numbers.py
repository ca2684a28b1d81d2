"""Integers from logs, bounded: every reader parses a logged number here.

A log is attacker-controlled text: a field may hold 5,000 digits (Python refuses to convert more
than 4,300, and a conversion costs time quadratic in the length), ``1e999``, ``Infinity``, or a
hex mask of 3,600 digits that no writer downstream can render. No Windows field is wider than
64 bits, so a number of more is refused before it is converted: ``OutOfRange``, which the
readers count as a warning and answer by dropping that field (or, for an event id, the record).
"""

from __future__ import annotations

import math
from typing import Any, Final

from smbwatch.winlog.record import Source

LIMIT: Final = 1 << 64  # no Windows field (record id, logon id, mask, port) is wider
_MAX_DIGITS: Final = {10: 20, 16: 16}  # digits of LIMIT - 1, by base
_HEX_PREFIXES: Final = ("0x", "0X")


class OutOfRange(ValueError):
    """A number that no Windows field can hold (64 bits or more, or infinite)."""


def parse_int(value: Any) -> int | None:
    """An integer logged as a number (an integral float included), decimal or ``0x`` hex text.

    None for what is no number (text, a fraction, NaN, a bool, an object); ``OutOfRange`` for a
    number whose magnitude reaches 2**64, decided on the text's length before any conversion.
    """
    number: int | None
    if type(value) is int:  # not a bool
        number = value
    elif type(value) is float:
        if math.isinf(value):
            raise OutOfRange(f"{value} is not a finite number")
        if not value.is_integer():  # NaN too
            return None
        number = int(value)
    elif type(value) is str:
        number = _parse_text(value)
    else:
        return None
    if number is None:
        return None
    if not -LIMIT < number < LIMIT:
        raise OutOfRange(f"a number of {number.bit_length()} bits")
    return number


def _parse_text(value: str) -> int | None:
    text = value.strip()
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    base = 16 if unsigned[:2] in _HEX_PREFIXES else 10
    digits = unsigned[2:] if base == 16 else unsigned
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS[base]:
        if _all_digits(significant, base):
            raise OutOfRange(f"a number of {len(significant)} digits")
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _all_digits(text: str, base: int) -> bool:
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    return not text.strip(allowed)


def bounded_int(value: Any) -> int | None:
    """``parse_int`` with out-of-range numbers as None: for fields already checked (or whose
    loss needs no word of its own)."""
    try:
        return parse_int(value)
    except OutOfRange:
        return None


def event_code(value: Any) -> int:
    """A logged event id; ValueError (the record's loss) when it is none or out of range."""
    code = parse_int(value)
    if code is None:
        raise ValueError(f"no event id: {str(value)[:40]!r}")
    return code


def record_number(value: Any, source: Source) -> int | None:
    """A logged record id; one out of range is dropped with a warning, the record kept."""
    try:
        return parse_int(value)
    except OutOfRange as error:
        source.warn("number_out_of_range", f"record id dropped: {error}")
        return None


def filter_code(text: str, source: Source) -> int:
    """An event id read off a record's raw text to filter it: 0 (no event of ours) when it is
    out of range, with a warning."""
    try:
        return parse_int(text) or 0
    except OutOfRange as error:
        source.warn("number_out_of_range", f"an event id of {error}: record skipped")
        return 0
