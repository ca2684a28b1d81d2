"""The classes of hostile input a mutation fuzzer found (issue 16), each built from a real seed.

Each test mutates a real capture or log of the shared corpus the way the class describes and runs
the installed command line on it: no traceback, the documented exit code, the warning that says
what was lost, and every other record still written. The bombs and the endless Splunk event are
run in a process of their own whose peak memory is read from the kernel.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import pytest
from hostile_support import (
    EVTX,
    MIB,
    PCAPNG,
    SMB2_CAPTURE,
    nxlog_lines,
    peak_rss,
    smbwatch,
    write_lines,
)
from winlog_convert import to_splunk_text, to_winlogbeat, to_xml_document
from winlog_oracle import evtx_events

pytestmark = pytest.mark.unit

MAX_PEAK = 100 * MIB
HUGE = "9" * 5000  # past Python's 4,300-digit conversion limit


@pytest.fixture(scope="module")
def oracle() -> tuple:
    """The 5145 records of a real EVTX as python-evtx reads them (to write as XML, text...)."""
    return tuple(event for event in evtx_events(EVTX) if event.event_id == 5145)[:20]


def nxlog_file(tmp_path: Path, mutate: str | None = None, raw: str | None = None) -> Path:
    """The corpus' NXLog share and logon records as JSON lines; the fourth one's ``mutate``
    field replaced by the JSON text ``raw`` (a number no JSON encoder would write)."""
    lines = [json.dumps(record) for record in nxlog_lines(5140, 5145, 4624, 7045, 4697)]
    if mutate is not None:
        record = json.loads(lines[3])
        record[mutate] = "@@RAW@@"
        lines[3] = json.dumps(record).replace('"@@RAW@@"', raw or "")
    return write_lines(tmp_path / "nxlog.json", lines)


def same_but_file(events: list[dict], others: list[dict]) -> bool:
    """The same events, but for the name of the file they come from."""
    strip = [{k: v for k, v in e.items() if k != "source_file"} for e in (*events, *others)]
    return strip[: len(events)] == strip[len(events) :]


def keys(events: list[dict]) -> list[tuple]:
    return [(e.get("event_code"), e.get("time"), e.get("path"), e.get("user")) for e in events]


# 1, 2: numbers no Windows field can hold ----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw"),
    [("RecordNumber", HUGE), ("RecordNumber", "1e999"), ("RecordNumber", "Infinity")],
)
def test_an_impossible_record_number_costs_that_field(tmp_path: Path, field: str, raw: str) -> None:
    clean = smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path)).clean(0).events
    run = smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path, field, raw)).clean(0)
    assert run.warned("number_out_of_range") == 1
    assert keys(run.events) == keys(clean)  # every record kept
    lost = [a for a, b in zip(clean, run.events, strict=True) if a != b]
    assert len(lost) == 1 and "source_ref" not in run.events[clean.index(lost[0])]


def test_huge_numbers_in_a_json_array_cost_their_field(tmp_path: Path) -> None:
    records = nxlog_lines(5140, 5145, 4624)
    text = json.dumps(records, indent=1)
    clean = smbwatch("events", "-f", "jsonl", write_lines(tmp_path / "a.json", [text])).events
    huge = text.replace(f'"RecordNumber": {records[0]["RecordNumber"]}', f'"RecordNumber": {HUGE}')
    run = smbwatch("events", "-f", "jsonl", write_lines(tmp_path / "b.json", [huge])).clean(0)
    assert run.warned("number_out_of_range") == 1 and keys(run.events) == keys(clean)


@pytest.mark.parametrize("digits", [17, 20, 3600])  # 68 and 80 bits: as short as 2**64's text
def test_a_hex_access_mask_past_64_bits_is_dropped_and_the_rest_written(
    tmp_path: Path, digits: int
) -> None:
    mask = '"0x' + "f" * digits + '"'
    run = smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path, "AccessMask", mask)).clean(0)
    assert run.warned("number_out_of_range") == 1
    shares = [e for e in run.events if e["action"] in ("access_check", "tree_connect")]
    assert [("access_mask" in e) for e in shares].count(False) == 1
    assert len(run.events) == len(smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path)).events)


def test_an_xml_event_id_of_5000_digits_is_skipped_the_others_read(
    tmp_path: Path, oracle: tuple
) -> None:
    document = to_xml_document(list(oracle))
    path = tmp_path / "events.xml"
    path.write_text(document.replace("<EventID>5145</EventID>", f"<EventID>{HUGE}</EventID>", 1))
    run = smbwatch("events", "-f", "jsonl", path).clean(0)
    assert run.warned("number_out_of_range") == 1
    assert [e["source_ref"] for e in run.events] == [e.record_id for e in oracle[1:]]


def test_a_splunk_event_code_of_5000_digits_is_skipped_the_others_read(
    tmp_path: Path, oracle: tuple
) -> None:
    blocks = [to_splunk_text(event) for event in oracle]
    blocks[0] = blocks[0].replace("EventCode=5145", f"EventCode={HUGE}")
    path = tmp_path / "events.txt"
    path.write_text("".join(blocks))
    run = smbwatch("events", "-f", "jsonl", path).clean(0)
    assert run.warned("number_out_of_range") == 1
    assert [e["source_ref"] for e in run.events] == [e.record_id for e in oracle[1:]]


# 3: shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_data", [7, "text", True, ["a", "b"]])
def test_winlogbeat_event_data_of_another_shape_costs_its_fields(
    tmp_path: Path, oracle: tuple, event_data: object
) -> None:
    documents = [to_winlogbeat(event) for event in oracle]
    documents[0]["winlog"]["event_data"] = event_data
    path = write_lines(tmp_path / "beat.json", [json.dumps(d) for d in documents])
    run = smbwatch("events", "-f", "jsonl", path).clean(0)
    assert run.warned("json_bad_shape") == 1
    assert [e["source_ref"] for e in run.events] == [e.record_id for e in oracle]
    assert "share" not in run.events[0] and all("share" in e for e in run.events[1:])


# 4: times no date can show -----------------------------------------------------------------


def pcapng_with_tsresol(tmp_path: Path, value: int) -> Path:
    """The real pcapng with its interface's if_tsresol option (µs: 6) set to ``value``."""
    data = bytearray(PCAPNG.read_bytes())
    option = data.index(b"\x09\x00\x01\x00\x06")  # if_tsresol, length 1, value 6
    data[option + 4] = value
    path = tmp_path / f"tsresol-{value}.pcapng"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("tsresol", [0, 1, 3, 0x80])
