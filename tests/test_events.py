"""The event record: every declared field reaches the output, copies are independent, unknown
fields are refused, and times are written exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from smbwatch.events import FIELD_NAMES, SmbEvent, format_time, parse_time

pytestmark = pytest.mark.unit


def every_field_set() -> SmbEvent:
    """An event with each field set to a value of its kind, distinct per field."""
    event = SmbEvent(1_700_000_000_000_001, "network", "write")
    for number, name in enumerate(FIELD_NAMES[3:]):
        current = getattr(event, name)
        assert current is None, name  # every field but the first three defaults to None
        for value in (f"v{number}", number, True, [f"v{number}"], {"n": number}):
            try:
                setattr(event, name, value)
                break
            except TypeError:  # compiled, a field takes only values of its declared type
                continue
    return event


def test_every_declared_field_is_written() -> None:
    assert len(FIELD_NAMES) == len(set(FIELD_NAMES)) >= 66
    assert FIELD_NAMES[:3] == ("time", "source", "action")
    event = every_field_set()
    written = event.to_dict()
    assert tuple(written) == FIELD_NAMES  # all of them, in the contract's order
    assert written["time"] == "2023-11-14T22:13:20.000001Z"
    assert event.fields() == {**written, "time": event.time}


def test_unset_fields_are_left_out() -> None:
    event = SmbEvent(0, "host", "access_check", share_name="C$", bytes=0)
    assert event.to_dict() == {
        "time": "1970-01-01T00:00:00.000000Z",
        "source": "host",
        "action": "access_check",
        "share_name": "C$",
        "bytes": 0,
    }


def test_a_copy_is_changed_alone_and_unknown_fields_are_refused() -> None:
    event = every_field_set()
    twin = event.copy(action="delete", path="renamed")
    assert (twin.action, twin.path, event.action) == ("delete", "renamed", "write")
    assert twin == event.copy(action="delete", path="renamed") and twin != event
    assert twin.to_dict().keys() == event.to_dict().keys()
    assert twin.fields() == {**event.fields(), "action": "delete", "path": "renamed"}
    with pytest.raises(TypeError):
        event.copy(colour="red")
    with pytest.raises(TypeError):
        SmbEvent(0, "network", "open", colour="red")


def test_times_are_exact_to_the_microsecond() -> None:
    rng = random.Random(445)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    samples = [0, -1, 999_999, 1_000_000, 253_402_300_799_999_999]
    samples += [rng.randrange(0, 4_000_000_000_000_000) for _ in range(2000)]
    for micros in samples:
        expected = (epoch + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert format_time(micros) == expected
        assert parse_time(expected) == micros


def test_a_clock_of_seconds_or_milliseconds_is_written_without_invented_digits() -> None:
    micros = parse_time("2020-09-20T16:16:56.123456Z")
    assert format_time(micros, "s") == "2020-09-20T16:16:56Z"
    assert format_time(micros, "ms") == "2020-09-20T16:16:56.123Z"
    assert format_time(micros, None) == "2020-09-20T16:16:56.123456Z"
    event = SmbEvent(parse_time("2020-09-20T16:16:56Z"), "host", "logon", time_precision="s")
    assert event.to_dict()["time"] == "2020-09-20T16:16:56Z"
    assert parse_time(event.to_dict()["time"]) == event.time


def test_times_as_logs_write_them_are_read_as_datetime_says() -> None:
    """Every form a log writes for each record (a space or ``T``, a fraction of any length or
    none, ``Z``, an offset or nothing), dates that are none among them: the value (read twice,
    the second time from what the first remembered) or the error is the one ``datetime``
    gives for the same fields."""
    rng = random.Random(4624)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    zones = {"": 0, "Z": 0, "+02:00": 120, "-05:30": -330, "+0100": 60}
    for _ in range(4000):
        year = rng.choice([1, 1969, 1970, 2000, 2024, 2026, 2100, 9999, rng.randint(1, 9999)])
        month, day = rng.randint(0, 13), rng.randint(0, 32)
        clock = (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
        fraction = rng.choice(["", "5", "454", "123456", "1234567", "000000001"])
        zone = rng.choice(list(zones))
        text = f"{year:04d}-{month:02d}-{day:02d}{rng.choice('T ')}"
        text += "{:02d}:{:02d}:{:02d}".format(*clock) + (f".{fraction}" if fraction else "")
        text = rng.choice(["", " "]) + text + zone
        try:
            moment = datetime(year, month, day, *clock, tzinfo=UTC)
        except ValueError:
            for _again in range(2):
                with pytest.raises(ValueError):
                    parse_time(text)
            continue
        moment -= timedelta(minutes=zones[zone])
        expected = (moment - epoch) // timedelta(microseconds=1)
        expected += int((fraction + "000000")[:6])
        assert parse_time(text) == parse_time(text) == expected, text
