"""Helpers for the file-transfer tests: smbwatch's file summaries, and an independent account of
the same transfers read straight off the wire.

``wire_transfers`` takes the NetBIOS messages that tshark's TCP reassembly yields
(``smb2_wire.wire_messages``) and walks the SMB2 WRITE/READ and SMB1 WRITE_ANDX/READ_ANDX
commands with its own few lines of MS-SMB2 and MS-CIFS struct layouts (no smbwatch parser),
collecting each file's data by offset: the oracle for ``bytes_seen``, completeness and the hashes
on real captures.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from smb2_wire import wire_messages

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.options import Options
from smbwatch.pipeline import capture_events

# MS-SMB2 2.2.1: ProtocolId, StructureSize, CreditCharge, Status, Command, Credit, Flags,
# NextCommand, MessageId, (Reserved, TreeId | AsyncId), SessionId
_HEADER = struct.Struct("<4sHHIHHIIQ4xI8x")
_RESPONSE = 0x1
_CREATE, _READ, _WRITE, _TREE_CONNECT = 0x05, 0x08, 0x09, 0x03
_SUCCESS, _BUFFER_OVERFLOW, _PENDING = 0, 0x80000005, 0x103
_ALL_ONES = b"\xff" * 16


@dataclass
class WireTransfer:
    """The data of one file in one direction as the wire carried it."""

    end_of_file: int = 0  # from the CREATE response
    pieces: dict[int, bytes] = field(default_factory=dict)  # by offset (the last one wins)

    def ranges(self) -> list[tuple[int, int]]:
        merged: list[list[int]] = []
        for start, data in sorted(self.pieces.items()):
            end = start + len(data)
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            elif data:
                merged.append([start, end])
        return [(start, end) for start, end in merged]

    @property
    def bytes_seen(self) -> int:
        return sum(end - start for start, end in self.ranges())

    @property
    def size(self) -> int:
        ranges = self.ranges()
        return max(self.end_of_file, ranges[-1][1] if ranges else 0)

    def content(self) -> bytes | None:
        """The whole file, when every byte of it crossed the wire."""
        if self.ranges() != [(0, self.size)]:
            return None
        data = bytearray(self.size)
        for start, piece in sorted(self.pieces.items()):
            data[start : start + len(piece)] = piece
        return bytes(data)


class _Wire:
    """What the walk remembers across the messages of a capture."""

    def __init__(self) -> None:
        self.pipe_trees: set[tuple[int, int]] = set()  # (stream, tree id) of IPC$ trees
        self.creates: dict[tuple[int, int], int] = {}  # pending CREATE -> its tree id
        self.reads: dict[tuple, tuple[bytes, int]] = {}  # pending READ -> file id, offset
        self.sizes: dict[bytes, int] = {}
        self.pipes: set[bytes] = set()
        self.transfers: dict[tuple[str, str], WireTransfer] = {}

    def opened(self, stream: int, key: tuple, file_id: bytes, end_of_file: int) -> None:
        self.sizes[file_id] = end_of_file
        if (stream, self.creates.pop(key, -1)) in self.pipe_trees:
            self.pipes.add(file_id)

    def piece(self, file_id: bytes, direction: str, offset: int, data: bytes) -> None:
        if file_id in self.pipes or not data:
            return
        key = (file_id.hex(), direction)
        transfer = self.transfers.setdefault(key, WireTransfer(self.sizes.get(file_id, 0)))
        transfer.pieces[offset] = data


def wire_transfers(capture: Path) -> dict[tuple[str, str], WireTransfer]:
    """Every file transfer (not named pipes) of a capture, by (file id hex, direction)."""
    wire = _Wire()
    for message in wire_messages(capture):
        if message.data.startswith(b"\xfeSMB"):
            _smb2(wire, message.stream, message.data)
        elif message.data.startswith(b"\xffSMB"):
            _smb1(wire, message.stream, message.data)
    return wire.transfers


def _smb2(wire: _Wire, stream: int, data: bytes) -> None:
    """The commands of one SMB2 message (MS-SMB2 2.2)."""
    start, chain_file = 0, b""
    while data[start : start + 4] == b"\xfeSMB":
        header = _HEADER.unpack_from(data, start)
        _, _, _, status, command, _, flags, next_command, message_id, tree_id = header
        msg = data[start : start + next_command] if next_command else data[start:]
        key = (stream, message_id)
        response = flags & _RESPONSE
        if command == _TREE_CONNECT and response and status == _SUCCESS and msg[66] == 2:
            wire.pipe_trees.add((stream, tree_id))  # ShareType SMB2_SHARE_TYPE_PIPE
        elif command == _CREATE and not response:
            wire.creates[key] = tree_id
        elif command == _CREATE and response and status == _SUCCESS:
            end_of_file, chain_file = struct.unpack_from("<Q8x16s", msg, 64 + 48)
            wire.opened(stream, key, chain_file, end_of_file)
        elif command == _WRITE and not response:
            data_offset, length, offset, file_id = struct.unpack_from("<2xHIQ16s", msg, 64)
            wire.piece(file_id, "upload", offset, msg[data_offset : data_offset + length])
        elif command == _READ and not response:
            _, offset, file_id = struct.unpack_from("<4xIQ16s", msg, 64)
            wire.reads[key] = (file_id, offset)
        elif command == _READ and response and status in (_SUCCESS, _BUFFER_OVERFLOW):
            data_offset, length = struct.unpack_from("<2xBxI", msg, 64)
            file_id, offset = wire.reads.pop(key, (b"", -1))
            if file_id == _ALL_ONES:
                file_id = chain_file
            if offset >= 0:
                wire.piece(file_id, "download", offset, msg[data_offset : data_offset + length])
        if not next_command:
            return
        start += next_command


# MS-CIFS 2.2.3.1: Protocol, Command, Status, Flags, Flags2, PIDHigh, SecurityFeatures,
# Reserved, TID, PIDLow, UID, MID
_SMB1_HEADER = struct.Struct("<4sBIBHH8x2xHHHH")
_NT_CREATE_ANDX, _READ_ANDX, _WRITE_ANDX, _TREE_CONNECT_ANDX = 0xA2, 0x2E, 0x2F, 0x75
_NO_ANDX = 0xFF
_ANDX = frozenset((0x24, 0x2D, 0x2E, 0x2F, 0x73, 0x74, 0x75, 0xA2))  # commands that chain


def _smb1(wire: _Wire, stream: int, msg: bytes) -> None:
    """The commands of one SMB1 message, following its AndX chain (MS-CIFS 2.2.4)."""
    _, command, status, flags, _, pid_high, tid, pid_low, _, mid = _SMB1_HEADER.unpack_from(msg)
    response = flags & 0x80
    key = (stream, pid_high << 16 | pid_low, mid)
    pos = 32
    while command != _NO_ANDX and pos < len(msg):
        words = msg[pos + 1 : pos + 1 + 2 * msg[pos]]
        data_start = pos + 3 + 2 * msg[pos]  # after WordCount, Words and ByteCount
        if command == _TREE_CONNECT_ANDX and response and status == 0:
            if msg[data_start : data_start + 4] == b"IPC\0":  # Service
                wire.pipe_trees.add((stream, tid))
        elif command == _NT_CREATE_ANDX and not response:
            wire.creates[key] = tid
        elif command == _NT_CREATE_ANDX and response and status == 0 and len(words) >= 68:
            fid, end_of_file, resource_type = struct.unpack_from("<5xH48xQH", words)
            wire.opened(stream, key, struct.pack(">H", fid), end_of_file)
            if resource_type in (1, 2):  # a named pipe
                wire.pipes.add(struct.pack(">H", fid))
        elif command == _WRITE_ANDX and not response:
            fid, offset, high, length, data_offset = struct.unpack_from("<4xHI8xHHH", words)
            if len(words) >= 28:
                offset |= struct.unpack_from("<I", words, 24)[0] << 32
            length |= high << 16
            wire.piece(
                struct.pack(">H", fid), "upload", offset, msg[data_offset : data_offset + length]
            )
        elif command == _READ_ANDX and not response:
            fid, offset = struct.unpack_from("<4xHI", words)
            if len(words) >= 24:
                offset |= struct.unpack_from("<I", words, 20)[0] << 32
            wire.reads[key] = (struct.pack(">H", fid), offset)
        elif command == _READ_ANDX and response and status == 0:
            length, data_offset, high = struct.unpack_from("<10xHHH", words)
            file_id, offset = wire.reads.pop(key, (b"", -1))
            if offset >= 0:
                data = msg[data_offset : data_offset + (length | high << 16)]
                wire.piece(file_id, "download", offset, data)
        if command not in _ANDX or len(words) < 4 or words[0] == _NO_ANDX:
            return
        if struct.unpack_from("<H", words, 2)[0] <= pos:
            return
        command, pos = words[0], struct.unpack_from("<H", words, 2)[0]


def decode(capture: Path, options: Options | None = None) -> tuple[list[SmbEvent], Diagnostics]:
    """smbwatch's events of a capture (the whole pipeline), and its warnings."""
    diagnostics = Diagnostics()
    events = list(capture_events(str(capture), diagnostics, options=options or Options()))
    return events, diagnostics


def summaries(events: Iterable[SmbEvent]) -> dict[tuple[str, str], SmbEvent]:
    """The close events that carry a file's summary, by (file id, direction)."""
    found: dict[tuple[str, str], SmbEvent] = {}
    for event in events:
        if event.direction is not None:
            key = (event.file_id or "", event.direction)
            assert key not in found, f"two summaries of {key}"
            found[key] = event
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
