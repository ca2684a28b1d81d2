"""Smb2Decoder on traffic made here with Samba (tests/lab.py): every dialect, anonymous logons,
a share that requires encryption, large transfers; each checked against tshark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import DIALECT_REVISION, EVENT_DIALECT, SERVER_IP, SambaLab, pe_bytes
from smb2_wire import decoded, fields_by_frame, smb2_warnings, tshark_smb2_pdus

from smbwatch.smb.session import SNIFF_WINDOW

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


@pytest.mark.parametrize("dialect", list(DIALECT_REVISION))
def test_every_dialect_logs_the_upload(lab: SambaLab, tmp_path: Path, dialect: str) -> None:
    payload = pe_bytes(dialect, 3 * 65536 + 512)  # one or more WRITEs; the first starts "MZ"
    (lab.client_dir / "tool.exe").write_bytes(payload)
    pcap = tmp_path / f"{dialect}.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put tool.exe", "get tool.exe back.exe"], protocol=dialect)
    events, diagnostics = decoded(pcap)
    assert smb2_warnings(diagnostics) == []
    assert {e.dialect for e in events} == {EVENT_DIALECT[dialect]}
    writes = [e for e in events if e.action == "write" and e.path == "tool.exe"]
    reads = [e for e in events if e.action == "read" and e.path == "tool.exe"]
    wire_writes = [p for p in tshark_smb2_pdus(pcap) if p.command == 9 and not p.response]
    assert len(writes) == len(wire_writes) >= 1
    assert sum(e.bytes or 0 for e in writes) == len(payload) == sum(e.bytes or 0 for e in reads)
    assert [e.magic for e in writes if e.offset == 0] == ["PE"]
    assert [e.magic for e in reads if e.offset == 0] == ["PE"]
    assert all(e.status == "STATUS_SUCCESS" and e.share == f"\\\\{SERVER_IP}\\data" for e in writes)
    assert len(payload) > 64 * SNIFF_WINDOW  # most of it was never held by the decoder


def test_anonymous_logon(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "anonymous.pcap"
    with lab.capture(pcap):
        lab.smbclient("IPC$", "exit", user="", password="", protocol="SMB3_11")
    events, diagnostics = decoded(pcap)
    assert smb2_warnings(diagnostics) == []
    rows = fields_by_frame(pcap, "ntlmssp.messagetype == 3", "ntlmssp.auth.username")
    assert [value for (value,) in rows.values()] == ["NULL"]  # tshark: an empty user
    (logon,) = [e for e in events if e.action == "logon"]
    assert logon.auth == "anonymous" and logon.user is None and logon.status == "STATUS_SUCCESS"
    (tree,) = [e for e in events if e.action == "tree_connect"]
    assert tree.auth == "anonymous" and tree.share_name == "IPC$" and tree.share_type == "pipe"


def test_a_share_that_requires_encryption(lab: SambaLab, tmp_path: Path) -> None:
    (lab.share_path("secret") / "payroll.xlsx").write_bytes(b"PK\x03\x04" + bytes(3000))
    pcap = tmp_path / "secret.pcap"
    with lab.capture(pcap):
        lab.smbclient("secret", "get payroll.xlsx", protocol="SMB3_11")
    events, diagnostics = decoded(pcap)
    assert smb2_warnings(diagnostics) == []
    flags = fields_by_frame(
        pcap, "smb2.cmd == 3 && smb2.flags.response == 1", "smb2.share_flags.encrypt_data"
    )
    transforms = fields_by_frame(pcap, "smb2.header.transform.signature", "tcp.dstport")
    trees = {e.share_name: e for e in events if e.action == "tree_connect"}
    tree = trees["secret"]
    wire_flags = sorted(value for (value,) in flags.values())
    assert sorted("1" if e.encrypted else "0" for e in trees.values()) == wire_flags
    encrypted = [e for e in events if e.action == "encrypted"]
    directions = {port == "445" for (port,) in transforms.values()}
    assert len(encrypted) == len(directions) == 2  # one event per direction of the session
    assert all(e.session_id == tree.session_id and e.user == "Administrator" for e in encrypted)
    assert not [e for e in events if e.path == "payroll.xlsx"]  # hidden: nothing is invented