def test_an_if_tsresol_that_puts_frames_past_year_9999_leaves_their_time_out(
    tmp_path: Path, tsresol: int
) -> None:
    clean = smbwatch("events", "-f", "jsonl", "--no-hash", PCAPNG).clean(0).events
    path = pcapng_with_tsresol(tmp_path, tsresol)
    run = smbwatch("events", "-f", "jsonl", "--no-hash", path).clean(0)
    assert run.warned("time_out_of_range") > 0
    assert len(run.events) == len(clean) > 0
    assert all("time" not in event for event in run.events)
    for format_ in ("csv", "table"):
        smbwatch("events", "-f", format_, "--no-hash", path).clean(0)
    alerts = smbwatch("detect", "-f", "jsonl", "--no-hash", path)
    assert "Traceback" not in alerts.stderr and alerts.code in (0, 1)


def test_a_timestamp_of_2_to_the_64_minus_1_costs_that_frames_time(tmp_path: Path) -> None:
    data = bytearray(PCAPNG.read_bytes())
    first = 0
    while struct.unpack_from("<I", data, first)[0] != 6:  # to the first Enhanced Packet Block
        first += struct.unpack_from("<I", data, first + 4)[0]
    struct.pack_into("<II", data, first + 12, 0xFFFFFFFF, 0xFFFFFFFF)
    path = tmp_path / "late.pcapng"
    path.write_bytes(bytes(data))
    run = smbwatch("events", "-f", "jsonl", "--no-hash", path).clean(0)
    assert run.warned("time_out_of_range") == 1
    assert len(run.events) == len(smbwatch("events", "-f", "jsonl", "--no-hash", PCAPNG).events)


def test_an_nxlog_received_time_in_year_9020_is_not_taken_as_a_zone(tmp_path: Path) -> None:
    clean = smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path)).events
    record = nxlog_lines(5140, 5145, 4624, 7045, 4697)[3]
    received = '"9' + record["EventReceivedTime"][1:] + '"'
    run = smbwatch("events", "-f", "jsonl", nxlog_file(tmp_path, "EventReceivedTime", received))
    run.clean(0)
    assert run.warned("time_zone_implausible") == 1
    assert len(run.events) == len(clean) and all("time" in e for e in run.events)
    # read as UTC, its local time as logged (the others have their zone from their offset)
    assert run.events[3]["time"].startswith(record["EventTime"].replace(" ", "T"))


