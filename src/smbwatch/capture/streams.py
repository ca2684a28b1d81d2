"""The frame loop: every frame of a capture through the link, IP and TCP headers, the choice of
flows (``flows``) and TCP reassembly (``tcp``), into the consumer of each connection.

Segments come from a segment source: the native path (``native.NativeSegments``, the frame walk
and the headers in C) for a capture file mapped whole, else ``FrameSegments``, frames of a
``pcap.FrameReader`` through ``link.read_segment``; both fill the same ``link.Segment`` record
alike. What the consumers make of the bytes (events) is theirs to collect. ``advance`` runs the
loop until a segment has made something, so that a caller can take it in while the capture is
read, and stops at a safe point when a stop was asked for (``interrupt``).
"""

from __future__ import annotations

import os
from typing import Final, Protocol

from smbwatch.capture.flows import EVERY_FLOW, Flows, FlowShare
from smbwatch.capture.link import Segment, read_segment
from smbwatch.capture.pcap import FrameReader
from smbwatch.capture.tcp import ConsumerFactory, TcpReassembler
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.interrupt import check as check_interrupt

CHECK_EVERY: Final = 1023  # frames between looks at whether a stop was asked for (a mask)


class SegmentSource(Protocol):
    """Where segments come from: ``FrameSegments`` (Python) or ``native.NativeSegments``."""

    def next(self, segment: Segment) -> bool: ...


class FrameSegments:
    """The segments of SMB's ports and of DCE/RPC over TCP among the frames of a
    ``FrameReader``, read by ``link.read_segment``: the Python path."""

    def __init__(self, frames: FrameReader, diagnostics: Diagnostics, flows: Flows) -> None:
        self.frames = frames
        self.diagnostics = diagnostics
        self.flows = flows

    def next(self, segment: Segment) -> bool:
        """Fill ``segment`` with the next segment to decode; False at the end of the frames."""
        frames, diagnostics, flows = self.frames, self.diagnostics, self.flows
        while frames.next():
            frame = frames.number
            if not frame & CHECK_EVERY:
                check_interrupt()
            if read_segment(
                frames.linktype, frames.buf, frames.start, frames.stop, segment, diagnostics, flows
            ):
                segment.time, segment.frame = frames.time, frame
                return True
        return False


def native_path() -> bool:
    """Whether the native capture path is built and wanted (``SMBWATCH_PURE_PYTHON`` unset)."""
    if os.environ.get("SMBWATCH_PURE_PYTHON"):
        return False
    try:
        from smbwatch.capture import native  # noqa: F401
    except ImportError:  # built without a C compiler: the Python path alone
        return False
    return True


def segment_source(
    frames: FrameReader, diagnostics: Diagnostics, flows: Flows, reassembler: TcpReassembler
) -> SegmentSource:
    """The native path for a capture file mapped whole, read from its start; else Python's.
    (The native path drops the segments of other shares' connections itself, but for those due
    to ``reassembler``'s look for idle connections.)"""
    if frames.mapped is not None and frames.kind and frames.number == 0 and native_path():
        from smbwatch.capture.native import NativeSegments

        return NativeSegments(frames, diagnostics, flows, reassembler)
    return FrameSegments(frames, diagnostics, flows)


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
        self.reassembler = TcpReassembler(factory, diagnostics, share)
        self.source = segment_source(frames, diagnostics, Flows(share), self.reassembler)
        self.segment = Segment()
        self.ended = False

    def advance(self, made: list[SmbEvent]) -> bool:
        """Read frames until the consumers have put something in ``made`` (the list they
        were given), or to the end of the capture, where every connection is closed (what that
        makes is in ``made`` too). False once the capture is over."""
        if self.ended:
            return False
        source, segment, reassembler = self.source, self.segment, self.reassembler
        while source.next(segment):
            reassembler.segment(segment)
            if made:
                return True
        self.ended = True
        reassembler.finish()
        return True
