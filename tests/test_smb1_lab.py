"""SMB1 sessions made by Samba's own client against a real smbd, forced to NT1 (NT LM 0.12):
smbwatch's events must say what the client did, and agree with tshark message by message."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dcerpc_capture import rpc_calls
from lab import CLIENT_NAME, SERVER_IP, SHARES, WORKGROUP, SambaLab, pe_bytes
from oracle import cut_capture, tshark_fields
from smb1_support import smb1_events
from test_smb1_corpus import assert_same_as_tshark

from smbwatch.events import SmbEvent
from smbwatch.smb.fscc import FILE_INFORMATION_CLASSES, FS_INFORMATION_CLASSES
from smbwatch.smb.smb1_records import QUERY_FS_LEVELS, QUERY_LEVELS, level_name

pytestmark = pytest.mark.lab

FILE_SIZE = 200 * 1024  # several WRITE_ANDX and READ_ANDX

IMPACKET_CLIENT = Path(__file__).with_name("smb1_impacket_client.py")


@pytest.fixture(scope="module")
def lab() -> Iterator[SambaLab]:
    with SambaLab() as running:
        yield running


def only(events: list[SmbEvent], **fields: object) -> SmbEvent:
    found = [e for e in events if all(getattr(e, k) == v for k, v in fields.items())]
    assert len(found) == 1, f"{len(found)} events with {fields}"
    return found[0]


def test_files_put_got_renamed_listed_deleted(lab: SambaLab, tmp_path: Path) -> None:
    payload = pe_bytes("smb1-tool", FILE_SIZE)
    (lab.client_dir / "tool.exe").write_bytes(payload)
    pcap = tmp_path / "nt1.pcap"
    commands = [
        "mkdir sub",
        "put tool.exe sub\\tool.exe",
        "get sub\\tool.exe back.exe",
        "rename sub\\tool.exe sub\\renamed.exe",
        "ls sub\\*",
        "del sub\\renamed.exe",
        "rmdir sub",
    ]
    with lab.capture(pcap):
        lab.smbclient("data", commands, protocol="NT1")
    assert (lab.client_dir / "back.exe").read_bytes() == payload
    assert not (lab.share_path("data") / "sub").exists()

    events, diagnostics = smb1_events(pcap)
    assert not diagnostics.counts
    assert {e.dialect for e in events} == {"NT LM 0.12"}
    assert {e.status for e in events} == {"STATUS_SUCCESS"}
    logon = only(events, action="logon")
    assert (logon.user, logon.domain, logon.auth) == (lab.user, WORKGROUP, "ntlmssp")
    assert logon.workstation == CLIENT_NAME
    data = [e for e in events if (e.share_name or "").lower() == "data"]
    assert {e.server for e in data} == {SERVER_IP}
    assert all(e.user == lab.user and e.session_id == logon.session_id for e in data)

    made = only(events, action="create", path="sub\\tool.exe")
    assert made.disposition == "FILE_OVERWRITE_IF" and made.create_action == "FILE_CREATED"
    writes = [e for e in events if e.action == "write"]
    assert {e.file_id for e in writes} == {made.file_id}
    assert sorted((e.offset, e.bytes) for e in writes) == contiguous(writes, FILE_SIZE)
    assert [e.magic for e in writes if e.offset == 0] == ["PE"]

    opened = only(events, action="open", path="sub\\tool.exe")
    assert opened.file_size == FILE_SIZE and opened.create_action == "FILE_OPENED"
    reads = [e for e in events if e.action == "read"]
    assert {e.file_id for e in reads} == {opened.file_id}
    assert sorted((e.offset, e.bytes) for e in reads) == contiguous(reads, FILE_SIZE)
    assert [e.magic for e in reads if e.offset == 0] == ["PE"]

    renamed = only(events, action="rename")
    assert (renamed.path, renamed.new_path) == ("sub\\tool.exe", "sub\\renamed.exe")
    listing = [e for e in events if e.action == "query_directory"]
    assert ("sub", "*") in [(e.path, e.pattern) for e in listing]
    only(events, action="delete", path="sub\\renamed.exe")
    only(events, action="create", path="sub", command="SMB_COM_CREATE_DIRECTORY")
    only(events, action="delete", path="sub", command="SMB_COM_DELETE_DIRECTORY")
    order = [e.action for e in events if e.path and e.path.startswith("sub")]
    assert order.index("create") < order.index("write") < order.index("read")
    assert order.index("read") < order.index("rename") < order.index("query_directory")

    assert assert_same_as_tshark(pcap, events) >= len(writes) + len(reads)


def contiguous(events: list[SmbEvent], size: int) -> list[tuple[int | None, int | None]]:
    """The (offset, length) pieces of ``events`` if they cover 0..size back to back."""
    pieces = sorted((e.offset, e.bytes) for e in events)
    ends = [0] + [(offset or 0) + (length or 0) for offset, length in pieces]
    assert [offset for offset, _ in pieces] == ends[:-1] and ends[-1] == size
    return pieces


def test_anonymous_logon_refused_a_disk_share(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "anonymous.pcap"
    with lab.capture(pcap):
        done = lab.smbclient("data", "ls", protocol="NT1", user="", password="", check=False)
    assert "NT_STATUS_ACCESS_DENIED" in done.stdout + done.stderr
    events, _ = smb1_events(pcap)
    logon = only(events, action="logon")
    assert (logon.auth, logon.user, logon.status) == ("anonymous", None, "STATUS_SUCCESS")
    refused = only(events, action="tree_connect", status="STATUS_ACCESS_DENIED")
    assert refused.share_name.lower() == "data" and refused.tree_id is None


def test_legacy_logon_without_extended_security(lab: SambaLab, tmp_path: Path) -> None:
    """No SPNEGO: the NT LM 0.12 SESSION_SETUP_ANDX with AccountName and PrimaryDomain."""
    pcap = tmp_path / "legacy.pcap"
    argv = [
        "smbclient",
        f"//{lab.server_ip}/data",
        f"--configfile={lab.client_conf}",
        "--option=client min protocol=NT1",
        "--option=client max protocol=NT1",
        "--option=client use spnego=no",
        "--option=client ntlmv2 auth=no",
        f"--user={lab.user}%{lab.password}",
        "-c",
        "ls",
    ]
    with lab.capture(pcap):
        done = lab.run(argv, check=False)  # Samba takes only NTLMv2: this NTLM one is refused
    events, _ = smb1_events(pcap)
    logon = only(events, action="logon")
    assert (logon.user, logon.domain, logon.auth) == (lab.user, WORKGROUP, "ntlm")
    assert f"session setup failed: NT_{logon.status}" in done.stdout + done.stderr
    assert logon.status == "STATUS_LOGON_FAILURE"


def test_named_pipe_opened_on_ipc(lab: SambaLab, tmp_path: Path) -> None:
    pcap = tmp_path / "pipes.pcap"
    with lab.capture(pcap):
        lab.list_shares(protocol="NT1")
    events, _ = smb1_events(pcap)
    opened = only(events, action="open", pipe="srvsvc")
    assert (opened.share_name, opened.share_type, opened.path) == ("IPC$", "pipe", "srvsvc")
    closed = only(events, action="close", file_id=opened.file_id)
    assert closed.pipe == "srvsvc"
    calls = [e for e in events if e.action == "rpc_call"]
    assert [e.rpc_operation for e in calls] == ["Bind", "NetrShareEnum"]
    assert {(e.pipe, e.file_id, e.user) for e in calls} == {("srvsvc", opened.file_id, lab.user)}
    assert [str(e.source_ref) for e in calls] == request_frames(pcap, 0x25, "&& dcerpc")
    enum = calls[1]
    assert enum.rpc_status == "ERROR_SUCCESS" and enum.rpc_args is not None
    assert set(enum.rpc_args["shares"]) == {*SHARES, "IPC$"}


def request_frames(pcap: Path, command: int, also: str = "") -> list[str]:
    """Where the requests of one SMB1 command start, as tshark sees them: the first TCP segment
    of a message that spans several (an event's ``source_ref``)."""
    display_filter = f"smb.cmd == 0x{command:02x} && smb.flags.response == 0 {also}"
    rows = tshark_fields(pcap, display_filter, ["frame.number", "tcp.segment"])
    return [segments.split(",")[0] or frame for frame, segments in rows]


def test_rpc_calls_over_transactions_and_andx_reads_and_writes(
    lab: SambaLab, tmp_path: Path
) -> None:
    """rpcclient on SMB1 pipes: small calls in one TRANSACTION; a call too large for one goes
    out in WRITE_ANDX pieces and comes back in READ_ANDX pieces. Every call tshark sees is
    reported once, on its pipe."""
    pcap = tmp_path / "rpc.pcap"
    sids = " ".join(f"S-1-5-21-1-2-3-{1000 + n}" for n in range(300))
    argv = [
        "rpcclient",
        f"--configfile={lab.client_conf}",
        "--option=client ipc min protocol=NT1",
        "--option=client ipc max protocol=NT1",
        f"--user={lab.user}%{lab.password}",
        "-c",
        f"netshareenumall; lookupsids {sids}",
        lab.server_ip,
    ]
    with lab.capture(pcap):
        done = lab.run(argv, check=False)
    assert "S-1-5-21-1-2-3-1299" in done.stdout
    events, _ = smb1_events(pcap)
    calls = [e for e in events if e.action == "rpc_call" and e.rpc_operation != "Bind"]
    requests = tshark_fields(
        pcap, "dcerpc.pkt_type == 0 && dcerpc.cn_flags.last_frag == 1", ["dcerpc.opnum"]
    )
    assert len(calls) == len(requests)
    lookup = only(events, rpc_operation="LsarLookupSids")
    assert (lookup.pipe, lookup.rpc_status) == ("lsarpc", "STATUS_NONE_MAPPED")
    assert str(lookup.source_ref) == request_frames(pcap, 0x2F)[0]  # its first WRITE_ANDX
    assert {e.command for e in events if e.pipe == "lsarpc"} >= {
        "SMB_COM_WRITE_ANDX",
        "SMB_COM_READ_ANDX",
    }
    shares = only(events, rpc_operation="NetrShareEnum")
    assert str(shares.source_ref) in request_frames(pcap, 0x25)
    assert shares.rpc_args is not None and set(shares.rpc_args["shares"]) == {*SHARES, "IPC$"}


def test_what_only_other_clients_send(lab: SambaLab, tmp_path: Path) -> None:
    """OPEN_ANDX, NT_TRANSACT_CREATE, TRANS2 set-information and OEM strings, by impacket
    (smb1_impacket_client.py): checked against what is left on the share."""
    payload = pe_bytes("impacket", 4096)
    (lab.client_dir / "payload.exe").write_bytes(payload)
    pcap = tmp_path / "impacket.pcap"
    argv = [sys.executable, str(IMPACKET_CLIENT), lab.server_ip, lab.user, lab.password]
    with lab.capture(pcap):
        done = lab.run([*argv, WORKGROUP])
    assert set(done.stdout.strip().split(",")) == {*SHARES, "IPC$"}
    assert sorted(p.name for p in lab.share_path("data").iterdir()) == [
        "chained.txt",
        "renamed.txt",
    ]
    events, diagnostics = smb1_events(pcap)
    assert not diagnostics.counts
    assert {e.status for e in events if e.command} == {"STATUS_SUCCESS"}

    opened = only(events, command="SMB_COM_OPEN_ANDX")
    assert (opened.action, opened.path, opened.disposition) == (
        "create",
        "opened.exe",
        "FILE_OVERWRITE_IF",
    )
    assert opened.access_mask is not None and opened.access_mask & 0x2  # FILE_WRITE_DATA
    write = only(events, action="write", file_id=opened.file_id)
    assert (write.path, write.bytes, write.magic) == ("opened.exe", len(payload), "PE")

    created = only(events, command="SMB_COM_NT_TRANSACT")
    assert (created.action, created.path, created.create_action) == (
        "create",
        "nttrans.txt",
        "FILE_CREATED",
    )
    renamed = only(events, action="rename")
    assert (renamed.command, renamed.file_id, renamed.info_class) == (
        "SMB_COM_TRANSACTION2",
        created.file_id,
        "FileRenameInformation",
    )
    assert (renamed.path, renamed.new_path) == ("nttrans.txt", "renamed.txt")
    assert only(events, action="close", file_id=created.file_id).path == "renamed.txt"
    touched = only(events, action="set_info")
    assert (touched.path, touched.info_class) == ("renamed.txt", "FileBasicInformation")
    deleted = only(events, action="delete")
    assert (deleted.path, deleted.info_class) == ("opened.exe", "SMB_SET_FILE_DISPOSITION_INFO")

    chained = only(events, path="chained.txt", command="SMB_COM_NT_CREATE_ANDX")
    connect = only(events, action="tree_connect", source_ref=chained.source_ref)
    assert (chained.action, chained.create_action, chained.status) == (
        "create",
        "FILE_CREATED",
        "STATUS_SUCCESS",
    )
    assert connect.tree_id is not None and connect.share_name == "DATA"
    assert (chained.tree_id, chained.share, chained.user) == (
        connect.tree_id,
        connect.share,
        lab.user,
    )

    calls = [e for e in events if e.action == "rpc_call"]
    assert [e.rpc_operation for e in calls] == ["Bind", "NetrShareEnum"]
    assert {e.pipe for e in calls} == {"srvsvc"}
    writes = [e for e in events if e.action == "write" and e.pipe == "srvsvc"]
    assert [e.source_ref for e in writes] == [e.source_ref for e in calls]
    assert assert_same_as_tshark(pcap, events) > 0


def test_pipes_opened_after_the_capture_began_are_still_read(lab: SambaLab, tmp_path: Path) -> None:
    """As for SMB2 (test_dcerpc_lab), the capture cut to begin right after the IPC$
    TREE_CONNECT_ANDX was answered: the NT_CREATE_ANDX response says the open is a pipe
    whatever the tree, and every call on it says what the whole capture says."""
    pcap, cut = tmp_path / "pipes.pcap", tmp_path / "cut.pcap"
    with lab.capture(pcap):
        lab.list_shares(protocol="NT1")
    connects = tshark_fields(
        pcap,
        'smb.cmd == 0x75 && smb.flags.response == 1 && smb.service == "IPC"',
        ["frame.number", "tcp.dstport"],
    )
    frame, client_port = (int(value) for value in connects[0])
    cut_capture(pcap, cut, frame)
    whole = rpc_calls(pcap, client_port)
    assert [call["rpc_operation"] for call in whole] == ["Bind", "NetrShareEnum"]
    assert rpc_calls(cut, client_port, frame) == whole
    events, _ = smb1_events(cut)
    opened = only(events, action="open", src_port=client_port)
    assert (opened.share, opened.pipe) == (None, "srvsvc")


def test_information_queries_are_events(lab: SambaLab, tmp_path: Path) -> None:
    """Every TRANS2_QUERY_PATH/FILE/FS_INFORMATION request tshark sees is a query_info event at
    its frame, with the information level tshark reads (named as MS-CIFS/MS-FSCC name it)."""
    (lab.client_dir / "notes.txt").write_bytes(b"notes\n")
    pcap = tmp_path / "queries.pcap"
    with lab.capture(pcap):
        lab.smbclient("data", ["put notes.txt", "allinfo notes.txt", "volume"], protocol="NT1")
    events, diagnostics = smb1_events(pcap)
    assert not diagnostics.counts
    ours = {
        (str(e.source_ref), e.info_class, e.path or "")
        for e in events
        if e.action == "query_info" and e.command == "SMB_COM_TRANSACTION2"
    }
    rows = tshark_fields(
        pcap,
        "smb.trans2.cmd in {3, 5, 7} && smb.flags.response == 0",
        ["frame.number", "smb.trans2.cmd", "smb.qpi_loi", "smb.qfsi_loi", "smb.file"],
    )
    expected = set()
    for frame, command, level, fs_level, name in rows:
        if command == "0x0003":
            info_class = level_name(int(fs_level, 0), QUERY_FS_LEVELS, FS_INFORMATION_CLASSES)
        else:
            info_class = level_name(int(level, 0), QUERY_LEVELS, FILE_INFORMATION_CLASSES)
        expected.add((frame, info_class, name.lstrip("\\") if command == "0x0005" else ""))
    assert len(rows) >= 3 and ours == expected
