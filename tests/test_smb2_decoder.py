"""Smb2Decoder on the shared captures: against tshark (differential) and suricata-verify."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import shared_dir
from smb2_wire import (
    TsharkPdu,
    all_captures,
    decode,
    decoded,
    smb2_warnings,
    tshark_smb2_pdus,
)

from smbwatch.events import SmbEvent
from smbwatch.ntstatus import STATUS_PENDING, nt_status_name
from smbwatch.smb import fscc
from smbwatch.smb import smb2_records as rec

pytestmark = pytest.mark.oracle

CAPTURES = [
    pytest.param(capture, id=capture.parent.name if "suricata" in str(capture) else capture.stem)
    for capture in all_captures(shared_dir() / "data")
]
COMPARED = {rec.CREATE, rec.TREE_CONNECT, rec.WRITE, rec.READ, rec.QUERY_INFO, rec.SET_INFO}
ALL_ONES_FID = "ffffffff-ffff-ffff-ffff-ffffffffffff"


def smb2_captures(shared_data: Path) -> list[Path]:
    return [capture for capture in all_captures(shared_data) if tshark_smb2_pdus(capture)]


def test_every_capture_decodes_without_a_warning(shared_data: Path) -> None:
    captures = smb2_captures(shared_data)
    assert len(captures) >= 10
    for capture in captures:
        events, diagnostics = decoded(capture)
        assert events, capture
        assert smb2_warnings(diagnostics) == [], (capture, diagnostics.summary_lines())


def test_the_pipeline_frames_as_tshark_does(shared_data: Path) -> None:
    """smbwatch's capture layer and NBSS framing give the decoder exactly the messages that
    tshark's TCP reassembly gives it (the independent framing of smb2_wire)."""
    for capture in smb2_captures(shared_data):
        pipeline, _ = decoded(capture)
        independent = decode(capture)
        # the join keys come from the TCP layer and the pipeline, which the framing skips
        joins = ("conn_id", "file_key")
        found = [{k: v for k, v in e.to_dict().items() if k not in joins} for e in pipeline]
        assert found == [e.to_dict() for e in independent], capture


# -- the differential against tshark ------------------------------------------------------------


def event_key(event: SmbEvent) -> tuple[str | None, int | None, str | None, int | None, int | None]:
    return (event.src_ip, event.src_port, event.dst_ip, event.dst_port, event.message_id)


def our_event(events: list[SmbEvent], pdu: TsharkPdu) -> SmbEvent:
    """The one event smbwatch made of the request tshark dissected."""
    name = rec.COMMAND_NAMES[pdu.command]
    found = [
        event
        for event in events
        if event_key(event) == (*pdu.connection, pdu.message_id)
        and event.command == name
        and not (event.command == "CREATE" and event.action == "delete")  # delete-on-close twin
    ]
    assert len(found) == 1, (pdu.frame, name, found)
    return found[0]


def tshark_requests(capture: Path) -> Iterator[tuple[TsharkPdu, TsharkPdu | None, str | None]]:
    """Each request tshark dissects with its final response and the path tshark knows for it.

    The path of a file is the name its CREATE asked for (tshark pairs the FileId of the CREATE
    response with the request) and, for a related compound operation whose FileId is all ones,
    the name of the CREATE before it in the same frame; a successful rename updates it.
    """
    pdus = tshark_smb2_pdus(capture)
    final: dict[tuple[tuple[str, int, str, int], int], TsharkPdu] = {}
    for pdu in pdus:
        if pdu.response and pdu.status != STATUS_PENDING:
            final[(pdu.connection, pdu.message_id)] = pdu
    path_of_fid: dict[str, str] = {}
    chain_path: dict[int, str] = {}  # frame -> name of the last CREATE in it
    for pdu in pdus:
        if pdu.response:
            continue
        response = final.get((pdu.connection, pdu.message_id))
        fid = pdu.first("smb2.fid")
        path = None
        if pdu.command == rec.CREATE:
            path = pdu.first("smb2.filename") or ""
            chain_path[pdu.frame] = path
            if response is not None and response.status == 0:
                path_of_fid[response.first("smb2.fid") or ""] = path
        elif fid == ALL_ONES_FID:
            path = chain_path.get(pdu.frame)
        elif fid is not None:
            path = path_of_fid.get(fid)
        if pdu.command in COMPARED:
            yield pdu, response, path
        if (
            pdu.command == rec.SET_INFO
            and pdu.first("smb2.file_info.infolevel") in ("0x0a", "0x41")
            and response is not None
            and response.status == 0
            and fid in path_of_fid
        ):
            path_of_fid[fid] = pdu.fields["smb2.filename"][-1]


