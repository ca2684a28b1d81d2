"""Events read back from Arrow (the case's timeline, Parquet): text as pyarrow holds it, each
repeated value made once and shared by the events that hold it (``arrow._text``)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import shared_dir

from smbwatch import schema
from smbwatch.arrow import batch_events, event_batches
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import iter_events

pytestmark = pytest.mark.unit

DATA = shared_dir() / "data"
ZEROLOGON = "mimikatz_CVE-2020-1472_Unauthenticated_NetrServerAuthenticate2_2020-09-16233923"
INPUTS = [
    DATA / "host" / "ATTACK-SAMPLES_LM_5145_Remote_FileCopy.evtx",  # 869 file accesses (5145)
    DATA / "otrf" / f"{ZEROLOGON}.cap",  # 901 Netlogon calls over TCP
]
TEXT = [f.name for f in schema.FIELDS if f.kind == schema.TEXT and f.name != "session_id"]


def _batches(path: Path) -> list[pa.RecordBatch]:
    diagnostics = Diagnostics()
    return list(event_batches(iter_events([str(path)], diagnostics), diagnostics))


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name[:40])
def test_text_read_back_is_what_arrow_holds(path: Path) -> None:
    """Every text field of every event equals pyarrow's own reading of its row (``session_id``
    aside: a host record's is filled from its logon id when read)."""
    checked = 0
    for batch in _batches(path):
        rows = batch.to_pylist()
        events = list(batch_events([batch], Diagnostics(), path.name))
        assert len(events) == len(rows)
        for event, row in zip(events, rows, strict=True):
            for name in TEXT:
                assert getattr(event, name) == row[name], name
                checked += row[name] is not None
    assert checked > 1000  # the inputs hold text enough to say something


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name[:40])
def test_a_value_repeated_down_a_column_is_one_string(path: Path) -> None:
    """In a column where most rows hold a value and values repeat four times or more, the
    events that hold one value hold one string: what a detector holding events for its
    correlations keeps is each value once, not once a row."""
    shared = 0
    for batch in _batches(path):
        events = list(batch_events([batch], Diagnostics(), path.name))
        for name in TEXT:
            strings: dict[str, set[int]] = defaultdict(set)
            for event in events:
                value = getattr(event, name)
                if value is not None:
                    strings[value].add(id(value))
            held = sum(1 for event in events if getattr(event, name) is not None)
            if held * 2 < len(events) or len(strings) * 4 > held:
                continue  # mostly empty, or mostly distinct: read as it is
            assert all(len(ids) == 1 for ids in strings.values()), name
            shared += held
    assert shared > 1000
