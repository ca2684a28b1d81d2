"""Helpers for the file-transfer tests: smbwatch's file summaries, and an independent account of
the same transfers read straight off the wire.

``wire_transfers`` takes the NetBIOS messages that tshark's TCP reassembly yields
(``smb2_wire.wire_messages``) and walks the SMB2 WRITE requests and READ responses with its own
few lines of MS-SMB2 struct layouts (no smbwatch parser), collecting each file's data by offset:
the oracle for ``bytes_seen``, completeness and the hashes on real captures.
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


def wire_transfers(capture: Path) -> dict[tuple[str, str], WireTransfer]:
    """Every file transfer (not named pipes) of a capture, by (file id hex, direction)."""
    share_types: dict[tuple[int, int], int] = {}  # (stream, tree id) -> ShareType
    creates: dict[tuple[int, int], int] = {}  # pending CREATE: (stream, message id) -> tree id
    reads: dict[tuple[int, int], tuple[bytes, int]] = {}  # pending READ: file id, offset
    sizes: dict[bytes, int] = {}
    pipes: set[bytes] = set()
    transfers: dict[tuple[str, str], WireTransfer] = {}

    def piece(file_id: bytes, direction: str, offset: int, data: bytes) -> None:
        if file_id in pipes or not data:
            return
        key = (file_id.hex(), direction)
        transfer = transfers.setdefault(key, WireTransfer(sizes.get(file_id, 0)))
        transfer.pieces[offset] = data

    for message in wire_messages(capture):
        data, start, chain_file = message.data, 0, b""
        while data[start : start + 4] == b"\xfeSMB":
            header = _HEADER.unpack_from(data, start)
            _, _, _, status, command, _, flags, next_command, message_id, tree_id = header
            msg = data[start : start + next_command] if next_command else data[start:]
            key = (message.stream, message_id)
            response = flags & _RESPONSE
            if command == _TREE_CONNECT and response and status == _SUCCESS:
                share_types[(message.stream, tree_id)] = msg[66]
            elif command == _CREATE and not response:
                creates[key] = tree_id
            elif command == _CREATE and response and status == _SUCCESS:
                end_of_file, file_id = struct.unpack_from("<Q8x16s", msg, 64 + 48)
                sizes[file_id], chain_file = end_of_file, file_id
                if share_types.get((message.stream, creates.pop(key, -1))) == 2:
                    pipes.add(file_id)
            elif command == _WRITE and not response:
                data_offset, length, offset, file_id = struct.unpack_from("<2xHIQ16s", msg, 64)
                piece(file_id, "upload", offset, msg[data_offset : data_offset + length])
            elif command == _READ and not response:
                _, offset, file_id = struct.unpack_from("<4xIQ16s", msg, 64)
                reads[key] = (file_id, offset)
            elif command == _READ and response and status in (_SUCCESS, _BUFFER_OVERFLOW):
                data_offset, length = struct.unpack_from("<2xBxI", msg, 64)
                file_id, offset = reads.pop(key, (b"", -1))
                if file_id == _ALL_ONES:
                    file_id = chain_file
                if offset >= 0:
                    piece(file_id, "download", offset, msg[data_offset : data_offset + length])
            if not next_command:
                break
            start += next_command
    return transfers


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