def check_against_tshark(
    event: SmbEvent, request: TsharkPdu, response: TsharkPdu | None, path: str | None
) -> None:
    assert event.status == (nt_status_name(response.status) if response else None)
    ok = response is not None and response.status == 0
    if request.command == rec.CREATE:
        assert event.path == path
        assert (
            event.disposition
            == fscc.CREATE_DISPOSITIONS[int(request.fields["smb2.create.disposition"][0])]
        )
        assert event.access_mask == int(request.fields["smb.access_mask"][0], 16)
        assert event.share_access == int(request.fields["smb.share_access"][0], 16)
        assert event.create_options == int(request.fields["smb.create_options"][0], 16)
        if ok:
            fid = uuid.UUID(bytes_le=bytes.fromhex(event.file_id or ""))
            assert str(fid) == response.first("smb2.fid")
            assert event.file_size == int(response.fields["smb2.eof"][0])
            action = int(response.fields["smb2.create.action"][0]) & 0xFF
            assert event.create_action == fscc.CREATE_ACTIONS[action]
    elif request.command == rec.TREE_CONNECT:
        assert event.share == request.fields["smb2.tree"][-1]
        if ok:
            share_type = int(response.fields["smb2.share_type"][-1], 16)
            assert event.share_type == rec.SHARE_TYPES[share_type]
            assert event.tree_id == int(response.fields["smb2.tid"][0], 16)
    elif request.command == rec.WRITE:
        assert event.bytes == int(request.fields["smb2.write_length"][0])
        assert event.offset == int(request.fields["smb2.file_offset"][0])
        assert event.path == path
    elif request.command == rec.READ:
        assert event.offset == int(request.fields["smb2.file_offset"][0])
        assert event.path == path
        if ok:
            assert event.bytes == int(response.fields["smb2.olb.length"][0])
    elif request.command == rec.SET_INFO:
        assert event.path == path
        info_class = int(request.fields["smb2.file_info.infolevel"][0], 16)
        assert event.info_class == fscc.FILE_INFORMATION_CLASSES[info_class]
        if info_class in (fscc.FileRenameInformation, fscc.FileRenameInformationEx):
            assert event.action == "rename"
            assert event.new_path == request.fields["smb2.filename"][-1]
    elif request.command == rec.QUERY_INFO:
        assert (event.action, event.path) == ("query_info", path)
        info_type = int(request.fields["smb2.class"][0], 16)
        if info_type == rec.SMB2_0_INFO_FILE:
            level = int(request.fields["smb2.file_info.infolevel"][0], 16)
            assert event.info_class == fscc.FILE_INFORMATION_CLASSES[level]
        elif info_type == rec.SMB2_0_INFO_FILESYSTEM:
            level = int(request.fields["smb2.fs_info.infolevel"][0], 16)
            assert event.info_class == fscc.FS_INFORMATION_CLASSES[level]
        else:
            assert event.info_class == rec.INFO_TYPE_NAMES[info_type]


@pytest.mark.parametrize("capture", CAPTURES)
def test_creates_trees_reads_writes_and_infos_agree_with_tshark(capture: Path) -> None:
    events, _ = decoded(capture)
    compared = 0
    for request, response, path in tshark_requests(capture):
        event = our_event(events, request)
        try:
            check_against_tshark(event, request, response, path)
        except AssertionError as error:
            raise AssertionError(f"frame {request.frame}: {event}") from error
        compared += 1
    ours = sum(
        1
        for event in events
        if event.command in {rec.COMMAND_NAMES[command] for command in COMPARED}
        and not (event.command == "CREATE" and event.action == "delete")
    )
    assert ours == compared  # no event tshark does not see a request for
    assert compared or not tshark_smb2_pdus(capture)


# -- what suricata-verify expects -----------------------------------------------------------

SURICATA_DIALECTS = {
    "2.02": "2.0.2",
    "2.10": "2.1",
    "3.00": "3.0",
    "3.02": "3.0.2",
    "3.11": "3.1.1",
}
SURICATA_ACCESS = {"delete on close": True, "normal": None}


