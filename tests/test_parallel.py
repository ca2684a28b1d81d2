"""``-j N``: a large capture read by N workers, each decoding a share of its connections, writes
what one process writes; many small inputs go to N long-lived workers, in input order.

The large capture is the corpus's real captures copied round after round (``scale_support``),
past the size from which a capture is split (``pipeline.SPLIT_AT``); one process reading it
whole is the reference (a capture of the Samba lab: test_parallel_lab.py).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
import shutil
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import shared_dir
from hostile_support import DATA, NXLOG, SMB2_CAPTURE, Run, smbwatch
from oracle import pcapng, read_pcap_records, tshark, write_pcap
from scale_support import ETHERNET, large_capture, with_other_traffic

from smbwatch.capture.pcap import read_frames
from smbwatch.capture.streams import SAMPLE_FRAMES, SAMPLE_PLACES, smb_share
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.options import Options
from smbwatch.parallel import Readers, Work, parallel_inputs
from smbwatch.pipeline import (
    SPLIT_AT,
    SPLIT_SMB_SHARE,
    capture_events,
    input_events,
    local_shares,
    share_events,
    shares,
)
from smbwatch.sinks import jsonl

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "large.pcap"
    return large_capture(path, SPLIT_AT + (4 << 20))


@pytest.fixture(scope="module")
def mixed(large: Path) -> Path:
    """The first tenth of the large capture's frames in 20 runs, each followed by 2,000 frames
    (3 MB) of other TCP traffic: a capture over ``SPLIT_AT`` that is mostly not SMB."""
    _, records = read_pcap_records(large)
    path = large.with_name("mixed.pcap")
    write_pcap(path, ETHERNET, with_other_traffic(records[: len(records) // 10], 20, 2000))
    assert path.stat().st_size > SPLIT_AT
    return path


def warnings(run: Run) -> Counter[str]:
    """The warning summary's counts by kind (the examples are each share's first)."""
    counts: Counter[str] = Counter()
    for line in run.stderr.splitlines():
        if line.startswith("smbwatch: warning: "):
            words = line.split()
            counts[words[4]] = int(words[2])
    return counts


def test_the_shares_of_a_capture_are_its_connections_each_in_one(large: Path) -> None:
    whole = [event.to_dict() for event in capture_events(str(large), Diagnostics())]
    parts = []
    for index in range(3):
        source = InputFile(str(large))
        keyed = list(share_events(source, Diagnostics(), None, Options(), (index, 3)))
        keys = [key for key, _ in keyed]
        assert keyed, f"share {index} of 3 is empty"
        assert keys == sorted(keys), "a share's keys go down"
        parts.append([event for _, event in keyed])
    connections = [{event.conn_id for event in events} for events in parts]
    assert not connections[0] & connections[1] and not connections[1] & connections[2]
    assert not connections[0] & connections[2]
    joined = [event.to_dict() for events in parts for event in events]
    assert sorted(map(repr, joined)) == sorted(map(repr, whole))
    assert len(whole) > 10_000


@pytest.mark.parametrize(("hashing", "jobs"), [(True, "4"), (False, "2"), (False, "3")])
def test_a_large_capture_split_between_workers_writes_what_one_process_writes(
    large: Path, hashing: bool, jobs: str
) -> None:
    """Byte for byte after sorting, and in fact in the same order: each share's events are keyed
    by the frame that completed them and merged by that key. The warnings add up."""
    split = local_shares(
        InputFile(str(large)), None, int(jobs), Options() if hashing else Options(hashes=())
    )
    assert split == (int(jobs) // 2 if hashing else int(jobs)) > 1
    options = [] if hashing else ["--no-hash"]
    one = smbwatch("events", large, "-f", "jsonl", "-j", "1", *options).clean(0)
    two = smbwatch("events", large, "-f", "jsonl", "-j", jobs, *options).clean(0)
    assert sorted(one.stdout.splitlines()) == sorted(two.stdout.splitlines())
    assert one.stdout == two.stdout
    assert warnings(one) == warnings(two) and warnings(one)
    if hashing:
        assert '"sha256"' in one.stdout


def test_ingest_of_a_split_capture_makes_the_same_case(large: Path, tmp_path: Path) -> None:
    sql = (
        "SELECT * EXCLUDE (input_id) FROM event_rows "
        "ORDER BY time, source_ref, conn_id, action, message_id"
    )
    found = []
    for jobs in ("1", "2"):  # without hashing, two workers split the capture
        case = tmp_path / f"case-{jobs}"
        smbwatch("ingest", "-q", "--no-hash", "--case", case, "-j", jobs, large).clean(0)
        found.append(smbwatch("query", "--case", case, sql, "-f", "jsonl").clean(0).stdout)
    assert found[0] == found[1] and found[0].count("\n") > 10_000


def test_ingest_of_many_inputs_by_workers_makes_the_same_case(tmp_path: Path) -> None:
    """Whole inputs' events reach the case as the record batches the workers made
    (``Readers.batch``): the same rows, and the same warnings of each input, as one process
    makes, also those only storing them in columns gives (a 64-bit access mask)."""
    odd = tmp_path / "odd.json"
    record = {"EventTime": "2020-09-20 12:16:56", "Hostname": "WORKSTATION6", "EventID": 5145}
    odd.write_text(json.dumps({**record, "RecordNumber": 7, "AccessMask": "0x" + "F" * 16}))
    inputs = [*sorted((DATA / "otrf").iterdir()), *sorted((DATA / "host").iterdir()), odd]
    rows = "SELECT * FROM event_rows ORDER BY input_id, time, source_ref, conn_id, action"
    kept = "SELECT input_id, path, events, warnings, warning_kinds, damaged FROM inputs"
    found = []
    for jobs in ("1", "2"):
        case = tmp_path / f"case-{jobs}"
        added = smbwatch("ingest", "-q", "--case", case, "-j", jobs, *inputs)
        stored = [smbwatch("query", "--case", case, sql, "-f", "jsonl").clean(0).stdout
                  for sql in (rows, kept + " ORDER BY input_id")]  # fmt: skip
        found.append([added.clean(added.code).code, *stored])  # 3: a damaged capture
    assert found[0] == found[1] and found[0][1].count("\n") > 1000
    by_path = {row["path"]: row for row in map(json.loads, found[1][2].splitlines())}
    assert len(by_path) == len(inputs)
    assert json.loads(by_path[str(odd)]["warning_kinds"])["value_not_stored"] == 1


def test_only_a_large_capture_file_read_in_place_is_split(large: Path, tmp_path: Path) -> None:
    """A compressed capture (or one in a zip) would be decompressed once per share: it is read
    whole, by one worker."""
    packed = tmp_path / "large.pcap.gz"
    with large.open("rb") as raw, gzip.open(packed, "wb", compresslevel=1) as out:
        shutil.copyfileobj(raw, out)
    assert shares(InputFile(str(large)), None, 4) == 4
    assert shares(InputFile(str(large)), "pcap", 2) == 2
    assert shares(InputFile(str(large)), None, 1) == 1
    assert shares(InputFile(str(large)), "json", 2) == 1
    assert shares(InputFile(str(packed)), None, 2) == 1
    assert shares(InputFile(str(SMB2_CAPTURE)), None, 2) == 1  # small
    assert shares(InputFile(str(NXLOG)), None, 2) == 1
    # hashing, a share keeps two cores busy (its decoder and its digest process)
    assert local_shares(InputFile(str(large)), None, 2, Options()) == 1
    assert local_shares(InputFile(str(large)), None, 4, Options()) == 2
    assert local_shares(InputFile(str(large)), None, 2, Options(hashes=())) == 2
    one = smbwatch("events", packed, "-f", "jsonl", "-j", "1", "--no-hash").clean(0)
    two = smbwatch("events", packed, "-f", "jsonl", "-j", "2", "--no-hash").clean(0)
    assert one.stdout == two.stdout


@functools.cache
def smb_bytes(capture: Path) -> float:
    """The share of a capture's frame bytes that are TCP segments of SMB's ports or DCE/RPC
    (what the decoders are given), by tshark over every frame."""
    total = smb = 0
    fields = ("frame.cap_len", "frame.protocols", "tcp.port")
    for line in tshark("-r", str(capture), "-T", "fields", "-E", "separator=,",
                       *(f"-e{field}" for field in fields)).splitlines():  # fmt: skip
        length, protocols, *ports = line.split(",")
        total += int(length)
        if {"445", "139", "135"} & set(ports) or "dcerpc" in protocols.split(":"):
            smb += int(length)
    return smb / total


def test_a_capture_mostly_of_other_traffic_is_read_whole(large: Path, mixed: Path) -> None:
    """Each share walks every frame: for a capture mostly of other traffic, splitting costs
    more walking than it saves decoding. How much is SMB is sampled across the file, within a
    tenth of what tshark counts over every frame."""
    for capture, split in ((large, 2), (mixed, 1)):
        frames = read_frames(str(capture), Diagnostics())
        try:
            sampled = smb_share(frames)
        finally:
            frames.close()
        assert sampled is not None
        assert abs(sampled - smb_bytes(capture)) < 0.1, capture.name
        assert (sampled >= SPLIT_SMB_SHARE) == (split == 2)
        assert shares(InputFile(str(capture)), None, 2) == split


@pytest.mark.parametrize("form", ["pcap", "pcap-big-ns", "pcapng", "pcapng-big"])
def test_frames_sampled_across_a_capture_are_its_frames(
    mixed: Path, tmp_path: Path, form: str
) -> None:
    """A look across a capture finds records from places in the middle of the file: every
    frame it takes is one of the capture's frames, at places spread over all of it, and a
    capture's share of SMB is sampled alike whatever its file format."""
    _, records = read_pcap_records(mixed)
    capture = tmp_path / "written"
    big = form.endswith("-big") or form.endswith("-big-ns")
    if form.startswith("pcapng"):
        capture.write_bytes(pcapng(records, ETHERNET, big=big))
    else:
        write_pcap(capture, ETHERNET, records, big_endian=big, nanoseconds=big)
    frames = read_frames(str(capture), Diagnostics())
    try:
        assert frames.mapped is not None
        sampled = [
            (linktype, start, bytes(frames.mapped[start:stop]))
            for linktype, start, stop in frames.sample(SAMPLE_PLACES, SAMPLE_FRAMES)
        ]
        share = smb_share(frames)
    finally:
        frames.close()
    assert {frame for _, _, frame in sampled} <= {frame for _, _, frame in records}
    assert {linktype for linktype, _, _ in sampled} == {ETHERNET}
    assert len(sampled) > 0.9 * SAMPLE_PLACES * SAMPLE_FRAMES
    starts = sorted(start for _, start, _ in sampled)
    size = capture.stat().st_size
    assert starts[0] < size / SAMPLE_PLACES and starts[-1] > size * 0.9
    assert share is not None and abs(share - smb_bytes(mixed)) < 0.1


