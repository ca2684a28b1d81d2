"""The lab makes real SMB traffic: tshark (the independent oracle) sees what the client did."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_support import both_paths
from lab import (
    CLIENT_IP,
    DIALECT_REVISION,
    DIALECTS,
    SERVER_IP,
    LabError,
    SambaLab,
    pe_bytes,
    require_tools,
)
from oracle import tshark_fields

pytestmark = pytest.mark.lab

SMB2_CREATE, SMB2_WRITE = 5, 9
STATUS_LOGON_FAILURE = "0xc000006d"


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


def test_pe_bytes_is_a_pe_for_libmagic(tmp_path: Path) -> None:
    require_tools(["file"])
    exe = tmp_path / "x.exe"
    exe.write_bytes(pe_bytes("psexesvc", 4096))
    kind = subprocess.run(["file", "-b", str(exe)], capture_output=True, text=True, check=True)
    assert kind.stdout.startswith("PE32 executable (console) Intel 80386")
    assert len(exe.read_bytes()) == 4096
    assert pe_bytes("a") != pe_bytes("b")


def test_exe_written_to_admin_share_as_smb311(lab: SambaLab, tmp_path: Path) -> None:
    payload = pe_bytes("psexesvc", 8192)
    (lab.client_dir / "psexesvc.exe").write_bytes(payload)
    pcap = tmp_path / "admin.pcap"
    with lab.capture(pcap) as cap:
        lab.smbclient("ADMIN$", "put psexesvc.exe", protocol="SMB3_11")
    assert cap.packets and cap.dropped == 0
    assert (lab.share_path("ADMIN$") / "psexesvc.exe").read_bytes() == payload

    negotiated = tshark_fields(pcap, "smb2.cmd == 0 && smb2.flags.response == 1", ["smb2.dialect"])
    assert negotiated == [("0x0311",)]
    trees = tshark_fields(pcap, "smb2.cmd == 3 && smb2.flags.response == 0", ["smb2.tree"])
    assert (f"\\\\{SERVER_IP}\\ADMIN$",) in trees
    creates = tshark_fields(
        pcap, f'smb2.cmd == {SMB2_CREATE} && smb2.filename == "psexesvc.exe"', ["ip.src"]
    )
    assert (CLIENT_IP,) in creates
    writes = tshark_fields(
        pcap, f"smb2.cmd == {SMB2_WRITE} && smb2.flags.response == 0", ["smb2.write_length"]
    )
    assert sum(int(length) for (length,) in writes) == len(payload)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_dialect_is_forced(lab: SambaLab, tmp_path: Path, dialect: str) -> None:
    pcap = tmp_path / f"{dialect}.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", "ls", protocol=dialect)
    fields = ["smb.cmd", "smb.flags.response", "smb2.cmd", "smb2.flags.response", "smb2.dialect"]
    rows = tshark_fields(pcap, "smb or smb2", [*fields, "ntlmssp.auth.username"])
    smb1 = [row for row in rows if row[0]]
    smb1_negotiated = [row for row in smb1 if row[0].startswith("0x72") and row[1] == "1"]
    smb2_negotiated = [row[4] for row in rows if row[2] == "0" and row[3] == "1"]
    assert [row[5] for row in rows if row[5]] == [lab.user]
    if dialect == "NT1":
        assert len(smb1_negotiated) == 1
        assert smb2_negotiated == [] and len(smb1) == len(rows)
    else:
        assert smb2_negotiated == [f"0x{DIALECT_REVISION[dialect]:04x}"]
        assert smb1 == []


def test_encrypted_session_shows_only_transform_headers(lab: SambaLab, tmp_path: Path) -> None:
    (lab.client_dir / "payroll.xlsx").write_bytes(b"confidential " * 100)
    pcap = tmp_path / "encrypted.pcap"
    with lab.capture(pcap):
        lab.smbclient("secret", ["put payroll.xlsx", "ls"], protocol="SMB3_11", encrypt=True)
    assert (lab.share_path("secret") / "payroll.xlsx").exists()
    transformed = tshark_fields(
        pcap, "smb2.header.transform.flags.encrypted == 1", ["smb2.header.transform.msg_size"]
    )
    assert len(transformed) > 5
    on_the_wire = tshark_fields(pcap, "tcp.payload contains fd:53:4d:42", ["frame.number"])
    assert len(on_the_wire) >= len(transformed)
    in_clear = 'smb2.filename contains "payroll" or frame contains "confidential"'
    assert tshark_fields(pcap, in_clear, ["frame.number"]) == []


def test_frames_fit_ethernet_with_valid_checksums(lab: SambaLab, tmp_path: Path) -> None:
    (lab.client_dir / "big.bin").write_bytes(bytes(range(256)) * 1024)
    pcap = tmp_path / "big.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put big.bin", "get big.bin big.back"], protocol="SMB3_02")
    lengths = [int(n) for (n,) in tshark_fields(pcap, "frame", ["frame.len"])]
    assert max(lengths) == 1514  # segmented to the MTU, not loopback super-frames
    checksum = "-o", "tcp.check_checksum:TRUE"
    bad = tshark_fields(pcap, "tcp.checksum.status == 0", ["frame.number"], *checksum)
    good = tshark_fields(pcap, "tcp.checksum.status == 1", ["frame.number"], *checksum)
    assert bad == [] and len(good) == len(lengths)
    # one CPU for the whole lab: veth does not reorder segments
    assert tshark_fields(pcap, "tcp.analysis.out_of_order", ["frame.number"]) == []
    assert (lab.client_dir / "big.back").read_bytes() == (lab.client_dir / "big.bin").read_bytes()


def test_dcerpc_over_named_pipes(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "rpc.pcap"
    with lab.capture(pcap):
        lab.rpcclient("netshareenumall")
        lab.net_rpc(["service", "list"])
        lab.net_rpc(["registry", "enumerate", r"HKLM\Software"])
        refused = lab.net_rpc(
            ["service", "create", "PSEXESVC", "PSEXESVC", r"%SystemRoot%\PSEXESVC.exe"],
            check=False,
        )
    assert refused.returncode != 0  # Samba does not implement CreateServiceW
    pipes = {name for (name,) in tshark_fields(pcap, "smb2.cmd == 5", ["smb2.filename"])}
    assert {"srvsvc", "svcctl", "winreg"} <= pipes
    assert tshark_fields(pcap, "srvsvc.opnum == 15 && dcerpc.pkt_type == 0", ["frame.number"])
    assert tshark_fields(pcap, "winreg.opnum == 9", ["frame.number"])  # EnumKey
    created = tshark_fields(
        pcap, "svcctl.opnum == 12 && dcerpc.pkt_type == 0", ["svcctl.binarypathname"]
    )
    assert created == [(r"%SystemRoot%\PSEXESVC.exe",)]


def test_port_139_starts_with_a_netbios_session_request(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "nbss.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", "ls", protocol="NT1", port=139, by_name=True)
    requests = tshark_fields(pcap, "nbss.type == 0x81", ["tcp.dstport"])
    assert requests == [("139",)]
    assert ("\\\\FILESRV\\DATA",) in tshark_fields(pcap, "smb.cmd == 0x75", ["smb.path"])


def test_bad_password_raises_and_is_a_logon_failure(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "badpw.pcap"
    with lab.capture(pcap), pytest.raises(LabError, match="NT_STATUS_LOGON_FAILURE"):
        lab.smbclient("data", "ls", password="wrong")
    statuses = tshark_fields(pcap, "smb2.cmd == 1 && smb2.flags.response == 1", ["smb2.nt_status"])
    assert (STATUS_LOGON_FAILURE,) in statuses


def test_teardown_even_on_failure() -> None:
    with pytest.raises(RuntimeError, match="boom"), SambaLab() as lab:
        smbd_pids = subprocess.run(
            ["ip", "netns", "pids", lab.server_ns], capture_output=True, text=True, check=True
        ).stdout.split()
        assert smbd_pids
        raise RuntimeError("boom")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.server_ns not in namespaces and lab.client_ns not in namespaces
    assert not any(_running(pid) for pid in smbd_pids)
    assert not lab.workdir.exists()


def _running(pid: str) -> bool:
    """Whether a process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_failing_smbd_start_raises_with_its_log(lab: SambaLab) -> None:
    # a second smbd on the same state directories refuses to run beside the first
    with pytest.raises(LabError, match="smbd did not start(.|\n)*already running"):
        SambaLab(lab.workdir).start()
    assert lab.smbclient("data", "ls").returncode == 0  # the first one is untouched


