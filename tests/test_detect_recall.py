"""A correlation's matches past ``engine.HELD_MATCHES`` held as their places in the stream and
read again only when a correlation gets that far (``Detector``'s ``recall``; over a case,
``arrow.events_at`` on its timeline): the same alerts as with every match held.

The inputs are the OTRF logs of a scheduled task and of a service created by a network logon
session (``Scheduled Task Created by a Network Logon Session``, ``Service Installed by a
Network Logon Session``: temporal correlations of a logon and what followed it).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from detect_support import FILE_COPY_EVTX, OTRF

from smbwatch import cli
from smbwatch.arrow import batch_events, event_batches, events_at
from smbwatch.detect import engine
from smbwatch.detect.engine import Detector
from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import iter_events

pytestmark = pytest.mark.unit

LOGS = [
    next(OTRF.glob("schtask_create_*.json.gz")),
    next(OTRF.glob("empire_psexec_dcerpc_tcp_svcctl_*.json.gz")),
]
CORRELATED = ("Scheduled Task Created by a Network Logon Session", "Service Installed by")


def _events(path: Path) -> list[SmbEvent]:
    return list(iter_events([str(path)], Diagnostics()))


def _alerts(events: list[SmbEvent], recalled: list[int] | None) -> list[dict]:
    """The alerts of ``events``; with ``recalled``, the detector may read them again by place
    (from the list itself: the oracle of what is at a place), each place asked for noted."""

    def recall(places: list[int]) -> list[SmbEvent]:
        assert places == sorted(places)
        assert recalled is not None
        recalled.extend(places)
        return [events[place] for place in places]

    detector = Detector(load_rules(), Diagnostics(), None, None if recalled is None else recall)
    detector.feed_all(events)
    return [alert.to_dict() for alert in detector.alerts()]


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name[:30])
def test_matches_read_again_give_the_alerts_of_matches_held(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _events(path)
    held = _alerts(events, None)
    assert any(alert["title"].startswith(CORRELATED) for alert in held)
    monkeypatch.setattr(engine, "HELD_MATCHES", 0)
    recalled: list[int] = []
    assert _alerts(events, recalled) == held
    assert "logon" in {events[place].action for place in recalled}  # read again, not held


def test_a_correlation_that_ends_early_reads_nothing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logons alone (the task and service records taken out): every correlation of a logon
    and what followed it ends at its rarest rule, before the logons are read."""
    events = [e for path in LOGS for e in _events(path) if e.action == "logon"]
    assert len(events) > 2
    monkeypatch.setattr(engine, "HELD_MATCHES", 0)
    recalled: list[int] = []
    alerts = _alerts(events, recalled)
    assert recalled == []
    assert not any(alert["title"].startswith(CORRELATED) for alert in alerts)


def _sliced(path: Path, rows: int) -> list[pa.RecordBatch]:
    """The events of ``path`` as record batches of ``rows`` rows; in one, every third row
    without an action (a row ``batch_events`` skips)."""
    diagnostics = Diagnostics()
    batches = [
        batch.slice(start, rows)
        for batch in event_batches(iter_events([str(path)], diagnostics), diagnostics)
        for start in range(0, batch.num_rows, rows)
    ]
    broken = batches[1]
    index = broken.schema.get_field_index("action")
    gaps = pa.array([i % 3 == 0 for i in range(broken.num_rows)])
    action = pc.if_else(gaps, pa.scalar(None, pa.string()), broken.column(index))
    batches[1] = broken.set_column(index, "action", action.cast(broken.schema.field(index).type))
    return batches


def test_events_at_are_the_events_at_those_places() -> None:
    """The 869 file accesses of a 5145 log in batches of 100 rows, one with rows skipped."""
    batches = _sliced(FILE_COPY_EVTX, 100)
    every = list(batch_events(batches, Diagnostics(), "log"))
    assert len(every) < sum(batch.num_rows for batch in batches)  # the rows without an action
    last = len(every) - 1
    for places in (
        list(range(len(every))),
        [0, 65, 66, 67, 99, 100, 101, 199, 200, last],  # about the ends of batches
        [last],
        [0],
    ):
        found = list(events_at(batches, places, Diagnostics(), "log"))
        assert [e.to_dict() for e in found] == [every[p].to_dict() for p in places]


def test_events_at_reads_no_further_than_the_last_place() -> None:
    batches = _sliced(FILE_COPY_EVTX, 100)
    read = []

    def counted() -> object:
        for batch in batches:
            read.append(batch)
            yield batch

    list(events_at(counted(), [3, 150], Diagnostics(), "log"))  # type: ignore[arg-type]
    assert len(read) == 2 < len(batches)  # the second holds the 150th event


def _detect_case(case: Path) -> list[dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["detect", "-q", "-f", "jsonl", "--case", str(case)])
    assert code in (0, 1)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_detect_over_a_case_reads_its_timeline_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a case, the places are read again from its timeline (``arrow.events_at``)."""
    case = tmp_path / "case"
    assert cli.main(["ingest", "-q", "--case", str(case), *map(str, LOGS)]) == 0
    held = _detect_case(case)
    assert any(alert["title"].startswith(CORRELATED) for alert in held)
    monkeypatch.setattr(engine, "HELD_MATCHES", 0)
    asked: list[int] = []
    read_again = engine.Detector._recalled

    def noted(self: Detector, places: list[int]) -> object:
        asked.extend(places)
        return read_again(self, places)

    monkeypatch.setattr(engine.Detector, "_recalled", noted)
    assert _detect_case(case) == held
    assert asked