@pytest.mark.parametrize("form", ["pcap", "pcapng"])
def test_a_look_across_a_hostile_file_costs_nothing_but_the_look(tmp_path: Path, form: str) -> None:
    """Random bytes after a valid file header, and the same bytes laid out as plausible
    headers that chain for a while and then break: the look finds no frames or real ones,
    never raises, and answers within its bounds."""
    rng = random.Random(15)
    capture = tmp_path / form
    head = pcapng([], ETHERNET) if form == "pcapng" else bytes.fromhex("d4c3b2a1") + bytes(20)
    noise = rng.randbytes(2 << 20)
    # records of 40 bytes that claim to chain (a pcap record header, a pcapng block's lengths)
    fake = b"".join(
        struct.pack("<IIII", 1_600_000_000, 0, 24, 24) + rng.randbytes(24)
        if form == "pcap"
        else struct.pack("<II", 6, 40) + rng.randbytes(28) + struct.pack("<I", 40)
        for _ in range(7)
    )
    capture.write_bytes(head + noise + (fake + rng.randbytes(13)) * 20_000)
    frames = read_frames(str(capture), Diagnostics())
    try:
        sampled = list(frames.sample(SAMPLE_PLACES, SAMPLE_FRAMES))
        share = smb_share(frames)
    finally:
        frames.close()
    assert all(0 <= start <= stop <= capture.stat().st_size for _, start, stop in sampled)
    assert share is None or 0 <= share <= 1