# 5: truncated compressed logs ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "xml"])
def test_a_truncated_compressed_log_is_damage_and_keeps_what_came_before(
    tmp_path: Path, oracle: tuple, kind: str
) -> None:
    if kind == "json":
        text = "".join(json.dumps(r) + "\n" for r in nxlog_lines(5140, 5145, 4624, 7045, 4697))
        text = text * 200  # long enough for many cuts through its records
    else:
        text = to_xml_document(list(oracle) * 20)
    packed = gzip.compress(text.encode())
    whole = tmp_path / f"whole.{kind}.gz"
    whole.write_bytes(packed)
    every = smbwatch("events", "-f", "jsonl", whole).clean(0).events
    counts = []
    for cut in (5, 10, 18, 30, 100, len(packed) // 3, len(packed) // 2, len(packed) - 9):
        path = tmp_path / f"cut-{cut}.{kind}.gz"
        path.write_bytes(packed[:cut])
        run = smbwatch("events", "-f", "jsonl", path).clean(3)
        assert run.warned("input_damaged") >= 1 and "truncated" in run.stderr
        assert same_but_file(run.events, every[: len(run.events)])  # what came before the cut
        counts.append(len(run.events))
    assert counts == sorted(counts)  # the later the cut, the more is read
    assert counts[0] == 0 and 0 < counts[5] < len(every) and counts[-1] > len(every) * 0.9


# 6: decompression bombs ---------------------------------------------------------------------


def gzip_bomb(tmp_path: Path, name: str, seed: bytes, zeros: int) -> Path:
    """A real file followed by ``zeros`` zero bytes, gzip-compressed (zeros shrink 1,000-fold)."""
    packer = gzip.GzipFile(tmp_path / name, "wb", compresslevel=9)
    with packer:
        packer.write(seed)
        block = bytes(MIB)
        for _ in range(zeros // MIB):
            packer.write(block)
    return tmp_path / name


def test_an_evtx_gzip_bomb_costs_the_input_not_the_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path, "bomb.evtx.gz", EVTX.read_bytes(), 1024 * MIB)
    assert bomb.stat().st_size < 1.2 * MIB  # a gigabyte of zeros in about a megabyte
    run, peak = peak_rss("events", "-f", "jsonl", bomb)
    run.clean(3)
    assert "decompression stopped" in run.stderr and "bomb" in run.stderr
    real = smbwatch("events", "-f", "jsonl", EVTX).events
    assert keys(run.events) == keys(real)  # the real records before the zeros: all read
    assert peak < MAX_PEAK, f"peak {peak >> 20} MiB"


def test_a_capture_gzip_bomb_costs_the_input_not_the_memory(tmp_path: Path) -> None:
    seed = SMB2_CAPTURE.read_bytes()
    bomb = gzip_bomb(tmp_path, "bomb.pcap.gz", seed, 256 * MIB)
    run, peak = peak_rss("events", "-f", "jsonl", bomb)
    run.clean(3)
    assert "decompression stopped" in run.stderr
    assert len(run.events) == len(smbwatch("events", "-f", "jsonl", SMB2_CAPTURE).events) > 0
    assert peak < MAX_PEAK, f"peak {peak >> 20} MiB"


# 7: an endless Splunk event -----------------------------------------------------------------


def test_a_splunk_event_of_two_million_lines_is_skipped_in_bounded_memory(
    tmp_path: Path, oracle: tuple
) -> None:
    blocks = [to_splunk_text(event) for event in oracle]
    endless = blocks[0].replace("Message=", "Message=" + "Share Name:\t\\\\*\\C$\n" * 2_000_000)
    path = tmp_path / "endless.txt"
    path.write_text("".join([endless, *blocks[1:]]))
    run, peak = peak_rss("events", "-f", "jsonl", path)
    run.clean(0)
    assert run.warned("splunk_event_too_large") == 1
    assert [e["source_ref"] for e in run.events] == [e.record_id for e in oracle[1:]]
    assert peak < MAX_PEAK, f"peak {peak >> 20} MiB"


# 8, 9: what lands in CSV and JSON lines -----------------------------------------------------


def capture_renaming(tmp_path: Path, name: str) -> Path:
    """The real SMB2 capture with every ``file69.txt`` (UTF-16) renamed ``name`` (as long)."""
    assert len(name) == len("file69.txt")
    data = SMB2_CAPTURE.read_bytes()
    old, new = "file69.txt".encode("utf-16-le"), name.encode("utf-16-le")
    assert data.count(old) >= 3
    path = tmp_path / "renamed.pcap"
    path.write_bytes(data.replace(old, new))
    return path


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_a_carriage_return_in_a_name_from_the_wire_never_splits_a_csv_row(
    tmp_path: Path,
) -> None:
    path = capture_renaming(tmp_path, "f\r=1+1.txt")
    events = smbwatch("events", "-f", "jsonl", path).clean(0).events
    run = smbwatch("events", "-f", "csv", path).clean(0)
    assert "\r" not in run.stdout
    rows = csv_rows(run.stdout)
    assert len(rows) == len(events)
    named = [row for row in rows if "=1+1" in row["path"]]
    assert named and all(row["path"] == "f\\x0d=1+1.txt" for row in named)
    assert not any(cell.startswith("=") for row in rows for cell in row.values())


def test_a_carriage_return_in_a_log_never_splits_a_csv_row(tmp_path: Path) -> None:
    records = nxlog_lines(5140, 5145, 4624)
    share = next(r for r in records if r["EventID"] == 5145)
    share["RelativeTargetName"] = 'svcctl\r=HYPERLINK("http://x")'
    path = write_lines(tmp_path / "log.json", [json.dumps(r) for r in records])
    run = smbwatch("events", "-f", "csv", path).clean(0)
    rows = csv_rows(run.stdout)
    assert len(rows) == len(smbwatch("events", "-f", "jsonl", path).events)
    assert [r["path"] for r in rows if r["path"]] == ['svcctl\\x0d=HYPERLINK("http://x")']


CONTROLS = ["\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u009b", "\u007f"]


@pytest.mark.parametrize("control", CONTROLS)
def test_direction_and_c1_controls_are_escaped_in_csv_and_json_lines(
    tmp_path: Path, control: str
) -> None:
    path = capture_renaming(tmp_path, f"fi{control}txt.exe")
    jsonl = smbwatch("events", "-f", "jsonl", path).clean(0)
    assert control not in jsonl.stdout
    assert f"\\u{ord(control):04x}" in jsonl.stdout
    named = [e for e in jsonl.events if "txt.exe" in e.get("path", "")]
    assert named and all(e["path"] == f"fi{control}txt.exe" for e in named)  # the same value
    table = smbwatch("events", "-f", "csv", path).clean(0)
    assert control not in table.stdout
    rows = csv_rows(table.stdout)
    shown = f"\\x{ord(control):02x}" if ord(control) < 0x100 else f"\\u{ord(control):04x}"
    assert {r["path"] for r in rows if "txt.exe" in r["path"]} == {f"fi{shown}txt.exe"}
    assert len(rows) == len(jsonl.events)


def test_the_output_files_carry_no_raw_control_whatever_the_sink(tmp_path: Path) -> None:
    path = capture_renaming(tmp_path, "\x1b[2J\u202e\x9b.ex\r")
    for format_ in ("jsonl", "csv"):
        out = tmp_path / f"out.{format_}"
        smbwatch("events", "-f", format_, "-o", out, path).clean(0)
        text = out.read_text(encoding="utf-8")
        assert not set(text) & {"\x1b", "\u202e", "\x9b", "\r"}, format_


# Regressions: minimal inputs the fuzzer (tests/test_fuzz.py, scripts/fuzz.sh) found ----------


def test_fuzz_found_a_zip_version_no_reader_knows(tmp_path: Path) -> None:
    """scripts/fuzz.sh: a central directory entry needing "zip 25.5" made zipfile raise
    NotImplementedError (a traceback); its shrunk input, rebuilt on a real capture."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(SMB2_CAPTURE, "capture.pcap")
    data = bytearray(packed.getvalue())
    entry = data.rindex(b"PK\x01\x02")  # the central directory entry
    data[entry + 6] = 255  # version needed to extract: 25.5
    path = tmp_path / "version.zip"
    path.write_bytes(bytes(data))
    run = smbwatch("events", path)
    assert "Traceback" not in run.stderr
    assert run.code == 2 and "unreadable zip archive" in run.stderr
