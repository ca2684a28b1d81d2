"""TCP reassembly: ordered bytes per direction, from the segments real captures contain.

Handles out-of-order segments (held, bounded), retransmissions and overlaps (trimmed), missing
segments (reported as a gap of N bytes so the consumer can resynchronise), captures that start
mid-connection, and frames the capture's snap length cut short (a gap too). It knows nothing of
SMB: a consumer per connection receives ``data`` and ``gap`` per direction, and ``close``.

``TcpReassembler`` is the Python path's. A memory-mapped capture is reassembled by the native
path (``native.pyx``'s ``NativeStreams``), which says the same rules again in C because the
bookkeeping per segment cost more in Python than reading the frames: it imports the bounds and
times below and opens connections with ``opening``; ``tests/test_native.py`` holds the two to
the same consumer calls and warnings, so a change here is made there too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Callable
from typing import Final

from mypy_extensions import mypyc_attr

from smbwatch.capture.flows import EVERY_FLOW, SMB_PORTS, FlowShare
from smbwatch.capture.link import Segment
from smbwatch.capture.pcap import Buffer
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import MAX_TIME

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
SEQ_MASK: Final = 0xFFFFFFFF
MAX_PENDING_BYTES: Final = 1 << 20  # out-of-order data held per direction before declaring a gap
MAX_PENDING_SEGMENTS: Final = 1024
# Connections followed at once (the least recently active are closed beyond): several KB of SMB
# state each, so a flood of a million connections that each negotiate peaks near 210 MB, as
# 16,384 do (tests/test_bounds.py; at 65,536 it was 500 MB).
MAX_CONNECTIONS: Final = 16384
LATE_SYN_WINDOW: Final = 1 << 30  # a SYN this close behind the stream belongs to it
# A connection with no segment for this long (capture time, µs) is closed: what it holds is
# delivered and its state freed, so that connections that end without a FIN or RST do not stay
# until the count bound closes them. Windows' SMB server ends a session idle this long
# (autodisconnect's default, 15 minutes): what comes later on the 4-tuple is a new connection,
# whether a sweep closed the old one already or not (so the rule does not depend on when
# sweeps run, nor on which other connections a -j worker follows). A time past year 9999 (a
# hostile if_tsresol) is no time: it closes nothing.
IDLE_TIMEOUT: Final = 15 * 60 * 1_000_000
IDLE_SWEEP_EVERY: Final = 60 * 1_000_000  # capture time between looks for idle connections


@mypyc_attr(allow_interpreted_subclasses=True)
class BodyTap:
    """Where the bytes a consumer did not need to see go after all, without passing through
    the consumer segment by segment: the file data that is hashed goes straight from the
    segment to the file's digests."""

    def take(self, buf: Buffer, start: int, stop: int) -> None:
        """The next bytes: ``buf[start:stop]``."""
        raise NotImplementedError

    def gap(self, length: int) -> None:
        """The next ``length`` bytes were never captured."""
        raise NotImplementedError


# What a consumer says of the bytes that follow ``data``'s: how many of them it does not need
# to see, and the tap they go to instead (None: nowhere).
Skip = tuple[int, BodyTap | None]
NO_SKIP: Final[Skip] = (0, None)


