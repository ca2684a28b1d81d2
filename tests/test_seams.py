"""The seams of the compiled packet path, subclassed in plain Python (CONTRIBUTING.md, "Seams").

``FrameReader``, ``StreamConsumer``, ``BodyTap`` and ``DigestService`` are compiled base classes
that allow interpreted subclasses: a live capture, another consumer of TCP streams, another
place for file data or another hash service can be written in Python and plugged into the
compiled code. Each is driven here with a real capture, and what comes out is checked against
tshark or against the built-in implementation of the same seam.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest
from oracle import tshark_tcp_stream

from smbwatch.capture.pcap import Buffer, FrameReader, read_frames, read_packets
from smbwatch.capture.streams import TcpStreams
from smbwatch.capture.tcp import NO_SKIP, BodyTap, Skip, StreamConsumer
from smbwatch.diagnostics import Diagnostics
from smbwatch.filedata.digests import Digests, DigestService
from smbwatch.filedata.transfers import Transfers
from smbwatch.options import HASHES, Bytes, Options
from smbwatch.pipeline import capture_events
from smbwatch.smb.smb1 import Smb1Decoder
from smbwatch.smb.smb2 import Smb2Decoder

pytestmark = pytest.mark.oracle

SKIPPED = 700  # bytes a consumer lets go past it to its tap after every payload it sees


def smb2_01(shared_data: Path) -> Path:
    return shared_data / "suricata-verify/smb2-01/smb2-peter.pcap"


class StreamTap(BodyTap):
    """The bytes a consumer skipped, appended to its copy of the stream in order."""

    def __init__(self, stream: bytearray) -> None:
        self.stream = stream
        self.gaps = 0

    def take(self, buf: Buffer, start: int, stop: int) -> None:
        self.stream += buf[start:stop]

    def gap(self, length: int) -> None:
        self.gaps += length


class SkippingConsumer(StreamConsumer):
    """Sees every payload, then lets the next ``SKIPPED`` bytes go to its tap: together they
    must be the connection's bytes, in order."""

    def __init__(self) -> None:
        self.streams = {True: bytearray(), False: bytearray()}
        self.taps = {side: StreamTap(stream) for side, stream in self.streams.items()}
        self.closed = False

    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        self.streams[from_client] += payload
        return SKIPPED, self.taps[from_client]

    def gap(self, from_client: bool, length: int) -> None:
        raise AssertionError("the capture has no gap")

    def close(self) -> None:
        self.closed = True


def reassemble(capture: Path, consumer: StreamConsumer) -> None:
    """Every frame of a capture through the compiled frame loop and reassembly."""
    diagnostics = Diagnostics()
    frames = read_frames(str(capture), diagnostics)
    streams = TcpStreams(frames, lambda *endpoints: consumer, diagnostics)
    while streams.advance([]):
        pass
    frames.close()


def test_a_python_consumer_and_tap_get_the_stream_tshark_reassembles(shared_data: Path) -> None:
    capture = smb2_01(shared_data)
    consumer = SkippingConsumer()
    reassemble(capture, consumer)
    expected = tshark_tcp_stream(capture, 0)
    assert len(expected[True]) > 80_000 and len(expected[False]) > 300_000
    assert bytes(consumer.streams[True]) == expected[True]
    assert bytes(consumer.streams[False]) == expected[False]
    assert consumer.closed and consumer.taps[True].gaps == consumer.taps[False].gaps == 0


def test_a_consumer_that_skips_nothing_gets_every_byte_itself(shared_data: Path) -> None:
    class Collector(SkippingConsumer):
        def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
            self.streams[from_client] += payload
            return NO_SKIP

    capture = smb2_01(shared_data)
    consumer = Collector()
    reassemble(capture, consumer)
    expected = tshark_tcp_stream(capture, 0)
    assert {side: bytes(data) for side, data in consumer.streams.items()} == expected


class ListedFrames(FrameReader):
    """Frames from a list (as a live capture would hand them over), each a ``bytes`` of its own."""

    def __init__(self, packets: list[tuple[int, int, int, bytes]]) -> None:
        super().__init__()
        self.packets = iter(packets)

    def next(self) -> bool:
        packet = next(self.packets, None)
        if packet is None:
            return False
        self.number, self.time, self.linktype, self.buf = packet
        self.start, self.stop = 0, len(self.buf)
        return True


def test_a_python_frame_reader_feeds_the_pipeline(shared_data: Path) -> None:
    capture = smb2_01(shared_data)
    packets = list(read_packets(str(capture), Diagnostics()))
    from_file = [e.to_dict() for e in capture_events(str(capture), Diagnostics())]
    listed = capture_events(str(capture), Diagnostics(), frames=ListedFrames(packets))
    assert [e.to_dict() for e in listed] == from_file
    assert sum(1 for e in from_file if e["action"] == "close" and "sha256" in e) > 20


class HashlibDigests(DigestService):
    """Digests computed in this process with hashlib, stream by stream."""

    def __init__(self) -> None:
        self.running: dict[int, list] = {}
        self.finished: dict[int, Digests] = {}
        self.closed = False

    def data(self, stream: int, buf: Bytes, start: int, stop: int) -> None:
        hashes = self.running.setdefault(stream, [hashlib.sha256(), hashlib.sha1(), hashlib.md5()])
        for digest in hashes:
            digest.update(buf[start:stop])

    def finish(self, stream: int) -> None:
        empty = [hashlib.sha256(), hashlib.sha1(), hashlib.md5()]
        sha256, sha1, md5 = (h.hexdigest() for h in self.running.pop(stream, empty))
        self.finished[stream] = (sha256, sha1, md5)

    def abandon(self, stream: int) -> None:
        self.running.pop(stream, None)

    def ready(self, stream: int) -> bool:
        return stream in self.finished

    def take(self, stream: int) -> Digests | None:
        return self.finished.pop(stream, None)

    def close(self) -> None:
        self.closed = True


def test_a_python_digest_service_hashes_what_the_hashing_process_hashes(
    shared_data: Path,
) -> None:
    capture = smb2_01(shared_data)
    diagnostics = Diagnostics()
    service = HashlibDigests()
    transfers = Transfers(Options(), diagnostics, digests=service)
    decoders = {
        0xFE: partial(Smb2Decoder, files=transfers),
        0xFF: partial(Smb1Decoder, files=transfers),
    }
    events = list(capture_events(str(capture), diagnostics, decoders=decoders))
    transfers.close()
    ours = [(e.source_ref, e.sha256, e.sha1, e.md5) for e in events if e.action == "close"]
    builtin = [
        (e.source_ref, e.sha256, e.sha1, e.md5)
        for e in capture_events(str(capture), Diagnostics(), options=Options(hashes=HASHES))
        if e.action == "close"
    ]
    assert ours == builtin and service.closed
    assert sum(1 for _, sha256, _, _ in ours if sha256) > 20
