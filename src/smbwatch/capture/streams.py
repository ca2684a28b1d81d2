"""The frame loop: every frame of a capture through the link, IP and TCP headers
(``link.read_segment``), the choice of flows (``flows``) and TCP reassembly (``tcp``), into the
consumer of each connection.

Frames come from a ``pcap.FrameReader`` (a capture file, or any other frame source written as
one); what the consumers make of the bytes (events) is theirs to collect. ``advance`` runs the
loop until a frame has made something, so that a caller can take it in while the capture is
read, and stops at a safe point when a stop was asked for (``interrupt``).
"""

from __future__ import annotations

from typing import Final

from smbwatch.capture.flows import EVERY_FLOW, Flows, FlowShare
from smbwatch.capture.link import Segment, read_segment
from smbwatch.capture.pcap import FrameReader
from smbwatch.capture.tcp import ConsumerFactory, TcpReassembler
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.interrupt import check as check_interrupt

CHECK_EVERY: Final = 1023  # frames between looks at whether a stop was asked for (a mask)


class TcpStreams:
    """The TCP streams of one capture, fed to the consumers ``factory`` makes for the
    connections of ``share``."""

    def __init__(
        self,
        frames: FrameReader,
        factory: ConsumerFactory,
        diagnostics: Diagnostics,
        share: FlowShare = EVERY_FLOW,
    ) -> None:
        self.frames = frames
        self.diagnostics = diagnostics
        self.flows = Flows(share)
        self.reassembler = TcpReassembler(factory, diagnostics, share)
        self.segment = Segment()
        self.ended = False

    def advance(self, made: list[SmbEvent]) -> bool:
        """Read frames until the consumers have put something in ``made`` (the list they
        were given), or to the end of the capture, where every connection is closed (what that
        makes is in ``made`` too). False once the capture is over."""
        if self.ended:
            return False
        frames, segment, reassembler = self.frames, self.segment, self.reassembler
        diagnostics, flows = self.diagnostics, self.flows
        while frames.next():
            frame = frames.number
            if not frame & CHECK_EVERY:
                check_interrupt()
            if read_segment(
                frames.linktype, frames.buf, frames.start, frames.stop, segment, diagnostics, flows
            ):
                reassembler.segment(segment, frames.time, frame)
                if made:
                    return True
        self.ended = True
        reassembler.finish()
        return True
