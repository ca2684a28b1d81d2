"""Files that crossed the wire, on traffic made here with Samba (tests/lab.py): uploads and
downloads of several MB in every dialect (SMB1 and SMB2/3), hashed as they stream and extracted
byte for byte by ``smbwatch events --extract-files``; a capture with a segment cut out; hostile
file names; the same content seen twice. The judge is hashlib over the file the test wrote."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import CLIENT_IP, DIALECTS, USER, SambaLab, pe_bytes
from oracle import read_pcap_records, write_pcap

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[1]
SIZE = 4 << 20


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


def payload(tag: str, size: int = SIZE) -> bytes:
    """An executable followed by random bytes: a type to sniff, and no repeated slices."""
    return pe_bytes(tag, 65536) + random.Random(tag).randbytes(size - 65536)


def smbwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, as a user runs it, with the installed package."""
    command = [sys.executable, "-m", "smbwatch.cli", "events", "-f", "jsonl", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def closes(done: subprocess.CompletedProcess[str]) -> list[dict]:
    """The close events that carry a file's summary."""
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return [event for event in events if "direction" in event]


def stored(directory: Path) -> dict[str, Path]:
    """Every name in the extraction directory (none may be hidden: no lock file either)."""
    return {path.name: path for path in directory.iterdir()}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upload_and_download_are_hashed_and_extracted(
    lab: SambaLab, tmp_path: Path, dialect: str
) -> None:
    data = payload(dialect)
    digest = hashlib.sha256(data).hexdigest()
    (lab.client_dir / "drop.exe").write_bytes(data)
    pcap = tmp_path / "transfer.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put drop.exe", "get drop.exe back.exe"], protocol=dialect)
    assert (lab.client_dir / "back.exe").read_bytes() == data
    extract = tmp_path / "files"
    found = closes(
        smbwatch(str(pcap), "--extract-files", str(extract), "--hash", "sha256,md5,sha1")
    )
    assert sorted(e["direction"] for e in found) == ["download", "upload"]
    for event in found:
        assert event["path"] == "drop.exe" and event["magic"] == "PE"
        assert event["file_size"] == event["bytes_seen"] == len(data)
        assert event["sha256"] == digest
        assert event["sha1"] == hashlib.sha1(data).hexdigest()
        assert event["md5"] == hashlib.md5(data).hexdigest()
    assert set(stored(extract)) == {digest, f"{digest}.json"}
    assert (extract / digest).read_bytes() == data
    sidecar = json.loads((extract / f"{digest}.json").read_text())
    assert sidecar["size"] == len(data) and sidecar["md5"] == hashlib.md5(data).hexdigest()
    assert sidecar["sightings_total"] == 2
    for sighting, event in zip(sidecar["sightings"], found, strict=True):
        assert sighting["direction"] == event["direction"] and sighting["path"] == "drop.exe"
        assert sighting["src_ip"] == CLIENT_IP and sighting["user"] == USER
        assert sighting["source_file"] == str(pcap) and sighting["share"].lower().endswith("\\data")
        assert sighting["first_frame"] <= sighting["last_frame"] <= event["source_ref"]
        assert sighting["first_time"] <= sighting["last_time"] <= event["time"]


def tcp_payload(frame: bytes) -> bytes:
    """The TCP payload of an Ethernet/IPv4 frame."""
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    doff = (frame[14 + ihl + 12] >> 4) * 4
    return frame[14 + ihl + doff : 14 + total]


def frames_inside_the_data(records: list[tuple[int, int, bytes]], data: bytes) -> list[int]:
    """The two frames (one written, one read) that carry the same slice from the middle of the
    file and nothing else: no message header, so cutting them leaves a hole, not lost framing.
    Segmentation differs between runs, so slices are tried until one lies wholly in a frame in
    both directions."""
    for start in range(len(data) // 2 + 30011, len(data) // 2 + 30011 + 50 * 211, 211):
        marker = data[start : start + 64]
        cut = [i for i, (_, _, frame) in enumerate(records) if marker in frame]
        payloads = [tcp_payload(records[i][2]) for i in cut]
        if len(cut) == 2 and not any(b"\xffSMB" in p or b"\xfeSMB" in p for p in payloads):
            return cut
    raise AssertionError("no slice of the file lies wholly inside one frame each way")


@pytest.mark.parametrize("dialect", ["NT1", "SMB2_02", "SMB3_11"])
def test_a_segment_cut_out_leaves_a_hole_and_no_hash(
    lab: SambaLab, tmp_path: Path, dialect: str
) -> None:
    data = payload(f"cut-{dialect}")
    (lab.client_dir / "cut.bin").write_bytes(data)
    pcap = tmp_path / "whole.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put cut.bin", "get cut.bin back.bin"], protocol=dialect)
    linktype, records = read_pcap_records(pcap)
    cut = frames_inside_the_data(records, data)
    lost = [len(tcp_payload(records[i][2])) for i in cut]
    holed = tmp_path / "holed.pcap"
    write_pcap(holed, linktype, [r for i, r in enumerate(records) if i not in cut])
    extract = tmp_path / "files"
    found = closes(smbwatch(str(holed), "--extract-files", str(extract), "-q"))
    by_direction = {event["direction"]: event for event in found}
    assert set(by_direction) == {"upload", "download"}
    for event, missing in zip(
        (by_direction["upload"], by_direction["download"]), lost, strict=True
    ):
        assert event["file_size"] == len(data)
        assert event["bytes_seen"] == len(data) - missing
        assert "sha256" not in event and "md5" not in event
    assert stored(extract) == {}  # the incomplete copies were deleted


