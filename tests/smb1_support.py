"""Helpers of the SMB1 decoder tests: real SMB1 messages out of captures, replayed by hand.

The messages are framed by smbwatch's capture layer (tested on its own in test_capture.py) with a
recorder in place of the decoder, so a test can feed the very same bytes to ``Smb1Decoder``
directly, damaged on purpose, and see exactly what the decoder does with each message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smbwatch.capture.endpoint import Endpoints
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.digests import InlineDigests
from smbwatch.filedata.transfers import Transfers
from smbwatch.options import Options
from smbwatch.pipeline import capture_events
from smbwatch.smb.nbss import Decoder
from smbwatch.smb.smb1 import Smb1Decoder

ENDPOINTS = Endpoints("10.0.0.1", 50000, "10.0.0.2", 445, "pcap", "replayed")


@dataclass(frozen=True)
class Message:
    """One whole SMB1 message as the NBSS layer hands it over."""

    from_client: bool
    data: bytes
    time: int
    frame: int


class _Recorder(Decoder):
    """A decoder that asks for every byte of each SMB1 message and keeps it."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__()
        self.wants_body = True  # nothing is left over: body() would be a bug
        self.messages = messages

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        return total_len

    def message(
        self, from_client: bool, data: bytes, total_len: int, time: int, frame: int
    ) -> list[SmbEvent]:
        self.messages.append(Message(from_client, data, time, frame))
        return []

    def body(self, from_client: bool, chunk: bytes) -> None:
        raise AssertionError("the recorder wanted everything")

    def body_gap(self, from_client: bool, length: int) -> None:
        raise AssertionError("the recorder wanted everything")

    def finish(self) -> list[SmbEvent]:
        return []


def smb1_connections(capture: Path) -> list[list[Message]]:
    """The SMB1 messages of each connection of a capture, in the order they complete."""
    connections: list[list[Message]] = []

    def recorder(endpoints: Endpoints, diagnostics: Diagnostics) -> _Recorder:
        connections.append([])
        return _Recorder(connections[-1])

    for _ in capture_events(str(capture), Diagnostics(), decoders={0xFF: recorder}):
        pass
    return connections


def smb1_events(capture: Path) -> tuple[list[SmbEvent], Diagnostics]:
    """smbwatch's SMB1 events of a capture, through the whole pipeline."""
    diagnostics = Diagnostics()
    events = list(capture_events(str(capture), diagnostics, decoders={0xFF: Smb1Decoder}))
    return events, diagnostics


def replay(messages: list[Message]) -> tuple[list[SmbEvent], Diagnostics]:
    """Feed messages to one fresh decoder as if they were one connection (files are hashed in
    this process: a test replays thousands of connections)."""
    diagnostics = Diagnostics()
    transfers = Transfers(Options(), diagnostics, digests=InlineDigests())
    decoder = Smb1Decoder(ENDPOINTS, diagnostics, transfers)
    events: list[SmbEvent] = []
    for m in messages:
        events += decoder.message(m.from_client, m.data, len(m.data), m.time, m.frame)
    events += decoder.finish()
    transfers.close()
    return events, diagnostics