def suricata_match(match: dict[str, object]) -> dict[str, object]:
    """A suricata-verify ``smb`` filter in smbwatch's fields (keys without a counterpart go).

    Not compared: smb.fuid and
    smb.status_code (another rendering of file_id and status), the CREATE timestamps and the
    dcerpc records (the DCE/RPC decoder's business).
    """
    ours: dict[str, object] = {}
    for key, value in match.items():
        if key == "smb.command":
            command = str(value).removeprefix("SMB2_COMMAND_")
            ours["command"] = "NEGOTIATE" if command == "NEGOTIATE_PROTOCOL" else command
        elif key == "smb.dialect":
            ours["dialect"] = SURICATA_DIALECTS[str(value)]
        elif key == "smb.access":
            ours["delete_on_close"] = SURICATA_ACCESS[str(value)]
        elif key == "smb.named_pipe":
            ours["share"] = value
            ours["share_type"] = "pipe"
        elif key == "dest_port":
            ours["dst_port"] = value
        else:
            field = {
                "smb.status": "status",
                "smb.share": "share",
                "smb.filename": "path",
                "smb.disposition": "disposition",
                "smb.session_id": "session_id",
                "smb.tree_id": "tree_id",
                "smb.size": "file_size",
                "smb.ntlmssp.user": "user",
                "smb.ntlmssp.domain": "domain",
                "smb.ntlmssp.host": "workstation",
                "smb.ntlmssp.version": "client_version",
                "smb.rename.from": "path",
                "smb.rename.to": "new_path",
            }.get(key)
            if field is not None:
                ours[field] = value
    if "smb.rename.from" in match or "smb.rename.to" in match:
        ours["action"] = "rename"
    return ours


def suricata_checks(shared_data: Path) -> Iterator[tuple[Path, dict[str, object], int]]:
    """(capture, match in smbwatch's fields, Suricata's count) of every SMB2 ``smb`` check."""
    for test_yaml in sorted(shared_data.glob("suricata-verify/*/test.yaml")):
        captures = [p for p in test_yaml.parent.iterdir() if p.suffix == ".pcap"]
        if not captures or not tshark_smb2_pdus(captures[0]):
            continue  # SMB1 or DCE/RPC over TCP only
        for check in yaml.safe_load(test_yaml.read_text())["checks"]:
            match = check.get("filter", {}).get("match", {})
            if match.get("event_type") != "smb" or any(k.startswith("smb.dcerpc") for k in match):
                continue
            ours = suricata_match(match)
            if ours:
                yield captures[0], ours, check["filter"]["count"]


def test_what_suricata_expects_is_found(shared_data: Path) -> None:
    checked = 0
    for capture, match, count in suricata_checks(shared_data):
        events, _ = decoded(capture)
        found = [e for e in events if all(getattr(e, k) == v for k, v in match.items())]
        if count == 0:
            continue  # Suricata's record granularity, not a fact of the wire: see below
        if found:
            checked += 1
            continue
        # Suricata logs the first SESSION_SETUP round of NTLM (MORE_PROCESSING_REQUIRED);
        # smbwatch logs one logon per completed authentication. Make sure that is the case.
        assert match == {"status": "STATUS_MORE_PROCESSING_REQUIRED"}, (capture, match)
        rounds = [p for p in tshark_smb2_pdus(capture) if p.status == 0xC0000016]
        assert rounds and all(p.command == rec.SESSION_SETUP for p in rounds)
        assert any(e.action == "logon" and e.status for e in events)
        checked += 1
    assert checked >= 12


def test_statuses_suricata_never_logs_are_really_on_the_wire(shared_data: Path) -> None:
    """A count of 0 (STATUS_END_OF_FILE in smb2-01) is Suricata not logging failed READs;
    smbwatch reports the status where tshark sees a response carry it, and nowhere else."""
    checked = 0
    for capture, match, count in suricata_checks(shared_data):
        if count != 0 or set(match) != {"status"}:
            continue
        events, _ = decoded(capture)
        ours = sum(1 for e in events if e.status == match["status"])
        on_wire = sum(
            1
            for p in tshark_smb2_pdus(capture)
            if p.response and p.status is not None and nt_status_name(p.status) == match["status"]
        )
        assert ours == on_wire
        checked += 1
    assert checked >= 1