def noting_the_worker(
    source: InputFile, diagnostics: Diagnostics, input_format: str | None, options: Options
) -> Iterator[SmbEvent]:
    """``input_events``, with the process that read the input noted as a warning."""
    diagnostics.warn("read_by", str(os.getpid()))
    return input_events(source, diagnostics, input_format, options)


def test_many_inputs_go_to_a_few_long_lived_workers_and_come_back_in_order() -> None:
    logs = sorted((DATA / "host").glob("*")) + sorted((DATA / "otrf").glob("*.json.gz"))
    inputs = [InputFile(str(path)) for path in logs * 4]
    readers = Readers(noting_the_worker, share_events)
    work = [Work(source, True) for source in inputs]
    runs = []
    for run in parallel_inputs(readers, work, None, 2, Options()):
        events = [event.to_dict() for event in run.events]
        runs.append((run.path, events, run.diagnostics.examples["read_by"]))
    assert [path for path, _, _ in runs] == [source.name for source in inputs]
    workers = {pid for _, _, pids in runs for pid in pids}
    assert len(workers) == 2 and str(os.getpid()) not in workers
    for source, (_, events, _) in zip(inputs, runs, strict=True):
        assert events == [e.to_dict() for e in input_events(source, Diagnostics())]


def test_many_inputs_with_j2_write_what_one_process_writes() -> None:
    """The command line, with the corpus's logs and captures: same bytes, same warnings (a
    damaged capture among them: exit 3 both times)."""
    inputs = [DATA / "host", DATA / "otrf", SMB2_CAPTURE]
    one = smbwatch("events", *inputs, "-f", "jsonl", "-j", "1").clean(3)
    two = smbwatch("events", *inputs, "-f", "jsonl", "-j", "2").clean(3)
    assert one.stdout == two.stdout and one.stdout.count("\n") > 1000
    assert one.stderr == two.stderr


