"""NetBIOS session service framing (RFC 1002, MS-SMB2 2.1): SMB messages out of a TCP byte stream.

One ``SmbConnection`` per TCP connection frames each direction into messages and hands each to
the decoder of its protocol (SMB2/3 or SMB1), chosen by the protocol id. Only the part of a
message the decoder asks for (``wanted``) is buffered; the rest — write and read data — is
streamed to ``body`` or skipped as it arrives, so memory does not grow with transfer sizes.
After bytes are lost (a gap) inside such data the framing stays in step; elsewhere it hunts for
the next plausible SMB header and counts the resynchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mypy_extensions import mypyc_attr

from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.tcp import NO_SKIP, BodyTap, Skip, StreamConsumer
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent

PEEK: Final = 512  # bytes of a message shown to ``Decoder.wanted``
MAX_MESSAGE: Final = (
    1 << 24
)  # larger than any SMB message a server accepts: a desynchronised stream
SESSION_MESSAGE: Final = 0x00
NBSS_CONTROL: Final = frozenset(
    (0x81, 0x82, 0x83, 0x84, 0x85)
)  # request, responses, retarget, keepalive
PROTOCOL_IDS: Final = frozenset((0xFE, 0xFF, 0xFD, 0xFC))  # SMB2, SMB1, SMB3 transform, compression
SMB_SIGNATURE: Final = b"SMB"


@mypyc_attr(allow_interpreted_subclasses=True)  # tests frame messages with decoders of their own
class Decoder:
    """A protocol decoder for one connection (see CONTRIBUTING.md, "Seams"): a base class
    rather than a Protocol, so that the compiled build calls it directly.

    ``wants_body`` False means the rest of a message beyond ``wanted`` is never looked at: it is
    then skipped by the TCP layer without a call per segment.
    """

    def __init__(self) -> None:
        self.wants_body = False

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        raise NotImplementedError

    def message(
        self, from_client: bool, data: bytes, total_len: int, time: int, frame: int
    ) -> list[SmbEvent]:
        raise NotImplementedError

    def body(self, from_client: bool, chunk: bytes) -> None:
        raise NotImplementedError

    def body_gap(self, from_client: bool, length: int) -> None:
        raise NotImplementedError

    def body_tap(self, from_client: bool) -> BodyTap | None:
        """Where the rest of the message goes straight from the TCP segments, instead of
        through ``body`` and ``body_gap`` (None: through them)."""
        return None

    def finish(self) -> list[SmbEvent]:
        raise NotImplementedError


DecoderFactory = Callable[[Endpoints, Diagnostics], Decoder]


class _Direction:
    """Framing state of one direction of the connection."""

    __slots__ = ("buf", "length", "want", "decoder", "body_left", "hunting", "time", "frame")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.length = -1  # NBSS length of the message being collected; -1 before its header
        self.want = -1  # bytes of the message the decoder asked for; -1 before it was asked
        self.decoder: Decoder | None = None  # receives the streamed rest (None: skip it)
        self.body_left = 0  # bytes of the current message still to stream or skip
        self.hunting = False
        self.time = 0
        self.frame = 0

    def reset(self) -> None:
        if self.buf:  # most messages are read straight out of their segment
            self.buf.clear()
        self.length = self.want = -1


def _part(view: bytes | bytearray, start: int, stop: int) -> bytes:
    """``view[start:stop]`` as bytes: a slice of the segment is one already (``bytes()`` of
    it would look for ``__bytes__`` first), one of the buffer is copied out of it."""
    if isinstance(view, bytes):
        return view[start:stop]
    return bytes(view[start:stop])


class SmbConnection(StreamConsumer):
    """Consumer of one reassembled TCP connection (``capture.tcp.StreamConsumer``)."""

    def __init__(
        self,
        endpoints: Endpoints,
        diagnostics: Diagnostics,
        factories: dict[int, DecoderFactory],
        out: list[SmbEvent],
    ) -> None:
        self.endpoints = endpoints
        self.diagnostics = diagnostics
        self.factories = factories
        self.decoders: dict[int, Decoder] = {}
        self.out = out
        self.from_client = _Direction()
        self.from_server = _Direction()

    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        """Frame the next in-order bytes of one direction; how many following bytes to skip,
        and the decoder's tap they go to."""
        state = self.from_client if from_client else self.from_server
        end = len(payload)
        pos = 0
        while pos < end:
            if state.body_left:
                take = min(state.body_left, end - pos)
                if state.decoder is not None:
                    chunk = payload if take == end else payload[pos : pos + take]
                    state.decoder.body(from_client, chunk)
                state.body_left -= take
                pos += take
            elif state.hunting:
                pos = self._hunt(state, payload, pos)
                state.time, state.frame = time, frame
            else:
                if not state.buf and state.length < 0:
                    state.time, state.frame = time, frame
                pos = self._collect(state, from_client, payload, pos)
        if state.body_left:
            # Reassembly counts off the rest of the message for us, handing it to the
            # decoder's tap if the decoder wants it; a decoder without one gets it in ``body``.
            tap = None if state.decoder is None else state.decoder.body_tap(from_client)
            if state.decoder is None or tap is not None:
                skip, state.body_left = state.body_left, 0
                return skip, tap
        return NO_SKIP

    def gap(self, from_client: bool, length: int) -> None:
        """Bytes of one direction were never captured."""
        state = self.from_client if from_client else self.from_server
        if state.body_left:
            inside = min(length, state.body_left)
            state.body_left -= inside
            if state.decoder is not None:
                state.decoder.body_gap(from_client, inside)
            length -= inside
        if length and not state.hunting:
            if state.buf or state.length >= 0:
                self.diagnostics.warn(
                    "smb_message_lost", f"{self.endpoints.src_ip}: gap in a header"
                )
            state.reset()
            state.hunting = True

    def close(self) -> None:
        """End of the connection: decoders flush what they hold."""
        for state in (self.from_client, self.from_server):
            if state.buf and not state.hunting:
                self.diagnostics.warn("smb_message_truncated", "connection ended inside a message")
        for decoder in self.decoders.values():
            self.out.extend(decoder.finish())
        self.decoders.clear()

    def _collect(self, state: _Direction, from_client: bool, payload: bytes, pos: int) -> int:
        """Take the NBSS header, then the wanted part of the message; dispatch when complete.

        Whatever is needed next is read straight out of the segment when the segment holds all
        of it (the common case); only a message split over segments is copied into ``buf``.
        """
        end = len(payload)
        view: bytes | bytearray
        while True:
            if state.length < 0:
                need = 4
            elif state.want < 0:
                need = 4 + min(state.length, PEEK)
            else:
                need = 4 + state.want
            if state.buf:
                pos = _fill(state.buf, payload, pos, need)
                if len(state.buf) < need:
                    return pos
                view, start = state.buf, 0
            elif end - pos >= need:
                view, start = payload, pos
            else:
                state.buf += payload[pos:]
                return end
            if state.length < 0:
                length = view[start + 1] << 16 | view[start + 2] << 8 | view[start + 3]
                if not self._header(state, view[start], length):
                    state.buf.clear()
                    return start + 4 if view is payload else pos
            elif state.want < 0:
                if not self._choose(state, from_client, _part(view, start + 4, start + need)):
                    return start + need if view is payload else pos
            else:
                self._dispatch(state, from_client, _part(view, start + 4, start + need))
                return start + need if view is payload else pos

    def _header(self, state: _Direction, kind: int, length: int) -> bool:
        """Judge an NBSS header; True when a session message follows (its length is kept)."""
        if kind == SESSION_MESSAGE and 4 <= length <= MAX_MESSAGE:
            state.length = length
            return True
        if kind in NBSS_CONTROL and length <= PEEK:
            state.body_left, state.decoder = length, None
        else:
            self._lose_sync(state, f"NBSS type {kind:#x} length {length}")
        return False

    def _choose(self, state: _Direction, from_client: bool, head: bytes) -> bool:
        """Pick the decoder from the protocol id and ask how much of the message it wants."""
        if head[1:4] != SMB_SIGNATURE or head[0] not in PROTOCOL_IDS:
            self._lose_sync(state, f"not an SMB message: {head[:4].hex()}")
            return False
        decoder = self._decoder(head[0])
        if decoder is None:  # a dialect family this build does not decode: skip the message
            self.diagnostics.warn("smb_not_decoded", f"protocol id {head[0]:#x}")
            state.body_left, state.decoder = state.length - len(head), None
            state.reset()
            return False
        state.decoder = decoder
        try:
            wanted = decoder.wanted(from_client, head, state.length)
        except Exception as exc:  # a decoder bug on hostile bytes costs this message only
            self.diagnostics.warn("decoder_error", f"wanted: {exc!r}")
            wanted = state.length
        state.want = max(len(head), min(wanted, state.length))
        return True

    def _dispatch(self, state: _Direction, from_client: bool, message: bytes) -> None:
        decoder = state.decoder
        assert decoder is not None
        try:
            events = decoder.message(from_client, message, state.length, state.time, state.frame)
        except Exception as exc:  # a decoder bug on hostile bytes costs this message only
            self.diagnostics.warn("decoder_error", f"frame {state.frame}: {exc!r}")
            events = None
        if events:
            self.out.extend(events)
        state.body_left = state.length - state.want
        if not decoder.wants_body:
            state.decoder = None
        state.reset()

    def _decoder(self, protocol_id: int) -> Decoder | None:
        key = 0xFE if protocol_id in (0xFD, 0xFC) else protocol_id
        decoder = self.decoders.get(key)
        if decoder is None:
            factory = self.factories.get(key)
            if factory is None:
                return None
            decoder = self.decoders[key] = factory(self.endpoints, self.diagnostics)
        return decoder

    def _lose_sync(self, state: _Direction, reason: str) -> None:
        self.diagnostics.warn("smb_resync", f"{self.endpoints.src_ip}: {reason}")
        state.reset()
        state.hunting = True

    def _hunt(self, state: _Direction, payload: bytes, pos: int) -> int:
        """Look for the next NBSS header followed by an SMB protocol id; keep a short tail."""
        window = bytes(state.buf) + payload[pos:]
        carried = len(state.buf)
        found = window.find(SMB_SIGNATURE, 5)
        while found >= 0:
            start = found - 5
            if found + 5 > len(window):  # too close to the end to judge: keep it for next time
                state.buf[:] = window[start:]
                return len(payload)
            if (
                window[start] == SESSION_MESSAGE
                and window[found - 1] in PROTOCOL_IDS
                and 32 <= int.from_bytes(window[start + 1 : start + 4], "big") <= MAX_MESSAGE
                and (window[found - 1] != 0xFE or window[found + 3 : found + 5] == b"@\x00")
            ):
                state.hunting = False
                state.buf.clear()
                if start < carried:
                    state.buf += window[start:carried]
                    return pos
                return pos + start - carried
            found = window.find(SMB_SIGNATURE, found + 1)
        state.buf[:] = window[-9:]
        return len(payload)


def _fill(buf: bytearray, payload: bytes, pos: int, size: int) -> int:
    """Append from ``payload[pos:]`` until ``buf`` holds ``size`` bytes; the new position."""
    take = size - len(buf)
    if take > 0:
        buf += payload[pos : pos + take]
        return min(pos + take, len(payload))
    return pos
