"""Smb2Decoder state on real traffic: pairing, midstream, finish, wanted, pipes, bounds, SMB3."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
from oracle import tshark_values
from smb2_wire import (
    WireMessage,
    all_captures,
    decoded,
    endpoints_of,
    feed,
    fields_by_frame,
    smb2_commands,
    smb2_warnings,
    tshark_smb2_pdus,
    wire_messages,
)

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.magic import sniff_magic
from smbwatch.smb import smb2_records as rec
from smbwatch.smb.session import MAX_FILES, SNIFF_WINDOW
from smbwatch.smb.smb2 import MAX_PENDING, Smb2Decoder

pytestmark = pytest.mark.oracle

SUCCESS, PENDING, MORE_PROCESSING = 0, 0x103, 0xC0000016
HANDLED = {0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 14, 16, 17}  # commands that make events


def corpus(shared_data: Path, name: str) -> Path:
    return next(p for p in all_captures(shared_data) if name in str(p))


def replay(capture: Path, messages: list[WireMessage]) -> tuple[list[SmbEvent], Diagnostics]:
    """Some messages of a capture through one decoder per connection."""
    diagnostics = Diagnostics()
    endpoints = endpoints_of(capture)
    decoders: dict[int, Smb2Decoder] = {}
    events: list[SmbEvent] = []
    for message in messages:
        if message.data.startswith((b"\xfeSMB", b"\xfdSMB")):
            decoder = decoders.setdefault(
                message.stream, Smb2Decoder(endpoints[message.stream], diagnostics)
            )
            events.extend(feed(decoder, message))
    for decoder in decoders.values():
        events.extend(decoder.finish())
    return events, diagnostics


def test_async_responses_complete_the_request(shared_data: Path) -> None:
    """smb2-async: a rename answered STATUS_PENDING first, then finally."""
    capture = corpus(shared_data, "smb2-async")
    pdus = tshark_smb2_pdus(capture)
    interim = [p for p in pdus if p.response and p.status == PENDING]
    assert interim  # the capture really has an interim response
    events, _ = decoded(capture)
    for pdu in interim:
        request = next(p for p in pdus if not p.response and p.message_id == pdu.message_id)
        final = next(
            p for p in pdus if p.response and p.message_id == pdu.message_id and p.status != PENDING
        )
        (event,) = [e for e in events if e.message_id == pdu.message_id]
        assert event.source_ref == request.frame  # the request's frame and time
        assert event.status == "STATUS_SUCCESS" and final.status == SUCCESS
    assert all(event.status != "STATUS_PENDING" for events_ in [events] for event in events_)


def test_unanswered_requests_come_out_of_finish(shared_data: Path) -> None:
    capture = corpus(shared_data, "smb2-ntlmssp-order")
    requests = [m for m in wire_messages(capture) if m.from_client]
    endpoints = endpoints_of(capture)
    decoder = Smb2Decoder(endpoints[requests[0].stream], Diagnostics())
    assert all(feed(decoder, message) == [] for message in requests)
    events = decoder.finish()
    expected = sum(
        1
        for _, header, msg in smb2_commands(capture)
        if not header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
        and header.command in HANDLED
        and not (header.command == rec.SESSION_SETUP and b"NTLMSSP\x00\x01" in msg)
    )
    assert len(events) == expected > 30
    assert all(event.status is None for event in events)
    assert decoder.finish() == []


def test_responses_without_requests_still_yield_events(shared_data: Path) -> None:
    for capture in all_captures(shared_data):
        responses = [m for m in wire_messages(capture) if not m.from_client]
        events, diagnostics = replay(capture, responses)
        assert smb2_warnings(diagnostics) == [], capture
        expected = sum(
            1
            for _, header, msg in smb2_commands(capture)
            if header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
            and header.command in HANDLED
            and header.status not in (PENDING, MORE_PROCESSING)
            and not (header.command == rec.NEGOTIATE and msg[68:70] == b"\xff\x02")
        )
        assert len([e for e in events if e.action not in ("delete", "encrypted")]) == expected
        assert all(event.status for event in events if event.action != "encrypted")


def test_an_ioctl_response_alone_names_its_fsctl(shared_data: Path) -> None:
    """The CtlCode an IOCTL response repeats names the event when its request was not seen."""
    names = tshark_values("smb2.ioctl.function")
    checked = 0
    for capture in all_captures(shared_data):
        responses = [m for m in wire_messages(capture) if not m.from_client]
        events, _ = replay(capture, responses)
        answered = fields_by_frame(
            capture, "smb2.cmd == 11 && smb2.flags.response == 1", "smb2.ioctl.function"
        )
        for event in (e for e in events if e.action == "ioctl"):
            codes = answered[event.source_ref or 0][0]
            if codes:  # an IOCTL response, not an ERROR response
                assert event.fsctl in {names[int(code, 16)] for code in codes.split(",")}
                checked += 1
            else:
                assert event.fsctl is None
    assert checked >= 8  # every IOCTL response of the corpus that carries its structure


def test_a_capture_joined_midway_decodes_cleanly(shared_data: Path) -> None:
    for capture in all_captures(shared_data):
        messages = wire_messages(capture)
        for start in (len(messages) // 3, len(messages) // 2):
            events, diagnostics = replay(capture, messages[start:])
            assert smb2_warnings(diagnostics) == [], (capture, start, diagnostics.summary_lines())
            assert events or not tshark_smb2_pdus(capture)


def test_wanted_keeps_file_data_out_and_pipe_data_in(shared_data: Path) -> None:
    big_file_writes = pipe_writes = 0
    for capture in all_captures(shared_data):
        reference, _ = decoded(capture)
        magic_of = {(e.src_port, e.message_id): e.magic for e in reference if e.action == "write"}
        endpoints = endpoints_of(capture)
        decoders: dict[int, Smb2Decoder] = {}
        for message in wire_messages(capture):
            if not message.data.startswith(b"\xfeSMB"):
                continue
            decoder = decoders.setdefault(
                message.stream, Smb2Decoder(endpoints[message.stream], Diagnostics())
            )
            data = message.data
            wanted = decoder.wanted(message.from_client, data[:512], len(data))
            header = rec.parse_header(data)
            events = feed(decoder, message)
            if header.command != rec.WRITE or not message.from_client or header.next_command:
                continue
            write = rec.parse_write_request(data)
            (event,) = [
                e
                for e in reference
                if e.message_id == header.message_id
                and e.src_port == endpoints[message.stream].src_port
                and e.action == "write"
            ]
            if event.pipe is not None:
                assert wanted == len(data)
                pipe_writes += 1
            elif write.length > SNIFF_WINDOW:
                assert wanted <= write.data_offset + SNIFF_WINDOW < len(data)
                big_file_writes += 1
                if write.offset == 0:
                    full = data[write.data_offset : write.data_offset + write.length]
                    assert magic_of[(event.src_port, event.message_id)] == sniff_magic(full)
            assert [e for e in events if e.action != "rpc_call"] == []  # waits for the response
    assert big_file_writes >= 20 and pipe_writes >= 10


def test_pipe_calls_become_rpc_call_events(shared_data: Path) -> None:
    """Each DCE/RPC request tshark sees on an SMB2 pipe is one rpc_call event, same opnum, at
    the frame of its (first) request fragment, on the pipe the CREATE opened."""
    checked = 0
    for capture in all_captures(shared_data):
        events, diagnostics = decoded(capture)
        assert smb2_warnings(diagnostics) == [], capture
        rows = fields_by_frame(
            capture,
            "smb2.flags.response == 0 && dcerpc.pkt_type == 0",
            "dcerpc.cn_flags",
            "dcerpc.opnum",
            "tcp.segment",
        )
        expected = Counter()
        for frame, (flags, opnums, segments) in rows.items():
            # A message over several segments starts in the first (tshark shows it in the last).
            start = min(int(s) for s in segments.split(",")) if segments else frame
            for flag, opnum in zip(flags.split(","), opnums.split(","), strict=True):
                if int(flag, 16) & 0x01:  # PFC_FIRST_FRAG: where a request begins
                    expected[(start, int(opnum))] += 1
        calls = [e for e in events if e.action == "rpc_call" and e.rpc_opnum is not None]
        assert Counter((e.source_ref, e.rpc_opnum) for e in calls) == expected, capture
        assert all(e.pipe and e.path == e.pipe and e.file_id for e in calls)
        checked += len(calls)
    assert checked >= 50


def test_smb3_encryption_is_reported_per_session_and_direction(shared_data: Path) -> None:
    for name in ("smb3-01", "smb3-03-midstream"):
        capture = corpus(shared_data, name)
        events, _ = decoded(capture)
        rows = fields_by_frame(
            capture, "smb2.header.transform.signature", "tcp.dstport", "smb2.sesid"
        )
        expected = {(int(port) == 445, int(session, 16)) for port, session in rows.values()}
        encrypted = [e for e in events if e.action == "encrypted"]
        assert len(encrypted) == len(expected) == 2  # one per session and direction
        assert {e.session_id for e in encrypted} == {session for _, session in expected}
        assert (
            all(e.encrypted and e.user == "administrator" for e in encrypted) or name != "smb3-01"
        )
    events, _ = decoded(corpus(shared_data, "smb3-01"))
    trees = {e.share_name: e for e in events if e.action == "tree_connect"}
    flags = fields_by_frame(
        corpus(shared_data, "smb3-01"),
        "smb2.cmd == 3 && smb2.flags.response == 1",
        "smb2.share_flags.encrypt_data",
    )
    assert sorted(value for (value,) in flags.values()) == ["0", "1"]
    assert trees["encrypted"].encrypted is True and trees["IPC$"].encrypted is None


def create_request(shared_data: Path) -> bytes:
    capture = corpus(shared_data, "smb2-ntlmssp-order")
    return next(
        msg
        for _, header, msg in smb2_commands(capture)
        if header.command == rec.CREATE and not header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
    )


def with_message_id(msg: bytes, message_id: int) -> bytes:
    return msg[:24] + struct.pack("<Q", message_id) + msg[32:]


def test_pending_requests_are_bounded_and_none_is_lost(shared_data: Path) -> None:
    request = create_request(shared_data)
    capture = corpus(shared_data, "smb2-ntlmssp-order")
    diagnostics = Diagnostics()
    decoder = Smb2Decoder(next(iter(endpoints_of(capture).values())), diagnostics)
    flood = MAX_PENDING + 1000
    events = []
    for message_id in range(flood):
        events += decoder.message(True, with_message_id(request, message_id), 0, 0, message_id)
    assert diagnostics.counts["smb2_pending_evicted"] == 1000
    assert len(events) == 1000  # pushed out unanswered, not lost
    assert len(events) + len(decoder.finish()) == flood


def test_open_files_are_bounded(shared_data: Path) -> None:
    capture = corpus(shared_data, "smb2-ntlmssp-order")
    response = next(
        msg
        for _, header, msg in smb2_commands(capture)
        if header.command == rec.CREATE
        and header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
        and header.status == SUCCESS
    )
    diagnostics = Diagnostics()
    decoder = Smb2Decoder(next(iter(endpoints_of(capture).values())), diagnostics)
    file_id_at = rec.HEADER_SIZE + 64
    for number in range(MAX_FILES + 500):
        file_id = struct.pack("<QQ", number, number)
        msg = response[:file_id_at] + file_id + response[file_id_at + 16 :]
        assert len(decoder.message(False, msg, len(msg), 0, number)) == 1
    assert diagnostics.counts["smb2_state_evicted"] == 500
