"""The frame loop: every frame of a capture through the link, IP and TCP headers, the choice of
flows (``flows``) and TCP reassembly (``tcp``), into the consumer of each connection.

A capture file mapped whole takes the native path (``native.NativeStreams``: the frame walk, the
headers and reassembly in C); anything else the Python one, frames of a ``pcap.FrameReader``
through ``link.read_segment`` (``FrameSegments``, filling a ``link.Segment`` record) into
``tcp.TcpReassembler``. Both make the same calls to the consumers. What the consumers make of
the bytes (events) is theirs to collect. ``advance`` runs the loop until a segment has made
something, so that a caller can take it in while the capture is read, and stops at a safe point
when a stop was asked for (``interrupt``).
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
SAMPLE_PLACES: Final = 64  # places across a capture whose frames ``smb_share`` looks at
SAMPLE_FRAMES: Final = 64  # frames at each


class NativeStreams(Protocol):
    """``native.NativeStreams``, the native path (built with a C compiler at install time)."""

    def advance(self, made: list[SmbEvent], segment: Segment) -> bool: ...

    def finish(self) -> None: ...


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


def smb_share(frames: FrameReader) -> float | None:
    """The share of the bytes of frames sampled across the capture (``FrameReader.sample``:
    ``SAMPLE_PLACES`` places, ``SAMPLE_FRAMES`` frames at each) that are segments of SMB's ports
    (or of DCE/RPC over TCP, as far as the sample shows one): how much of the capture is work
    for the decoders rather than frames to walk past. None without a sample."""
    if frames.mapped is None:
        return None
    flows, segment, diagnostics = Flows(EVERY_FLOW), Segment(), Diagnostics()
    total = smb = 0
    for linktype, start, stop in frames.sample(SAMPLE_PLACES, SAMPLE_FRAMES):
        total += stop - start
        if read_segment(linktype, frames.mapped, start, stop, segment, diagnostics, flows):
            smb += stop - start
    return smb / total if total else None


def native_path() -> bool:
    """Whether the native capture path is built and wanted (``SMBWATCH_PURE_PYTHON`` unset)."""
    if os.environ.get("SMBWATCH_PURE_PYTHON"):
        return False
    try:
        from smbwatch.capture import native  # noqa: F401
    except ImportError:  # built without a C compiler: the Python path alone
        return False
    return True


def native_streams(
    frames: FrameReader, factory: ConsumerFactory, diagnostics: Diagnostics, flows: Flows
) -> NativeStreams | None:
    """The native path for a capture file mapped whole, read from its start (else None)."""
    if frames.mapped is not None and frames.kind and frames.number == 0 and native_path():
        from smbwatch.capture import native

        streams = native.NativeStreams(frames, factory, diagnostics, flows)
        frames.before_close(streams.close)
        return streams
    return None


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
        flows = Flows(share)
        self.native = native_streams(frames, factory, diagnostics, flows)
        # the Python path, when the native one does not read the capture
        self.source = FrameSegments(frames, diagnostics, flows)
        self.reassembler = TcpReassembler(factory, diagnostics, share)
        self.segment = Segment()  # its frame: the one that made the last events
        self.ended = False

    def advance(self, made: list[SmbEvent]) -> bool:
        """Read frames until the consumers have put something in ``made`` (the list they
        were given), or to the end of the capture, where every connection is closed (what that
        makes is in ``made`` too). False once the capture is over."""
        if self.ended:
            return False
        native = self.native
        if native is not None:
            if native.advance(made, self.segment):
                return True
            self.ended = True
            native.finish()
            return True
        source, segment, reassembler = self.source, self.segment, self.reassembler
        while source.next(segment):
            reassembler.segment(segment)
            if made:
                return True
        self.ended = True
        reassembler.finish()
        return True
