"""What a real client did, as smbwatch reports it: Samba and smbclient on the lab's network,
captured with tcpdump, read back through the command line (JSON lines), compared with the script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import CLIENT_IP, EVENT_DIALECT, SERVER_IP, SambaLab, pe_bytes

pytestmark = pytest.mark.lab

BIG = 6 * 1024 * 1024 + 123  # several MB, not a multiple of any write size


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


def events_of(capture: Path) -> list[dict]:
    command = [sys.executable, "-m", "smbwatch.cli", "events", str(capture), "-f", "jsonl"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("dialect", ["SMB2_10", "SMB3_11"])
def test_admin_share_story(lab: SambaLab, tmp_path: Path, dialect: str) -> None:
    tool = pe_bytes(f"story-{dialect}", 40 * 512)
    big = bytes(range(256)) * (BIG // 256) + bytes(BIG % 256)
    (lab.client_dir / "psexesvc.exe").write_bytes(tool)
    (lab.client_dir / "big.bin").write_bytes(big)
    (lab.client_dir / "old.txt").write_bytes(b"rename me\n")
    capture = tmp_path / "story.pcap"
    with lab.capture(capture):
        lab.smbclient(
            "ADMIN$",
            [
                "put psexesvc.exe", "get psexesvc.exe copy.exe", "put old.txt",
                "rename old.txt new.txt", "del new.txt", "ls", "put big.bin", "get big.bin big2",
            ],
            protocol=dialect,
        )  # fmt: skip
    assert (lab.client_dir / "copy.exe").read_bytes() == tool
    events = events_of(capture)
    assert {e["dialect"] for e in events} == {EVENT_DIALECT[dialect]}
    assert all(e["src_ip"] == CLIENT_IP and e["dst_ip"] == SERVER_IP for e in events)
    (logon,) = [e for e in events if e["action"] == "logon"]
    assert (logon["user"], logon["domain"], logon["workstation"]) == (
        "Administrator", "LAB", "WKSTN01",
    )  # fmt: skip
    admin = [e for e in events if e.get("share_name") == "ADMIN$"]
    assert all(
        e["share"] == f"\\\\{SERVER_IP}\\ADMIN$" and e["user"] == "Administrator" for e in admin
    )

    def on(path: str, action: str) -> list[dict]:
        return [e for e in admin if e.get("path") == path and e["action"] == action]

    (created,) = on("psexesvc.exe", "create")
    assert created["status"] == "STATUS_SUCCESS" and created["access_mask"] & 0x2
    writes = on("psexesvc.exe", "write")
    assert sum(e["bytes"] for e in writes) == len(tool)
    assert [e["magic"] for e in writes if e["offset"] == 0] == ["PE"]
    assert sum(e["bytes"] for e in on("psexesvc.exe", "read")) == len(tool)
    (renamed,) = [e for e in admin if e["action"] == "rename"]
    assert (renamed["path"], renamed["new_path"]) == ("old.txt", "new.txt")
    assert on("new.txt", "delete"), "the delete of new.txt"
    assert any(e["action"] == "query_directory" for e in admin)
    big_writes, big_reads = on("big.bin", "write"), on("big.bin", "read")
    assert sum(e["bytes"] for e in big_writes) == BIG == sum(e["bytes"] for e in big_reads)
    assert min(e["offset"] for e in big_writes) == 0 == min(e["offset"] for e in big_reads)
    assert all(e["status"] == "STATUS_SUCCESS" for e in big_writes + big_reads)


def test_encrypted_session(lab: SambaLab, tmp_path: Path) -> None:
    (lab.client_dir / "hidden.exe").write_bytes(pe_bytes("hidden", 4096))
    capture = tmp_path / "encrypted.pcap"
    with lab.capture(capture):
        lab.smbclient("ADMIN$", ["put hidden.exe"], protocol="SMB3_11", encrypt=True)
    events = events_of(capture)
    assert any(e["action"] == "logon" and e["user"] == "Administrator" for e in events)
    assert any(e.get("encrypted") for e in events)
    assert not any(e.get("path") == "hidden.exe" for e in events), "encryption hides the name"


def test_netbios_port_139(lab: SambaLab, tmp_path: Path) -> None:
    (lab.client_dir / "via139.exe").write_bytes(pe_bytes("via139", 4096))
    capture = tmp_path / "nbss.pcap"
    with lab.capture(capture):
        lab.smbclient("data", ["put via139.exe"], protocol="SMB3_02", port=139)
    events = events_of(capture)
    assert {e["dst_port"] for e in events} == {139}
    assert any(e["action"] == "write" and e.get("path") == "via139.exe" for e in events)