def test_missing_tool_fails_loudly() -> None:
    with pytest.raises(LabError, match="smbwatch-no-such-tool.*install-test-deps"):
        require_tools(["smbwatch-no-such-tool"])


def test_example_capture_tells_its_story() -> None:
    """examples/lateral-movement.pcap (committed) holds what examples/README.md says."""
    pcap = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"
    assert pcap.stat().st_size < 1 << 20
    frames = tshark_fields(
        pcap,
        "smb2 or smb",
        ["frame.len", "smb2.cmd", "smb2.filename", "smb2.tree", "smb2.nt_status", "smb.cmd"],
    )
    filenames = {row[2] for row in frames}
    assert {"psexesvc.exe", "invoice.txt", "report.docx", "old.log", "notes.tmp"} <= filenames
    assert {"srvsvc", "svcctl", "winreg"} <= filenames
    assert any(row[3].endswith("\\ADMIN$") for row in frames)
    assert any(STATUS_LOGON_FAILURE in row[4] for row in frames)
    assert any(row[5] for row in frames)  # an SMB1 session
    renamed = tshark_fields(pcap, "smb2.cmd == 17 && smb2.flags.response == 0", ["smb2.filename"])
    assert ("archived.log",) in renamed  # SET_INFO FileRenameInformation
    created = tshark_fields(pcap, "svcctl.opnum == 12", ["svcctl.binarypathname"])
    assert created == [(r"%SystemRoot%\PSEXESVC.exe",)]
    assert tshark_fields(pcap, "smb2.header.transform.flags.encrypted == 1", ["frame.number"])
    lengths = tshark_fields(pcap, "frame", ["frame.len"])
    assert max(int(n) for (n,) in lengths) <= 1514


def test_both_capture_paths_read_a_lab_capture_alike(lab: SambaLab, tmp_path: Path) -> None:
    """Traffic the lab makes, read with the native capture path and with the Python one."""
    (lab.client_dir / "both.bin").write_bytes(pe_bytes("both-paths", 200_192))
    capture = tmp_path / "both.pcap"
    with lab.capture(capture):
        lab.smbclient("data", ["put both.bin", "get both.bin back.bin", "ls", "del both.bin"])
    events, counts, _, _ = both_paths(capture)
    actions = {json.loads(line)["action"] for line in events}
    assert {"write", "read", "delete"} <= actions, actions
    assert not counts, counts
