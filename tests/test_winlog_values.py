"""Values every record carries, read by shortcuts that must answer as the long way does:
whether a time says its zone (a ``Z``, or no sign near the end, against the definition: an
ISO 8601 zone at the very end), a client's address (a plain dotted quad kept as it is,
against ``ipaddress``), and the time of an EVTX record (``parse_time``'s fast path)."""

from __future__ import annotations

import ipaddress
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from smbwatch.winlog.normalize import _address
from smbwatch.winlog.timestamps import has_zone, system_time

pytestmark = pytest.mark.unit

DEFINITION = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def test_has_zone_answers_as_the_definition() -> None:
    rng = random.Random(5140)
    pieces = ["2026-12-06", "T", " ", "16:54:59", ".454", "Z", "z", "+02:00", "-0530", "+1",
              "-", "+", "00", ":", "\n", " ", "x", "2026-12-06T16:54:59-05:00 "]  # fmt: skip
    texts = ["", "Z", "+00:00", "2026-12-06 16:54:59", "2026-12-06T16:54:59.454Z"]
    texts += ["".join(rng.choices(pieces, k=rng.randint(1, 6))) for _ in range(5000)]
    for text in texts:
        assert has_zone(text) == (DEFINITION.search(text.strip()) is not None), repr(text)


def canonical(text: str) -> str | None:
    """What a log's address stands for, by ``ipaddress`` (IPv4-mapped IPv6 as IPv4)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def test_addresses_are_read_as_ipaddress_reads_them() -> None:
    rng = random.Random(4625)
    parts = ["0", "1", "9", "10", "01", "010", "99", "100", "199", "255", "256", "300", "999",
             "1000", "", "-1", "+1", " 1", "\u0661", "a", "0x1"]  # fmt: skip
    texts = ["::ffff:10.0.0.5", "fe80::1", "::1", "-", "", "10.0.0.5 ", "1.2.3.4.5", "1.2.3"]
    for _ in range(20000):
        texts.append(".".join(rng.choice(parts) for _ in range(rng.choice([3, 4, 4, 4, 5]))))
    for text in texts:
        assert _address(text) == canonical(text), repr(text)


def test_system_times_in_every_rendering_and_a_hostile_one() -> None:
    """``TimeCreated/@SystemTime`` as the evtx library, python-evtx and XML write it is the
    same moment; a value of the evtx library's length that is a time with an offset (no record
    writes one) is refused as a bad time, not as a crash."""
    moment = datetime(2021, 4, 21, 9, 40, 32, 342397, tzinfo=UTC)
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for text in ("2021-04-21T09:40:32.342397Z", "2021-04-21 09:40:32.342397 UTC",
                 "2021-04-21T09:40:32.3423970Z", "2021-04-21 09:40:32.342397"):  # fmt: skip
        assert system_time(text) == expected, text
    with pytest.raises(ValueError):
        system_time("2021-04-21T09+01:00:00.000Z")
