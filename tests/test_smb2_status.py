"""NT status names: checked against two independent tables (tshark's and impacket's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from impacket.nt_errors import ERROR_MESSAGES
from oracle import tshark, tshark_values

from smbwatch.ntstatus import NT_STATUS_NAMES, nt_status_name

pytestmark = pytest.mark.oracle


def test_every_name_agrees_with_tshark_and_impacket() -> None:
    wireshark = tshark_values("smb2.nt_status")
    assert len(wireshark) > 500  # the oracle really was read
    for code, name in NT_STATUS_NAMES.items():
        known = [table[code] for table in (wireshark,) if code in table]
        if code in ERROR_MESSAGES:
            known.append(ERROR_MESSAGES[code][0])
        assert known, f"0x{code:08x} {name}: neither oracle knows it"
        assert all(other == name for other in known), (hex(code), name, known)


def test_every_status_in_the_all_captures_has_a_name(shared_data: Path) -> None:
    captures = sorted(shared_data.glob("suricata-verify/*/*.pcap")) + sorted(
        shared_data.glob("pcap/*.cap")
    )
    seen: set[int] = set()
    for capture in captures:
        out = tshark("-r", str(capture), "-Y", "smb2", "-T", "fields", "-e", "smb2.nt_status")
        for field in out.split():
            seen.update(int(value, 16) for value in field.split(","))
    assert 0xC0000022 in seen  # STATUS_ACCESS_DENIED is in smb2-01: the scan really ran
    assert sorted(code for code in seen if code not in NT_STATUS_NAMES) == []


def test_an_unknown_code_keeps_its_value() -> None:
    unknown = next(code for code in range(0xC0009000, 0xC000A000) if code not in NT_STATUS_NAMES)
    assert nt_status_name(unknown) == f"0x{unknown:08X}"
    assert nt_status_name(0xC0000022) == "STATUS_ACCESS_DENIED"
