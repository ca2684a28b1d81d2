"""File summaries on the shared real captures, against independent accounts: the wire itself
(tshark's reassembly, the tests' own MS-SMB2/MS-CIFS walk), tshark's SMB object export, the counts
and hashes suricata-verify expects (read from each test.yaml), and the published EICAR file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import shared_dir
from files_helpers import decode, sha256, summaries, wire_transfers
from oracle import tshark
from smb2_wire import EXAMPLE, feed, wire_messages

from smbwatch.capture.endpoint import Endpoints
from smbwatch.diagnostics import Diagnostics
from smbwatch.filedata.transfers import Transfers
from smbwatch.options import HASHES, Options
from smbwatch.smb.smb2 import Smb2Decoder

pytestmark = pytest.mark.oracle


def smb2_captures() -> list[Path]:
    data = shared_dir() / "data"
    return [
        *sorted(data.glob("suricata-verify/*/*.pcap")),
        *sorted(data.glob("pcap/*.cap")),
        EXAMPLE,
    ]


@pytest.mark.parametrize("capture", smb2_captures(), ids=lambda p: p.parent.name + "/" + p.name)
def test_every_transfer_is_what_the_wire_carried(capture: Path) -> None:
    """With every digest asked for (``--hash sha256,sha1,md5``)."""
    wire = wire_transfers(capture)
    events, _ = decode(capture, Options(hashes=HASHES))
    ours = summaries(events)
    assert set(ours) == set(wire)
    for key, transfer in wire.items():
        event = ours[key]
        content = transfer.content()
        assert (event.bytes_seen, event.file_size) == (transfer.bytes_seen, transfer.size), key
        if content is None:
            assert event.sha256 is None and event.sha1 is None and event.md5 is None, key
        else:
            assert event.sha256 == sha256(content), key
            assert event.sha1 == hashlib.sha1(content).hexdigest()
            assert event.md5 == hashlib.md5(content).hexdigest()
        assert event.action == "close"


def test_by_default_a_file_has_its_sha256_alone(shared_data: Path) -> None:
    """``--hash``'s default is sha256; the others are asked for (``--hash sha256,sha1,md5``)."""
    capture = shared_data / "suricata-verify/smb2-01/smb2-peter.pcap"
    every = summaries(decode(capture, Options(hashes=HASHES))[0])
    default = summaries(decode(capture)[0])
    md5_only = summaries(decode(capture, Options(hashes=("md5",)))[0])
    assert set(default) == set(every) == set(md5_only)
    hashed = [key for key, event in every.items() if event.sha256]
    assert hashed
    for key in hashed:
        assert default[key].sha256 == every[key].sha256
        assert default[key].sha1 is None and default[key].md5 is None
        assert md5_only[key].md5 == every[key].md5 and md5_only[key].sha256 is None


def test_the_corpus_has_transfers_both_ways_whole_and_partial(shared_data: Path) -> None:
    """The test above is not vacuous."""
    ours = summaries(decode(shared_data / "suricata-verify/smb2-01/smb2-peter.pcap")[0])
    hashed = [e for e in ours.values() if e.sha256]
    assert {e.direction for e in hashed} == {"upload", "download"}
    assert 0 < len(hashed) < len(ours)


def test_smb2_01_one_summary_per_file_suricata_closes(shared_data: Path) -> None:
    folder = shared_data / "suricata-verify/smb2-01"
    checks = yaml.safe_load((folder / "test.yaml").read_text())["checks"]
    (closed,) = [
        c["filter"]["count"]
        for c in checks
        if "filter" in c and c["filter"]["match"].get("fileinfo.state") == "CLOSED"
    ]
    ours = summaries(decode(folder / "smb2-peter.pcap")[0])
    assert len(ours) == closed