HOSTILE = (
    "..\\..\\..\\..\\tmp\\escaped.exe",
    "C:\\Windows\\System32\\evil.dll",
    "/etc/cron.d/smbwatch-evil",
    "\\\\?\\C:\\evil\\..\\evil.exe",
)


def test_hostile_names_never_choose_where_files_land(lab: SambaLab, tmp_path: Path) -> None:
    """The names are patched into the CREATE requests of a real capture (same length, so the
    framing holds): what the server accepted is irrelevant, the wire is what attackers control."""
    innocent = [f"{'f' * (len(name) - 6)}{i}.data" for i, name in enumerate(HOSTILE)]
    contents = [payload(f"hostile{i}", 256 << 10) for i in range(len(HOSTILE))]
    for name, content in zip(innocent, contents, strict=True):
        (lab.client_dir / name).write_bytes(content)
    pcap = tmp_path / "innocent.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", [f"put {name}" for name in innocent], protocol="SMB3_11")
    linktype, records = read_pcap_records(pcap)
    patched = []
    for seconds, micros, frame in records:
        for name, hostile in zip(innocent, HOSTILE, strict=True):
            assert len(name) == len(hostile)
            frame = frame.replace(name.encode("utf-16-le"), hostile.encode("utf-16-le"))
        patched.append((seconds, micros, frame))
    hostile_pcap = tmp_path / "hostile.pcap"
    write_pcap(hostile_pcap, linktype, patched)
    work = tmp_path / "work"
    extract = work / "files"
    found = closes(smbwatch(str(hostile_pcap), "--extract-files", str(extract), "-q"))
    assert sorted(event["path"] for event in found) == sorted(HOSTILE)
    digests = {hashlib.sha256(content).hexdigest() for content in contents}
    assert {event["sha256"] for event in found} == digests
    assert set(stored(extract)) == digests | {f"{d}.json" for d in digests}
    assert set(work.rglob("*")) == {extract} | set(stored(extract).values())
    for escaped in (Path("/tmp/escaped.exe"), Path("/etc/cron.d/smbwatch-evil"), REPO / "C:"):
        assert not escaped.exists()
    paths = {
        json.loads((extract / f"{d}.json").read_text())["sightings"][0]["path"] for d in digests
    }
    assert paths == set(HOSTILE)


def test_the_same_content_is_stored_once_and_every_sighting_listed(
    lab: SambaLab, tmp_path: Path
) -> None:
    data = payload("twice", 1 << 20)
    (lab.client_dir / "first.exe").write_bytes(data)
    (lab.client_dir / "second.exe").write_bytes(data)
    captures = [tmp_path / "one.pcap", tmp_path / "two.pcap"]
    for pcap, name in zip(captures, ("first.exe", "second.exe"), strict=True):
        with lab.capture(pcap):
            lab.smbclient("data", [f"put {name}"], protocol="SMB3_02")
    extract = tmp_path / "files"
    args = [str(p) for p in captures]
    found = closes(smbwatch(*args, "--extract-files", str(extract), "-j", "2"))
    digest = hashlib.sha256(data).hexdigest()
    assert [event["sha256"] for event in found] == [digest, digest]
    assert set(stored(extract)) == {digest, f"{digest}.json"}
    assert (extract / digest).read_bytes() == data
    sidecar = json.loads((extract / f"{digest}.json").read_text())
    assert sidecar["sightings_total"] == 2
    sightings = {(s["path"], s["source_file"]) for s in sidecar["sightings"]}
    assert sightings == {("first.exe", str(captures[0])), ("second.exe", str(captures[1]))}
    mtime = (extract / digest).stat().st_mtime_ns
    closes(smbwatch(args[0], "--extract-files", str(extract)))  # seen again: not rewritten
    assert (extract / digest).stat().st_mtime_ns == mtime
    assert json.loads((extract / f"{digest}.json").read_text())["sightings_total"] == 3


def test_no_hash_and_its_conflict_with_extraction(lab: SambaLab, tmp_path: Path) -> None:
    data = payload("nohash", 1 << 20)
    (lab.client_dir / "plain.exe").write_bytes(data)
    pcap = tmp_path / "plain.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put plain.exe"], protocol="SMB2_10")
    (event,) = closes(smbwatch(str(pcap), "--no-hash"))
    assert event["bytes_seen"] == event["file_size"] == len(data) and event["magic"] == "PE"
    assert "sha256" not in event and "sha1" not in event and "md5" not in event
    done = smbwatch(str(pcap), "--no-hash", "--extract-files", str(tmp_path / "x"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "--no-hash" in done.stderr and not (tmp_path / "x").exists()
