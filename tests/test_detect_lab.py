"""Detections on SMB traffic the test makes: a real Samba server and client (tests/lab.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from detect_support import alert_dicts, tshark_frames
from lab import SambaLab, pe_bytes
from oracle import tshark_fields

from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.lab

IMPROVED = "Executable Written to an Administrative Share"
DISGUISED = "Executable Written Under a Non-Executable Name"


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


@pytest.mark.parametrize("dialect", ["SMB2_10", "SMB3_11"])
def test_executables_dropped_on_admin_share(lab: SambaLab, tmp_path: Path, dialect: str) -> None:
    (lab.client_dir / "svc.exe").write_bytes(pe_bytes(f"svc-{dialect}", 4096))
    (lab.client_dir / "readme.txt").write_bytes(pe_bytes(f"disguised-{dialect}", 4096))
    (lab.client_dir / "notes.txt").write_text("nothing to see here\n" * 200)
    pcap = tmp_path / "drop.pcap"
    with lab.capture(pcap) as capture:
        lab.smbclient(
            "ADMIN$", ["put svc.exe", "put readme.txt", "put notes.txt"], protocol=dialect
        )
        lab.smbclient("data", ["put readme.txt", "put notes.txt"], protocol=dialect)
    assert capture.packets and capture.dropped == 0
    diagnostics = Diagnostics()
    alerts = alert_dicts(capture_events(str(pcap), diagnostics), load_rules())

    improved = {a["path"]: a for a in alerts if a["title"] == IMPROVED}
    assert set(improved) == {"svc.exe", "readme.txt"}  # the .exe, and the PE named .txt
    for path, alert in improved.items():
        assert alert["share"].upper().endswith("\\ADMIN$")
        assert (alert["src_ip"], alert["user"]) == (lab.client_ip, lab.user)
        assert path in alert["message"]
    creates = tshark_frames(pcap, 'smb2.cmd == 5 && smb2.filename == "svc.exe"')
    fids = {
        fid
        for frame in creates
        for (fid,) in tshark_fields(pcap, f"smb2.response_to == {frame} && smb2.fid", ["smb2.fid"])
    }
    writes = [
        frame
        for fid in fids
        for frame in tshark_frames(
            pcap, f"smb2.cmd == 9 && smb2.flags.response == 0 && smb2.fid == {fid}"
        )
    ]
    refs = [e["source_ref"] for e in improved["svc.exe"]["evidence"]]
    assert writes and sorted(refs) == sorted(creates + writes)  # every open for writing, the write
    assert "content PE" in improved["readme.txt"]["message"]

    disguised = sorted(
        (a["share"].rsplit("\\", 1)[-1], a["path"]) for a in alerts if a["title"] == DISGUISED
    )
    assert disguised == [("ADMIN$", "readme.txt"), ("data", "readme.txt")]
    assert not [a for a in alerts if "notes.txt" in a["message"] and a["risk_score"] >= 50]