@mypyc_attr(allow_interpreted_subclasses=True)
class StreamConsumer:
    """What reassembly feeds: one per TCP connection (a base class rather than a Protocol, so
    that the compiled build calls it directly, once per segment).

    ``data`` returns how many of the bytes that follow in that direction the consumer does not
    need to see (the rest of a file transfer nobody inspects, or one that is only hashed), and
    where they go instead: reassembly then counts them off with no call to the consumer per
    segment, handing them to that tap (None: they go nowhere). The consumer has already
    accounted for them.
    """

    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        raise NotImplementedError

    def gap(self, from_client: bool, length: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# Called for each new connection: client address, client port, server address, server port, and
# the client's initial sequence number when the capture has the connection's SYN (else None).
ConsumerFactory = Callable[[str, int, str, int, int | None], StreamConsumer]


def connection_id(
    client: str, client_port: int, server: str, server_port: int, client_isn: int | None
) -> str:
    """One id per TCP connection, the same from every sensor that saw it (its ``conn_id``).

    What two sensors see alike is the 4-tuple and the sequence numbers; clocks differ, so a
    first time would be a weak key. With the client's initial sequence number the id tells
    apart connections that reused a 4-tuple (``C`` ids): from the SYN, or for DCE/RPC over TCP
    (taken up at its BIND, the first byte the client sends) from the BIND's. An SMB capture
    that missed the SYN only has the 4-tuple (``T`` ids, shared by such connections on it).
    """
    isn = "" if client_isn is None else str(client_isn)
    text = f"{client}|{client_port}|{server}|{server_port}|{isn}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return ("T" if client_isn is None else "C") + digest


class _Half:
    """One direction: where the next byte belongs, and segments that arrived early."""

    __slots__ = ("next_seq", "skip", "tap", "pending", "pending_bytes", "fin")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.skip = 0  # bytes to come that the consumer said it does not need
        self.tap: BodyTap | None = None  # ... and where they go
        self.pending: dict[int, tuple[bytes, int, int, int]] = {}
        self.pending_bytes = 0
        self.fin = False


class _Connection:
    __slots__ = ("consumer", "client", "server", "last_time", "keys", "seen_data")

    def __init__(self, consumer: StreamConsumer, keys: tuple[bytes, bytes], time: int) -> None:
        self.consumer = consumer
        self.client = _Half()
        self.server = _Half()
        self.last_time = time
        self.keys = keys
        self.seen_data = False


def _address(raw: bytes) -> str:
    """An address as ``ipaddress`` writes it; IPv4 without its objects (a connection each, and
    a scan opens hundreds of thousands: ``ipaddress`` took half the time of reading one)."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.ip_address(raw))


class TcpReassembler:
    """Routes segments to connections and delivers each direction's bytes in order."""

    def __init__(
        self, factory: ConsumerFactory, diagnostics: Diagnostics, share: FlowShare = EVERY_FLOW
    ) -> None:
        self.factory = factory
        self.diagnostics = diagnostics
        self.share = share  # the connections followed (the others are not even looked at)
        self.flows: dict[bytes, tuple[_Connection, bool]] = {}
        self.next_sweep = 0  # the capture time of the next look for idle connections

    def segment(self, seg: Segment) -> None:
        """Take one captured segment (see ``capture.link.read_segment``): its payload is read
        where it lies, and copied only when it is handed to a consumer or held."""
        time, frame = seg.time, seg.frame
        if time >= self.next_sweep and time <= MAX_TIME:
            self._close_idle(time)
        key = seg.key
        flags = seg.flags
        start, stop, cut = seg.start, seg.stop, seg.cut
        entry = self.flows.get(key)
        if entry is not None and time - entry[0].last_time > IDLE_TIMEOUT and time <= MAX_TIME:
            self._close(entry[0])  # idle too long: what comes now is a new connection
            entry = None
        if entry is not None and not flags & (SYN | FIN | RST) and stop > start:
            connection, from_client = entry
            half = connection.client if from_client else connection.server
            if seg.seq == half.next_seq and not half.pending:  # the common case: next in order
                connection.last_time = time
                connection.seen_data = True
                self._deliver(connection, half, from_client, seg.buf, start, stop, cut, time, frame)
                return
        if entry is not None and flags & SYN and entry[0].seen_data:
            half = entry[0].client if entry[1] else entry[0].server
            if _is_late_syn(half, seg.seq):
                return
            self._close(entry[0])  # the 4-tuple is reused by a new connection
            entry = None
        if entry is None:
            if flags & RST or not (stop > start or cut or flags & SYN):
                return  # a bare ACK or reset of a connection we never saw says nothing
            if not self.share.ours(key):
                return
            entry = self._open(key, seg.source_port, seg.destination_port, time, seg.seq, flags)
        connection, from_client = entry
        connection.last_time = time
        half = connection.client if from_client else connection.server
        if flags & SYN:
            half.next_seq = (seg.seq + 1) & SEQ_MASK
        elif stop > start or cut:
            connection.seen_data = True
            self._receive(connection, half, from_client, seg, time, frame)
        if flags & RST:
            self._close(connection)
        elif flags & FIN:
            half.fin = True
            if connection.client.fin and connection.server.fin:
                self._close(connection)

    def finish(self) -> None:
        """End of input: deliver what is held and close every connection."""
        for connection in {id(c): c for c, _ in self.flows.values()}.values():
            self._close(connection)

    def _open(
        self, key: bytes, source_port: int, destination_port: int, time: int, seq: int, flags: int
    ) -> tuple[_Connection, bool]:
        from_client, to_server, to_client, endpoints = opening(
            key, source_port, destination_port, seq, flags
        )
        if len(self.flows) >= 2 * MAX_CONNECTIONS:
            self._evict()
        consumer = self.factory(*endpoints)
        connection = _Connection(consumer, (to_server, to_client), time)
        self.flows[to_server] = (connection, True)
        self.flows[to_client] = (connection, False)
        return connection, from_client

    def _evict(self) -> None:
        """Close the least recently active tenth of the connections (bounded state)."""
        connections = sorted(
            {id(c): c for c, _ in self.flows.values()}.values(), key=lambda c: c.last_time
        )
        victims = connections[: max(1, len(connections) // 10)]
        self.diagnostics.warn("tcp_connections_evicted", f"{len(victims)} idle connections")
        for connection in victims:
            self._close(connection)

    def _close_idle(self, now: int) -> None:
        """Close the connections idle for ``IDLE_TIMEOUT`` at capture time ``now``."""
        self.next_sweep = now + IDLE_SWEEP_EVERY
        connections = [c for c, from_client in self.flows.values() if from_client]
        for connection in connections:
            if now - connection.last_time > IDLE_TIMEOUT:
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        for from_client, half in ((True, connection.client), (False, connection.server)):
            while half.pending:
                self._skip_to_earliest(connection, half, from_client)
        for key in connection.keys:
            self.flows.pop(key, None)
        connection.consumer.close()

    def _receive(
        self,
        connection: _Connection,
        half: _Half,
        from_client: bool,
        seg: Segment,
        time: int,
        frame: int,
    ) -> None:
        seq, buf, start, stop, cut = seg.seq, seg.buf, seg.start, seg.stop, seg.cut
        if half.next_seq is None:
            half.next_seq = seq  # the capture starts mid-connection
        ahead = (seq - half.next_seq) & SEQ_MASK
        if ahead and ahead < 0x80000000:
            self._hold(connection, half, from_client, seq, buf[start:stop], cut, time, frame)
            return
        if ahead:
            behind = 0x100000000 - ahead
            if behind >= stop - start + cut:
                return  # a pure retransmission
            cut -= max(0, behind - (stop - start))
            start = min(stop, start + behind)
        self._deliver(connection, half, from_client, buf, start, stop, cut, time, frame)
        if half.pending:
            self._drain(connection, half, from_client)

    def _deliver(
        self,
        connection: _Connection,
        half: _Half,
        from_client: bool,
        buf: Buffer,
        start: int,
        stop: int,
        cut: int,
        time: int,
        frame: int,
    ) -> None:
        """The next bytes of the direction, ``buf[start:stop]`` and ``cut`` more never
        captured: the skipped ones to the tap, the rest (copied) to the consumer."""
        half.next_seq = (half.next_seq + stop - start + cut) & SEQ_MASK  # type: ignore[operator]
        if half.skip:
            skipped = min(half.skip, stop - start)
            if half.tap is not None:
                half.tap.take(buf, start, start + skipped)
            start, half.skip = start + skipped, half.skip - skipped
        if stop > start:
            half.skip, half.tap = connection.consumer.data(
                from_client, buf[start:stop], time, frame
            )
        if cut:
            self.diagnostics.warn("snaplen_cut", "frames shorter than their TCP payload")
            self._lost(connection, half, from_client, cut)

    def _lost(self, connection: _Connection, half: _Half, from_client: bool, length: int) -> None:
        """Bytes that never reached the capture: within skipped bytes they do not matter."""
        inside = min(half.skip, length)
        half.skip -= inside
        if inside and half.tap is not None:
            half.tap.gap(inside)
        if length > inside:
            connection.consumer.gap(from_client, length - inside)

    def _hold(
        self,
        connection: _Connection,
        half: _Half,
        from_client: bool,
        seq: int,
        payload: bytes,
        cut: int,
        time: int,
        frame: int,
    ) -> None:
        held = half.pending.get(seq)
        if held is not None and len(held[0]) + held[1] >= len(payload) + cut:
            return
        half.pending[seq] = (payload, cut, time, frame)
        half.pending_bytes += len(payload)
        if half.pending_bytes > MAX_PENDING_BYTES or len(half.pending) > MAX_PENDING_SEGMENTS:
            self._skip_to_earliest(connection, half, from_client)

    def _drain(self, connection: _Connection, half: _Half, from_client: bool) -> None:
        """Deliver held segments that now continue the stream (exactly or overlapping)."""
        pending = half.pending
        while pending:
            seq = half.next_seq
            held = pending.pop(seq, None)  # type: ignore[arg-type]
            if held is None:
                behind = [s for s in pending if (s - seq) & SEQ_MASK >= 0x80000000]  # type: ignore[operator]
                if not behind:
                    return
                held = pending.pop(behind[0])
                payload, cut = held[0], held[1]
                half.pending_bytes -= len(payload)
                over = (seq - behind[0]) & SEQ_MASK  # type: ignore[operator]
                if over < len(payload) + cut:  # else a pure retransmission
                    start = min(len(payload), over)
                    cut -= max(0, over - len(payload))
                    self._deliver(
                        connection, half, from_client, payload, start, len(payload), cut,
                        held[2], held[3],
                    )  # fmt: skip
                continue
            payload = held[0]
            half.pending_bytes -= len(payload)
            self._deliver(
                connection, half, from_client, payload, 0, len(payload), held[1], held[2], held[3]
            )

    def _skip_to_earliest(self, connection: _Connection, half: _Half, from_client: bool) -> None:
        """Give up waiting for missing bytes: report the gap and go on from the earliest held."""
        earliest = min(half.pending, key=lambda s: (s - half.next_seq) & SEQ_MASK)  # type: ignore[operator]
        missing = (earliest - half.next_seq) & SEQ_MASK  # type: ignore[operator]
        if missing and missing < 0x80000000:
            self.diagnostics.warn("tcp_gap", f"{missing} bytes never captured")
            self._lost(connection, half, from_client, missing)
        half.next_seq = earliest
        self._drain(connection, half, from_client)


def opening(
    key: bytes, source_port: int, destination_port: int, seq: int, flags: int
) -> tuple[bool, bytes, bytes, tuple[str, int, str, int, int | None]]:
    """A connection first seen with the segment ``key``: whether that segment comes from the
    client, the connection's keys to the server and to the client, and its endpoints as the
    ``ConsumerFactory`` takes them (the native path, ``native.pyx``, opens connections with it
    too)."""
    size = len(key) // 2 - 2
    source, destination = key[:size], key[size : 2 * size]
    isn = None
    if source_port in SMB_PORTS or destination_port in SMB_PORTS:
        from_client = destination_port in SMB_PORTS and (
            source_port not in SMB_PORTS or destination_port <= source_port
        )
        if from_client and flags & (SYN | ACK) == SYN:
            isn = seq
    else:  # DCE/RPC over TCP: the flow is first seen with the client's BIND, its first byte
        from_client = True
        isn = (seq - 1) & SEQ_MASK
    if from_client:
        client, client_port, server, server_port = (
            source, source_port, destination, destination_port,
        )  # fmt: skip
    else:
        client, client_port, server, server_port = (
            destination, destination_port, source, source_port,
        )  # fmt: skip
    to_server = client + server + struct.pack("!HH", client_port, server_port)
    to_client = server + client + struct.pack("!HH", server_port, client_port)
    endpoints = (_address(client), client_port, _address(server), server_port, isn)
    return from_client, to_server, to_client, endpoints


def _is_late_syn(half: _Half, seq: int) -> bool:
    """A SYN of the connection already under way (captured late or retransmitted)."""
    if half.next_seq is None:
        return True
    return (half.next_seq - seq - 1) & SEQ_MASK <= LATE_SYN_WINDOW
