"""Mutation fuzzing of every reader and decoder entry point, seeded with the shared corpus.

Hypothesis draws mutations of real inputs (bit flips, boundary integers written over fields,
bytes inserted, cut out or repeated, truncation) and each mutated input goes through the same
entry point a user's file does. The property is the project's rule for hostile input: events and
counted warnings, never an exception (an input that is no capture or log at all is a user error,
``InputError``), and every event writable as a JSON line and a CSV row that read back whole,
with no raw control or direction character in either.

Entry points: the capture reader (whole-file mutations of pcap and pcapng), the SMB1 and SMB2
decoders through the pipeline (mutations inside the TCP payload of SMB frames, so that they get
past the IP and TCP layers), DCE/RPC straight over TCP (the same, on a PsExec capture), each
Windows log format (EVTX with its chunk checksums resealed, so the records themselves are read;
event XML; NXLog JSON lines with values of other types and sizes; Splunk text; gzip of each),
zip archives, and the sinks (any text at all in any field; the HTML report's page too).

The budget is a Hypothesis profile: ``ci`` (the default: derandomized, so every run tries the
same examples and a failure is never a flake; a few minutes for the whole module) and ``dev``,
random and as long as ``scripts/fuzz.sh --minutes N`` runs it. A failure prints the shrunk
(minimal) input; it becomes a regression test in ``test_hostile_inputs.py``.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import os
import re
import struct
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hostile_support import DATA, EVTX, NXLOG, RPC_OVER_TCP, read_once
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import read_pcap_records, write_pcap
from winlog_convert import to_splunk_text, to_xml_document
from winlog_oracle import evtx_events
from winlog_surgery import CHUNK_SIZE, FILE_HEADER_SIZE, reseal_chunk

from smbwatch.capture.streams import native_path
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.options import HASHES, Options
from smbwatch.pipeline import InputError, input_events
from smbwatch.sinks.csv import write_csv
from smbwatch.sinks.escape import CSV_UNSAFE, JSON_UNSAFE
from smbwatch.sinks.extract import FileExtractor
from smbwatch.sinks.jsonl import write_jsonl
from smbwatch.sinks.report_html import write_report

pytestmark = pytest.mark.fuzz

# ci: the same examples every run (derandomized: a failure is never a flake); dev: random ones,
# as many as scripts/fuzz.sh asks for. Neither keeps a database of examples.
for _profile, _examples, _random in (("ci", "200", False), ("dev", "5000", True)):
    settings.register_profile(
        _profile,
        max_examples=int(os.environ.get("SMBWATCH_FUZZ_EXAMPLES", _examples)),
        derandomize=not _random,
        deadline=timedelta(seconds=60),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        database=None,
    )
settings.load_profile(os.environ.get("SMBWATCH_FUZZ_PROFILE", "ci"))

SURICATA = DATA / "suricata-verify"
CAPTURES = [
    SURICATA / "smb2-01" / "smb2-peter.pcap",
    SURICATA / "smb1-02" / "smb1_osx.pcap",
    SURICATA / "smb2-async" / "input.pcap",
    SURICATA / "smb2-delete" / "input.pcap",
    SURICATA / "smb2-06" / "20171220_smb_net_user.pcap",
    SURICATA / "smb3-01" / "input.pcap",
    SURICATA / "smb3-03-midstream" / "input.pcap",
    SURICATA / "smb-eicar-file-segmentation-random" / "input.pcap",
    SURICATA / "filestore-filecontainer-smb1-data-offset" / "input.pcap",
    RPC_OVER_TCP,
    DATA / "otrf" / "covenant_sharpsc_start_dcerpc_smb_svcctl_2020-08-06030120.cap",
]
PCAPNG = DATA / "otrf" / "schtask_create_2020-12-1907003032.pcapng"
SMALL_EVTX = next((DATA / "host").glob("MITRE-EVTX_TA0008*PSexec*.evtx"))
EXECUTIONS: Counter[str] = Counter()  # examples run, by entry point (scripts/fuzz.sh sums them)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)

# One mutation: what to do, where (taken modulo the length), with what bytes.
Mutation = tuple[str, int, bytes]
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(("flip", "set", "interesting", "insert", "delete", "repeat", "cut")),
        st.integers(0, 1 << 32),
        st.binary(min_size=1, max_size=16),
    ),
    min_size=1,
    max_size=6,
)


def mutate(seed: bytes, mutations: list[Mutation]) -> bytes:
    """``seed`` with the mutations applied."""
    data = bytearray(seed)
    for kind, where, value in mutations:
        if not data:
            break
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << (value[0] % 8)
        elif kind == "set":
            data[at : at + len(value)] = value
        elif kind == "interesting":
            number = INTERESTING[value[0] % len(INTERESTING)]
            size = (1, 2, 4, 8)[value[-1] % 4]
            data[at : at + size] = (number & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        elif kind == "insert":
            data[at:at] = value * (1 + value[0] % 64)
        elif kind == "delete":
            del data[at : at + 1 + value[0]]
        elif kind == "repeat":
            data[at:at] = data[at : at + 1 + value[0] * 8]
        else:  # cut
            del data[at:]
    return bytes(data)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smbwatch-fuzz-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module", autouse=True)
def executions_report() -> Iterator[None]:
    """Where ``SMBWATCH_FUZZ_REPORT`` names a file, the examples run are added to it."""
    yield
    report = os.environ.get("SMBWATCH_FUZZ_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            for name, count in sorted(EXECUTIONS.items()):
                out.write(f"{name}\t{count}\n")


def run_input(
    path: Path, name: str, options: Options | None = None, *, both_paths: bool = False
) -> list[SmbEvent]:
    """The events of one mutated input through the user's entry point; checks the property.
    With ``both_paths`` (a capture), the Python capture path must say what the native one
    said, events and warnings alike."""
    EXECUTIONS[name] += 1
    options = options or Options(hashes=())
    diagnostics = Diagnostics()
    try:
        events = list(input_events(str(path), diagnostics, None, options))
    except InputError:
        return []  # no capture or log at all: the user is told in one line
    check_sinks([event.to_dict() for event in events])
    assert sum(diagnostics.counts.values()) >= len(diagnostics.damaged_inputs)
    if both_paths:
        assert native_path()
        native = (
            [json.dumps(event.to_dict()) for event in events],
            dict(diagnostics.counts),
            dict(diagnostics.examples),
            list(diagnostics.damaged_inputs),
        )
        assert read_once(path, options, pure=True) == native
    return events


def check_sinks(rows: list[dict]) -> None:
    """Every row written as JSON lines and CSV reads back whole, with no raw unsafe character."""
    out = io.StringIO()
    write_jsonl(rows, out)
    text = out.getvalue()
    assert not JSON_UNSAFE.search(text)
    assert [json.loads(line) for line in text.splitlines()] == json.loads(
        json.dumps(rows, default=str)
    )
    table = io.StringIO(newline="")
    write_csv(rows, table, FIELD_NAMES)
    assert not CSV_UNSAFE.search(table.getvalue())
    assert len(list(csv.reader(io.StringIO(table.getvalue(), newline="")))) == len(rows) + 1


# captures -----------------------------------------------------------------------------------


def _capture_seed(index: int) -> bytes:
    return CAPTURES[index % len(CAPTURES)].read_bytes()


@given(st.integers(0, len(CAPTURES)), MUTATIONS)
def test_fuzz_capture_files(scratch: Path, seed: int, mutations: list[Mutation]) -> None:
    """Whole-file mutations: headers, record lengths, link and IP layers."""
    source = PCAPNG.read_bytes() if seed == len(CAPTURES) else _capture_seed(seed)
    path = scratch / "capture"
    path.write_bytes(mutate(source, mutations))
    run_input(path, "capture_files", both_paths=True)


def _payload_frames(path: Path) -> tuple[int, list[tuple[int, int, bytes]], list[int]]:
    """The records of a capture and, for each, where the TCP payload starts in the frame
    (Ethernet, IPv4 without options), or 0 when it has none."""
    linktype, records = read_pcap_records(path)
    starts = []
    for _, _, frame in records:
        start = 34 + (frame[46] >> 4) * 4 if len(frame) > 54 else 0
        tcp = frame[12:14] == b"\x08\x00" and frame[14] == 0x45 and frame[23] == 6
        starts.append(start if tcp and start < len(frame) else 0)
    return linktype, records, starts


_PAYLOADS: dict[Path, tuple[int, list[tuple[int, int, bytes]], list[int]]] = {}
MAX_PAYLOAD = 65535 - 20 - 60  # what an IPv4 packet can carry after its and TCP's headers


def payload_mutant(path: Path, target: Path, frames: list[int], mutations: list[Mutation]) -> None:
    """The capture with the TCP payload of some frames mutated (the SMB, NetBIOS or DCE/RPC
    bytes), every other layer intact (the IPv4 length follows the payload's)."""
    if path not in _PAYLOADS:
        _PAYLOADS[path] = _payload_frames(path)
    linktype, records, starts = _PAYLOADS[path]
    with_payload = [i for i, start in enumerate(starts) if start]
    chosen = {with_payload[i % len(with_payload)] for i in frames}
    out = []
    for index, (seconds, micros, frame) in enumerate(records):
        if index in chosen:
            start = starts[index]
            payload = mutate(frame[start:], mutations)[:MAX_PAYLOAD]
            total = start - 14 + len(payload)
            frame = frame[:16] + struct.pack("!H", total) + frame[18:start] + payload
        out.append((seconds, micros, frame))
    write_pcap(target, linktype, out)


SMB_CAPTURES = [c for c in CAPTURES if c != RPC_OVER_TCP]


@given(
    st.sampled_from(SMB_CAPTURES),
    st.lists(st.integers(0, 1 << 16), min_size=1, max_size=4),
    MUTATIONS,
    st.sampled_from(["skip", "hash", "extract"]),
)
def test_fuzz_smb_messages(
    scratch: Path, seed: Path, frames: list[int], mutations: list[Mutation], files: str
) -> None:
    """The SMB1 and SMB2 decoders (NetBIOS framing, every command, NTLMSSP, pipes) through the
    pipeline, with file data skipped, hashed, or hashed and extracted (names from the wire in
    the sidecars)."""
    path = scratch / "smb.pcap"
    payload_mutant(seed, path, frames, mutations)
    if files == "extract":
        options = Options(extract=FileExtractor(scratch / "files"))
    else:
        options = Options(hashes=HASHES if files == "hash" else ())
    run_input(path, "smb_messages", options, both_paths=files != "extract")


@given(st.lists(st.integers(0, 1 << 16), min_size=1, max_size=4), MUTATIONS)
def test_fuzz_dcerpc_over_tcp(scratch: Path, frames: list[int], mutations: list[Mutation]) -> None:
    """DCE/RPC straight over TCP: binds, fragments, auth trailers, the svcctl stubs."""
    path = scratch / "rpc.pcap"
    payload_mutant(RPC_OVER_TCP, path, frames, mutations)
    run_input(path, "dcerpc_over_tcp", both_paths=True)


# Windows logs -------------------------------------------------------------------------------


@given(st.integers(0, 1 << 16), MUTATIONS, st.booleans())
def test_fuzz_evtx(scratch: Path, where: int, mutations: list[Mutation], compress: bool) -> None:
    """EVTX records: mutated inside a chunk whose checksums are then resealed (as an attacker
    who edits a log would), so the records themselves are parsed; sometimes gzipped."""
    data = bytearray(SMALL_EVTX.read_bytes())
    chunks = (len(data) - FILE_HEADER_SIZE) // CHUNK_SIZE
    index = where % chunks
    start = FILE_HEADER_SIZE + index * CHUNK_SIZE
    records = mutate(bytes(data[start + 512 : start + CHUNK_SIZE]), mutations)
    data[start + 512 : start + CHUNK_SIZE] = records[: CHUNK_SIZE - 512].ljust(
        CHUNK_SIZE - 512, b"\0"
    )
    reseal_chunk(data, index)
    path = scratch / "log.evtx"
    path.write_bytes(gzip.compress(bytes(data), 1) if compress else bytes(data))
    run_input(path, "evtx")


@pytest.fixture(scope="module")
def oracle() -> list:
    return [event for event in evtx_events(EVTX) if event.event_id == 5145][:12]


def _text_log(
    scratch: Path, name: str, text: str, mutations: list[Mutation], compress: bool, entry: str
) -> None:
    data = mutate(text.encode(), mutations)
    path = scratch / name
    path.write_bytes(gzip.compress(data, 1) if compress else data)
    run_input(path, entry)


@given(MUTATIONS, st.booleans())
def test_fuzz_event_xml(
    scratch: Path, oracle: list, mutations: list[Mutation], compress: bool
) -> None:
    _text_log(scratch, "log.xml", to_xml_document(oracle), mutations, compress, "event_xml")


@given(MUTATIONS, st.booleans())
def test_fuzz_splunk_text(
    scratch: Path, oracle: list, mutations: list[Mutation], compress: bool
) -> None:
    text = "".join(to_splunk_text(event) for event in oracle)
    _text_log(scratch, "log.txt", text, mutations, compress, "splunk_text")


def _nxlog_records() -> list[dict]:
    with gzip.open(NXLOG, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if '"EventID":5' in line or "4624" in line][:12]


NXLOG_RECORDS = _nxlog_records()
# Numbers no encoder writes, put in place of their marker once the text is written.
RAW_NUMBERS = {
    '"@huge@"': "9" * 5000,
    '"@-huge@"': "-" + "9" * 5000,
    '"@1e999@"': "1e999",
    '"@Infinity@"': "Infinity",
    '"@NaN@"': "NaN",
}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(1 << 63, 1 << 70)
    | st.floats()
    | st.text()
    | st.sampled_from([marker.strip('"') for marker in RAW_NUMBERS])
    | st.sampled_from(["9" * 5000, "0x" + "f" * 3600, "-", "", " 0x2 ", "1e999", "9020-01-01"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=6,
)
# The fields the readers read (numbers, times, names), and any other by its position.
READ_FIELDS = (
    "EventID", "RecordNumber", "EventRecordID", "AccessMask", "LogonType", "IpPort", "IpAddress",
    "SubjectLogonId", "TargetLogonId", "StartType", "ServiceType", "EventTime",
    "EventReceivedTime", "@timestamp", "Hostname", "ShareName", "RelativeTargetName", "Message",
)  # fmt: skip
FIELDS = st.sampled_from(READ_FIELDS) | st.integers(0, 100)


@given(
    st.lists(st.tuples(st.integers(0, 100), FIELDS, JSON_VALUES), max_size=6),
    st.none() | JSON_VALUES,
    MUTATIONS,
    st.sampled_from(["lines", "array", "winlogbeat"]),
    st.booleans(),
)
def test_fuzz_json_logs(
    scratch: Path,
    changes: list[tuple[int, str | int, object]],
    event_data: object,
    mutations: list[Mutation],
    layout: str,
    raw: bool,
) -> None:
    """NXLog's records with fields given any JSON value (numbers past 64 bits, 1e999, NaN,
    lists...), as lines, an array or Winlogbeat documents (whose event_data may be of any
    shape); with ``raw`` the text is mutated as bytes too."""
    records = [dict(record) for record in NXLOG_RECORDS]
    for which, field, value in changes:
        record = records[which % len(records)]
        record[field if isinstance(field, str) else list(record)[field % len(record)]] = value
    if layout == "winlogbeat":
        records = [
            {
                "@timestamp": r.get("@timestamp"),
                "winlog": {"event_id": r.get("EventID"), "event_data": event_data or r},
            }
            for r in records
        ]
    if layout == "array":
        text = json.dumps(records, indent=1)
    else:
        text = "".join(json.dumps(record) + "\n" for record in records)
    for marker, number in RAW_NUMBERS.items():
        text = text.replace(marker, number)
    data = mutate(text.encode(), mutations) if raw else text.encode()
    path = scratch / "log.json"
    path.write_bytes(data)
    run_input(path, "json_logs")


# containers ---------------------------------------------------------------------------------


@given(MUTATIONS, st.sampled_from(["deflate", "stored"]))
def test_fuzz_zip_archives(scratch: Path, mutations: list[Mutation], method: str) -> None:
    """A zip archive of a capture and a log, mutated as bytes (headers, directory, data)."""
    packed = io.BytesIO()
    compression = zipfile.ZIP_DEFLATED if method == "deflate" else zipfile.ZIP_STORED
    with zipfile.ZipFile(packed, "w", compression=compression) as archive:
        archive.write(CAPTURES[1], "capture.pcap")
        archive.write(SMALL_EVTX, "log.evtx")
    path = scratch / "inputs.zip"
    path.write_bytes(mutate(packed.getvalue(), mutations))
    from smbwatch.pipeline import iter_events

    EXECUTIONS["zip_archives"] += 1
    diagnostics, errors = Diagnostics(), []
    options = Options(hashes=())
    events = list(iter_events([str(path)], diagnostics, None, errors, 1, options))
    check_sinks([event.to_dict() for event in events])


# sinks --------------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
TEXT_FIELDS = ("path", "share", "user", "pipe", "new_path", "service_name", "image_path")


@given(st.lists(st.tuples(st.sampled_from(TEXT_FIELDS), ANY_TEXT), max_size=8), ANY_TEXT)
def test_fuzz_sinks(fields: list[tuple[str, str]], argument: str) -> None:
    """Any text at all, lone surrogates and every control included, in any field."""
    EXECUTIONS["sinks"] += 1
    event = SmbEvent(time=0, source="network", action="write", rpc_args={"x": argument})
    for name, value in fields:
        setattr(event, name, value)
    check_sinks([event.to_dict()])


DATA_ELEMENT = re.compile(
    r'<script type="application/json" id="smbwatch-data">(.*?)</script>', re.S
)


@given(ANY_TEXT, st.lists(st.tuples(st.sampled_from(TEXT_FIELDS), ANY_TEXT), max_size=8))
@example("a\udcff</title><script>", [("path", "</script><!--\u2028\udcff&")])
def test_fuzz_report_page(title: str, fields: list[tuple[str, str]]) -> None:
    """Any text at all as the page's title (an input's name) and in the rows of its data: the
    data element is ASCII with no markup and reads back whole, and the title is text. (The
    page goes out through ``Output``, whose stream writes a lone surrogate escaped.)"""
    EXECUTIONS["report_page"] += 1
    row = dict(fields)
    data = {"timeline": {"rows": [row], "total": 1, "sampled": False}, "files": [row]}
    out = io.StringIO()
    write_report(out, title, data)
    page = out.getvalue()
    found = DATA_ELEMENT.findall(page)
    assert len(found) == 1 and found[0].isascii()
    assert "<" not in found[0] and ">" not in found[0] and "&" not in found[0]
    assert json.loads(found[0]) == json.loads(json.dumps(data))
    head = page.split("</title>", 1)[0].split("<title>", 1)[1]
    assert "<" not in head and html.unescape(head) == title
