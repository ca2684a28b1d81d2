"""Test helper: the bytes of each named pipe (or DCE/RPC TCP connection) in a capture, via tshark;
and PDUs as impacket builds them.

tshark is run with its DCE/RPC dissector disabled, so the SMB2 WRITE/READ/IOCTL payloads come out
raw (``data.data``); they are grouped per pipe (TCP stream + FileId) in capture order. This is
the independent source of pipe bytes for the dcerpc tests, apart from smbwatch's own SMB layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from impacket.dcerpc.v5.rpcrt import MSRPC_BIND, CtxItem, MSRPCBind, MSRPCHeader
from impacket.uuid import uuidtup_to_bin
from oracle import tshark_fields

from smbwatch.dcerpc.interfaces import NDR_UUID
from smbwatch.dcerpc.pipe import RpcCall, RpcPipe
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

SMB2_CREATE, SMB2_READ, SMB2_WRITE, SMB2_IOCTL = 5, 8, 9, 11
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
STATUS_PENDING = 0x00000103


@dataclass
class Chunk:
    """Bytes written to (``from_client``) or read from a pipe, with their frame and time."""

    from_client: bool
    data: bytes
    time: int
    frame: int


@dataclass
class PipeStream:
    """Everything that crossed one pipe, in order."""

    name: str | None
    chunks: list[Chunk] = field(default_factory=list)


def bind_pdu(interface_uuid: str, version: str) -> bytes:
    """A BIND PDU offering one interface over NDR, as impacket's DCERPC_v5.bind() builds it."""
    item = CtxItem()
    item["AbstractSyntax"] = uuidtup_to_bin((interface_uuid, version))
    item["TransferSyntax"] = uuidtup_to_bin((NDR_UUID, "2.0"))
    item["ContextID"] = 0
    item["TransItems"] = 1
    bind = MSRPCBind()
    bind["max_tfrag"] = bind["max_rfrag"] = 4280
    bind.addCtxItem(item)
    header = MSRPCHeader()
    header["type"] = MSRPC_BIND
    header["call_id"] = 1
    header["pduData"] = bind.getData()
    return header.get_packet()


def epoch_micros(text: str) -> int:
    """``1600585067.403473000`` as integer microseconds, exactly."""
    seconds, _, fraction = text.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def smb2_pipes(capture: Path) -> list[PipeStream]:
    """The pipe streams of an SMB2 capture: CREATE names them, WRITE/READ/IOCTL carry bytes."""
    rows = tshark_fields(
        capture,
        " || ".join(f"smb2.cmd == {c}" for c in (SMB2_CREATE, SMB2_READ, SMB2_WRITE, SMB2_IOCTL)),
        [
            "frame.number",
            "frame.time_epoch",
            "tcp.stream",
            "smb2.cmd",
            "smb2.flags.response",
            "smb2.msg_id",
            "smb2.fid",
            "smb2.filename",
            "smb2.nt_status",
            "smb2.ioctl.function",
            "data.data",
        ],
        "--disable-protocol",
        "dcerpc",
    )
    pipes: dict[tuple[str, str], PipeStream] = {}
    names: dict[tuple[str, str], str] = {}  # CREATE request name by (stream, msg_id)
    request_fid: dict[tuple[str, str], str] = {}  # READ request FileId by (stream, msg_id)
    for frame, epoch, stream, cmd, response, msg_id, fid, name, status, function, data in rows:
        if "," in cmd:
            raise RuntimeError(f"frame {frame}: several SMB2 messages; helper handles one")
        command, is_response = int(cmd), response in ("1", "True")
        key = (stream, msg_id)
        if command == SMB2_CREATE:
            if not is_response:
                names[key] = name
            elif int(status, 16) == 0 and key in names:
                pipes[(stream, fid)] = PipeStream(names.pop(key))
            continue
        if command == SMB2_READ and not is_response:
            request_fid[key] = fid
            continue
        if is_response and status and int(status, 16) == STATUS_PENDING:
            continue
        if command == SMB2_IOCTL and int(function, 16) != FSCTL_PIPE_TRANSCEIVE:
            continue
        if command == SMB2_READ:
            fid = request_fid.get(key, "")
        pipe = pipes.get((stream, fid))
        if pipe is None or not data:
            continue
        pipe.chunks.append(
            Chunk(not is_response, bytes.fromhex(data), epoch_micros(epoch), int(frame))
        )
    return list(pipes.values())


def tcp_streams(capture: Path, port: int) -> list[PipeStream]:
    """DCE/RPC over TCP to ``port``: each connection's payload, client side first."""
    rows = tshark_fields(
        capture,
        f"tcp.port == {port} && tcp.len > 0",
        ["frame.number", "frame.time_epoch", "tcp.stream", "tcp.dstport", "tcp.payload"],
        "--disable-protocol",
        "dcerpc",
    )
    streams: dict[str, PipeStream] = {}
    for frame, epoch, stream, dst_port, payload in rows:
        pipe = streams.setdefault(stream, PipeStream(None))
        pipe.chunks.append(
            Chunk(int(dst_port) == port, bytes.fromhex(payload), epoch_micros(epoch), int(frame))
        )
    return list(streams.values())


def run_pipe(stream: PipeStream, diagnostics: Diagnostics | None = None) -> list[RpcCall]:
    """Feed one stream's chunks through an RpcPipe; every call it completes, then the rest."""
    pipe = RpcPipe(diagnostics or Diagnostics(), stream.name)
    calls: list[RpcCall] = []
    for chunk in stream.chunks:
        calls += pipe.feed(chunk.from_client, chunk.data, chunk.time, chunk.frame)
    return calls + pipe.finish()


def capture_calls(streams: list[PipeStream], diagnostics: Diagnostics | None = None):
    """All calls of all streams, requests before binds when they share a frame (none do)."""
    calls: list[RpcCall] = []
    for stream in streams:
        calls += run_pipe(stream, diagnostics)
    return calls


# What an rpc_call on a pipe says that a capture without the session's start still knows: all
# but the identity and the share, which came with the SESSION_SETUP and TREE_CONNECT.
CALL_FIELDS = (
    "time", "session_id", "tree_id", "file_id", "path", "pipe", "rpc_interface",
    "rpc_operation", "rpc_opnum", "rpc_status", "rpc_args", "service_name", "image_path",
)  # fmt: skip


def rpc_calls(capture: Path, client_port: int, frames_before: int = 0) -> list[dict]:
    """The rpc_call events of one connection (``CALL_FIELDS``, and the frame as counted in a
    capture ``frames_before`` frames longer at its start)."""
    return [
        {"frame": event.source_ref + frames_before}
        | {name: getattr(event, name) for name in CALL_FIELDS}
        for event in capture_events(str(capture), Diagnostics())
        if event.action == "rpc_call" and event.src_port == client_port and event.source_ref
    ]