def test_smb2_01_hashes_are_tsharks_exported_objects(shared_data: Path, tmp_path: Path) -> None:
    capture = shared_data / "suricata-verify/smb2-01/smb2-peter.pcap"
    tshark("-n", "-r", str(capture), "--export-objects", f"smb,{tmp_path}", "-q")
    exported = [path.read_bytes() for path in tmp_path.iterdir()]
    assert len(exported) > 20
    ours = summaries(decode(capture)[0]).values()
    whole = {e.sha256 for e in ours if e.sha256}
    partial_sizes = {e.bytes_seen for e in ours if not e.sha256}
    assert whole <= {sha256(data) for data in exported}
    for data in exported:  # tshark also exports what it saw of a partial file
        assert sha256(data) in whole or len(data) in partial_sizes


def test_no_hash_skips_the_data_and_still_counts_it(shared_data: Path) -> None:
    capture = shared_data / "suricata-verify/smb2-01/smb2-peter.pcap"
    hashed = summaries(decode(capture)[0])
    plain = summaries(decode(capture, Options(hashes=()))[0])
    assert set(plain) == set(hashed)
    for key, event in plain.items():
        assert event.sha256 is None and event.sha1 is None and event.md5 is None
        assert (event.bytes_seen, event.file_size) == (
            hashed[key].bytes_seen,
            hashed[key].file_size,
        )


@pytest.mark.parametrize("hash_files", [True, False])
def test_the_decoder_asks_for_file_data_only_to_hash_it(
    shared_data: Path, hash_files: bool
) -> None:
    capture = shared_data / "suricata-verify/smb2-01/smb2-peter.pcap"
    transfers = Transfers(Options(hashes=HASHES if hash_files else ()), Diagnostics())
    endpoints = Endpoints("192.168.1.12", 1, "192.168.1.51", 445, "pcap", str(capture))
    decoder = Smb2Decoder(endpoints, Diagnostics(), files=transfers)
    asked = []
    for message in wire_messages(capture):
        feed(decoder, message)
        if decoder.wants_body:
            asked.append(message.data[12])  # the command of the message
    if hash_files:
        assert asked and set(asked) <= {0x08, 0x09}  # READ responses, WRITE requests
    else:
        assert asked == []


def suricata_file_expectations(shared_data: Path) -> list[tuple[Path, str, str]]:
    """(capture, field, value) of every ``fileinfo.sha256``/``fileinfo.filename`` a
    suricata-verify test expects."""
    found = []
    for test in sorted(shared_data.glob("suricata-verify/*/test.yaml")):
        (capture,) = test.parent.glob("*.pcap")
        for check in yaml.safe_load(test.read_text()).get("checks", []):
            match = (check.get("filter") or {}).get("match", {})
            for name in ("fileinfo.sha256", "fileinfo.filename"):
                if name in match:
                    found.append((capture, name, str(match[name])))
    return found


def test_suricata_verify_file_hashes_are_found(shared_data: Path) -> None:
    expected = suricata_file_expectations(shared_data)
    assert len({value for _, name, value in expected if name == "fileinfo.sha256"}) >= 2
    for capture, name, value in expected:
        events = decode(capture)[0]
        if name == "fileinfo.sha256":
            assert value in {e.sha256 for e in events}, capture
        else:
            assert value in {(e.path or "").rsplit("\\", 1)[-1] for e in events if e.sha256}


def test_the_eicar_test_file_written_in_random_segments(shared_data: Path) -> None:
    capture = shared_data / "suricata-verify/smb-eicar-file-segmentation-random/input.pcap"
    # The anti-virus test file published by EICAR, in two halves so no scanner flags this file.
    eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$" + rb"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    (event,) = summaries(decode(capture)[0]).values()
    assert event.direction == "upload" and event.path == "eicar"
    assert event.bytes_seen == event.file_size == len(eicar) == 68
    assert event.sha256 == sha256(eicar)


def test_an_unusable_extraction_directory_is_one_clear_error(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    command = [sys.executable, "-m", "smbwatch.cli", "events", str(EXAMPLE)]
    done = subprocess.run(
        [*command, "--extract-files", str(taken / "files")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(taken) in done.stderr
