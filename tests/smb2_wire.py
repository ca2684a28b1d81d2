"""Real SMB2 messages out of the shared captures, cut by tshark, for the decoder's tests.

tshark gives the TCP payload of every segment on ports 139/445 with its raw sequence number;
this helper lays the segments of each direction out by sequence number and cuts the NetBIOS
session messages (RFC 1002 4.3.1) out of the bytes. It is the tests' own independent framing,
so the decoder can be tested on real traffic apart from smbwatch's capture layer.
"""

from __future__ import annotations

import bisect
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from oracle import tshark, tshark_fields

from smbwatch.capture.endpoint import Endpoints
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import capture_events
from smbwatch.smb import smb2_records as rec
from smbwatch.smb.smb2 import Smb2Decoder

SMB_PORTS = (139, 445)
NBSS_SESSION_MESSAGE = 0x00


@dataclass
class WireMessage:
    """One NetBIOS session message: the SMB bytes, and where and when it started."""

    stream: int
    frame: int
    time: int  # microseconds since the epoch
    from_client: bool
    data: bytes


def epoch_micros(text: str) -> int:
    """Exact microseconds of tshark's ``frame.time_epoch`` (no float rounding)."""
    seconds, _, fraction = text.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


@functools.cache
def wire_messages(capture: Path) -> list[WireMessage]:
    """Every NetBIOS session message of every SMB connection, in the order they began."""
    out = tshark(
        "-r",
        str(capture),
        "-Y",
        "tcp.len > 0 && (tcp.port == 445 || tcp.port == 139)",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "frame.time_epoch",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.dstport",
        "-e",
        "tcp.seq_raw",
        "-e",
        "tcp.payload",
    )
    # (stream, from_client) -> {seq: (frame, time, payload)}
    segments: dict[tuple[int, bool], dict[int, tuple[int, int, bytes]]] = {}
    for line in out.splitlines():
        frame, time, stream, dst_port, seq, payload = line.split("\t")
        direction = (int(stream), int(dst_port) in SMB_PORTS)
        by_seq = segments.setdefault(direction, {})
        data = bytes.fromhex(payload)
        if len(data) > len(by_seq.get(int(seq), (0, 0, b""))[2]):  # a retransmission may be shorter
            by_seq[int(seq)] = (int(frame), epoch_micros(time), data)
    messages = []
    for (stream, from_client), by_seq in segments.items():
        messages.extend(_nbss_messages(stream, from_client, by_seq))
    messages.sort(key=lambda message: message.frame)
    return messages


def _nbss_messages(
    stream: int, from_client: bool, by_seq: dict[int, tuple[int, int, bytes]]
) -> list[WireMessage]:
    base = min(by_seq)
    data = bytearray()
    starts: list[int] = []  # byte position where each segment begins
    origins: list[tuple[int, int]] = []
    for seq in sorted(by_seq):
        frame, time, payload = by_seq[seq]
        position = seq - base
        if position > len(data):
            break  # a gap: what follows cannot be framed
        starts.append(position)
        origins.append((frame, time))
        data[position : position + len(payload)] = payload
    messages = []
    offset = 0
    while offset + 4 <= len(data):
        kind = data[offset]
        length = int.from_bytes(data[offset + 1 : offset + 4], "big")
        end = offset + 4 + length
        if end > len(data):
            break
        if kind == NBSS_SESSION_MESSAGE and length:
            frame, time = origins[bisect.bisect_right(starts, offset) - 1]
            body = bytes(data[offset + 4 : end])
            messages.append(WireMessage(stream, frame, time, from_client, body))
        offset = end
    return messages


def endpoints_of(capture: Path) -> dict[int, Endpoints]:
    """Client and server of every TCP stream on 139/445, from its first segment."""
    out = tshark(
        "-r",
        str(capture),
        "-Y",
        "tcp.port == 445 || tcp.port == 139",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "ip.src",
        "-e",
        "ipv6.src",
        "-e",
        "tcp.srcport",
        "-e",
        "ip.dst",
        "-e",
        "ipv6.dst",
        "-e",
        "tcp.dstport",
    )
    found: dict[int, Endpoints] = {}
    for line in out.splitlines():
        stream, src4, src6, src_port, dst4, dst6, dst_port = line.split("\t")
        if int(stream) in found:
            continue
        client = (src4 or src6, int(src_port))
        server = (dst4 or dst6, int(dst_port))
        if int(src_port) in SMB_PORTS:
            client, server = server, client
        found[int(stream)] = Endpoints(
            client[0], client[1], server[0], server[1], "pcap", str(capture)
        )
    return found