def test_workers_send_the_lines_when_the_events_are_only_written() -> None:
    """JSON lines out: the workers make the lines (``Readers.render``), the same as the
    events read in this process make."""
    logs = sorted((DATA / "host").glob("*"))[:6] + [SMB2_CAPTURE]
    inputs = [InputFile(str(path)) for path in logs]
    readers = Readers(noting_the_worker, share_events, jsonl.line)
    work = [Work(source, True) for source in inputs]
    read = 0
    for source, run in zip(inputs, parallel_inputs(readers, work, None, 2, Options()), strict=True):
        assert run.lines is not None
        lines = list(run.lines)
        assert str(os.getpid()) not in run.diagnostics.examples["read_by"]
        assert not list(run.events)
        assert lines == [jsonl.line(event) for event in input_events(source, Diagnostics())]
        read += len(lines)
    assert read > 100


def test_detect_over_many_inputs_with_j2_alerts_as_one_process_does() -> None:
    """``detect`` over several inputs merges them in a temporary case, many inputs to a
    transaction, read by the workers: with the built-in and the shared Sigma rules, the same
    alerts in the same order, every field, and the same warnings as one process."""
    inputs = [DATA / "host", DATA / "otrf", DATA / "pcap", SMB2_CAPTURE]
    rules = shared_dir() / "sigma" / "windows-security"
    command = ("detect", *inputs, "--rules", rules, "-f", "jsonl")
    one = smbwatch(*command, "-j", "1").clean(1)
    two = smbwatch(*command, "-j", "2").clean(1)
    assert one.stdout == two.stdout and one.stderr == two.stderr
    alerts = [json.loads(line) for line in one.stdout.splitlines()]
    named = {item["source_file"] for alert in alerts for item in alert["evidence"]}
    assert any(name.endswith(".evtx") for name in named)  # host logs and captures alike
    assert any(name.endswith((".cap", ".pcap", ".pcapng")) for name in named)
    shared = {yaml.safe_load(rule.read_text())["id"] for rule in rules.glob("*.yml")}
    assert {alert["rule_id"] for alert in alerts} & shared