def decode(capture: Path, diagnostics: Diagnostics | None = None) -> list[SmbEvent]:
    """Every SMB2 event of a capture: each message offered to the decoder as NbssStream would."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    endpoints = endpoints_of(capture)
    decoders: dict[int, Smb2Decoder] = {}
    events: list[SmbEvent] = []
    for message in wire_messages(capture):
        if message.data[:4] not in (b"\xfeSMB", b"\xfdSMB", b"\xfcSMB"):
            continue
        decoder = decoders.get(message.stream)
        if decoder is None:
            decoder = Smb2Decoder(endpoints[message.stream], diagnostics)
            decoders[message.stream] = decoder
        events.extend(feed(decoder, message))
    for decoder in decoders.values():
        events.extend(decoder.finish())
    return events


def feed(decoder: Smb2Decoder, message: WireMessage) -> list[SmbEvent]:
    """One message through wanted/message/body, the way the framing layer calls a decoder."""
    data = message.data
    wanted = decoder.wanted(message.from_client, data[:512], len(data))
    events = decoder.message(
        message.from_client, data[:wanted], len(data), message.time, message.frame
    )
    if wanted < len(data):
        decoder.body(message.from_client, data[wanted:])
    return events


@functools.cache
def smb2_commands(capture: Path) -> list[tuple[WireMessage, rec.Header, bytes]]:
    """Every unencrypted SMB2 command of a capture, compounds split, with its header."""
    commands = []
    for message in wire_messages(capture):
        data, start = message.data, 0
        while data.startswith(rec.PROTOCOL_ID, start):
            header = rec.parse_header(data[start:])
            end = start + header.next_command if header.next_command else len(data)
            commands.append((message, header, data[start:end]))
            if not header.next_command:
                break
            start = end
    return commands


def security_buffers(capture: Path) -> list[tuple[int, bool, bytes]]:
    """(frame, from_client, security buffer) of every SESSION_SETUP request and response."""
    found = []
    for message, header, msg in smb2_commands(capture):
        if header.command != rec.SESSION_SETUP:
            continue
        if header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR:
            if header.status in (0, 0xC0000016):  # SUCCESS, MORE_PROCESSING_REQUIRED
                found.append((message.frame, False, rec.parse_session_setup_response(msg)[1]))
        else:
            found.append((message.frame, True, rec.session_setup_request_buffer(msg)))
    return found


@functools.cache
def fields_by_frame(capture: Path, display_filter: str, *fields: str) -> dict[int, list[str]]:
    """The values of ``fields`` in each frame that matches, by frame number (read once per
    capture and filter: do not change what it returns)."""
    rows = tshark_fields(capture, display_filter, ["frame.number", *fields])
    return {int(frame): list(values) for frame, *values in rows}


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"


def all_captures(shared_data: Path) -> list[Path]:
    """Every capture of the shared corpus, and the repository's example (Samba 4.17, SMB 3.1.1,
    3.0.2, encryption, SMB1: see examples/README.md)."""
    captures = sorted(shared_data.glob("suricata-verify/*/*.pcap"))
    return [*captures, *sorted(shared_data.glob("pcap/*.cap")), EXAMPLE]


@dataclass
class TsharkPdu:
    """One SMB2 command as tshark dissects it: header values and every field's values."""

    frame: int
    connection: tuple[str, int, str, int]  # client ip, client port, server ip, server port
    response: bool
    command: int
    message_id: int
    status: int | None
    fields: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


@functools.cache
def tshark_smb2_pdus(capture: Path) -> list[TsharkPdu]:
    """Every SMB2 command tshark dissects in a capture, in order (PDML, one element per PDU)."""
    pdml = tshark("-r", str(capture), "-Y", "smb2", "-T", "pdml")
    pdus = []
    for _, packet in ElementTree.iterparse(io.StringIO(pdml)):
        if packet.tag != "packet":
            continue
        addresses: dict[str, str] = {}
        for proto in packet.findall("proto"):
            if proto.get("name") in ("frame", "ip", "ipv6", "tcp"):
                for field in proto.iter("field"):
                    name = field.get("name")
                    if name in (
                        "frame.number",
                        "ip.src",
                        "ip.dst",
                        "ipv6.src",
                        "ipv6.dst",
                        "tcp.srcport",
                        "tcp.dstport",
                    ):
                        addresses.setdefault(name.replace("ipv6", "ip"), field.get("show"))
            if proto.get("name") != "smb2":
                continue
            fields: dict[str, list[str]] = {}
            for field in proto.iter("field"):
                fields.setdefault(field.get("name") or "", []).append(field.get("show") or "")
            if "smb2.cmd" not in fields:
                continue  # an encrypted or compressed message
            response = fields["smb2.flags.response"][0] == "1"
            src = (addresses["ip.src"], int(addresses["tcp.srcport"]))
            dst = (addresses["ip.dst"], int(addresses["tcp.dstport"]))
            client, server = (dst, src) if response else (src, dst)
            status = fields.get("smb2.nt_status")
            pdus.append(
                TsharkPdu(
                    frame=int(addresses["frame.number"]),
                    connection=(*client, *server),
                    response=response,
                    command=int(fields["smb2.cmd"][0]),
                    message_id=int(fields["smb2.msg_id"][0]),
                    status=int(status[0], 16) if status else None,
                    fields=fields,
                )
            )
        packet.clear()
    return pdus


SMB2_WARNINGS = ("smb2_", "decoder_error", "smb_resync", "smb_message_")


def smb2_warnings(diagnostics: Diagnostics) -> list[str]:
    """Warnings of the SMB2 decoder and its framing (not SMB1's, DCE/RPC's or the reader's)."""
    return [kind for kind in diagnostics.counts if kind.startswith(SMB2_WARNINGS)]


@functools.cache
def decoded(capture: Path) -> tuple[list[SmbEvent], Diagnostics]:
    """The SMB2 events smbwatch's pipeline makes of a capture, and its warnings (once)."""
    diagnostics = Diagnostics()
    events = capture_events(str(capture), diagnostics, decoders={0xFE: Smb2Decoder})
    return [event for event in events if event.dst_port in SMB_PORTS], diagnostics
