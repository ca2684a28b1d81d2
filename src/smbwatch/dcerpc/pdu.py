"""Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2): pure parsers.

Every parser takes one whole PDU (``frag_length`` bytes) and raises ``PduError`` when a length or
count does not fit in it; nothing here allocates more than the PDU it was given.
"""

from __future__ import annotations

import struct
import uuid
from typing import Final

REQUEST: Final = 0
RESPONSE: Final = 2
FAULT: Final = 3
BIND: Final = 11
BIND_ACK: Final = 12
BIND_NAK: Final = 13
ALTER_CONTEXT: Final = 14
ALTER_CONTEXT_RESP: Final = 15
AUTH3: Final = 16
SHUTDOWN: Final = 17
CO_CANCEL: Final = 18
ORPHANED: Final = 19

PFC_FIRST_FRAG: Final = 0x01
PFC_LAST_FRAG: Final = 0x02
PFC_OBJECT_UUID: Final = 0x80

HEADER_SIZE: Final = 16
SEC_TRAILER_SIZE: Final = 8
AUTH_LEVEL_PKT_PRIVACY: Final = 6

ACK_RESULTS: Final = ("acceptance", "user_rejection", "provider_rejection", "negotiate_ack")
BIND_NAK_REASONS: Final = (
    "reason_not_specified",
    "temporary_congestion",
    "local_limit_exceeded",
    "called_paddr_unknown",
    "protocol_version_not_supported",
    "default_context_not_supported",
    "user_data_not_readable",
    "no_psap_available",
    "authentication_type_not_recognized",
    "invalid_checksum",
)

_LE: Final = {
    "H": struct.Struct("<H"),
    "I": struct.Struct("<I"),
    "HH": struct.Struct("<HH"),
    "IHH": struct.Struct("<IHH"),
    "HHI": struct.Struct("<HHI"),
}
_BE: Final = {key: struct.Struct(">" + value.format[1:]) for key, value in _LE.items()}
_COMMON: Final = struct.Struct("<BBBB4s")


class PduError(ValueError):
    """A PDU whose lengths or counts do not fit in its bytes."""


class Header:
    """The 16-byte common header (C706 12.6.3.1)."""

    ptype: int
    flags: int
    little_endian: bool
    frag_length: int
    auth_length: int
    call_id: int

    def __init__(
        self,
        ptype: int,
        flags: int,
        little_endian: bool,
        frag_length: int,
        auth_length: int,
        call_id: int,
    ) -> None:
        self.ptype = ptype
        self.flags = flags
        self.little_endian = little_endian
        self.frag_length = frag_length
        self.auth_length = auth_length
        self.call_id = call_id


class SyntaxId:
    """An interface or transfer syntax: UUID and ``major.minor`` version."""

    uuid: str
    version: str

    def __init__(self, uuid: str, version: str) -> None:
        self.uuid = uuid
        self.version = version


class ContextElement:
    """One presentation context a BIND or ALTER_CONTEXT offers."""

    context_id: int
    abstract: SyntaxId
    transfers: tuple[SyntaxId, ...]

    def __init__(
        self,
        context_id: int,
        abstract: SyntaxId,
        transfers: tuple[SyntaxId, ...],
    ) -> None:
        self.context_id = context_id
        self.abstract = abstract
        self.transfers = transfers


class ContextResult:
    """The server's answer to one offered context, in offer order."""

    result: int
    reason: int
    transfer: SyntaxId

    def __init__(self, result: int, reason: int, transfer: SyntaxId) -> None:
        self.result = result
        self.reason = reason
        self.transfer = transfer


class Call:
    """A REQUEST, RESPONSE or FAULT fragment: its context, opnum and stub bytes."""

    context_id: int
    opnum: int | None  # requests only
    stub: bytes
    auth_level: int  # 0 when the PDU carries no verifier
    fault_status: int | None

    def __init__(
        self,
        context_id: int,
        opnum: int | None,
        stub: bytes,
        auth_level: int,
        fault_status: int | None = None,
    ) -> None:
        self.context_id = context_id
        self.opnum = opnum
        self.stub = stub
        self.auth_level = auth_level
        self.fault_status = fault_status


def parse_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """The common header at ``offset``; checks the version and that the lengths are coherent."""
    if len(data) - offset < HEADER_SIZE:
        raise PduError("short PDU header")
    major, minor, ptype, flags, drep = _COMMON.unpack_from(data, offset)
    if major != 5 or minor > 1:
        raise PduError(f"not DCE/RPC version 5.0/5.1 ({major}.{minor})")
    little_endian = bool(drep[0] & 0x10)
    frag_length, auth_length, call_id = (_LE if little_endian else _BE)["HHI"].unpack_from(
        data, offset + 8
    )
    if frag_length < HEADER_SIZE:
        raise PduError(f"frag_length {frag_length} shorter than the header")
    if auth_length and HEADER_SIZE + SEC_TRAILER_SIZE + auth_length > frag_length:
        raise PduError(f"auth_length {auth_length} does not fit in frag_length {frag_length}")
    return Header(ptype, flags, little_endian, frag_length, auth_length, call_id)


def _formats(header: Header) -> dict[str, struct.Struct]:
    return _LE if header.little_endian else _BE


def _body_end(pdu: bytes, header: Header) -> tuple[int, int]:
    """Where the body ends (before auth padding and sec_trailer) and the auth level."""
    if not header.auth_length:
        return header.frag_length, 0
    trailer = header.frag_length - header.auth_length - SEC_TRAILER_SIZE
    auth_level, pad_length = pdu[trailer + 1], pdu[trailer + 2]
    if pad_length > trailer - HEADER_SIZE:
        raise PduError(f"auth_pad_length {pad_length} larger than the body")
    return trailer - pad_length, auth_level


def _syntax(pdu: bytes, offset: int, header: Header) -> SyntaxId:
    raw = pdu[offset : offset + 16]
    text = str(uuid.UUID(bytes_le=raw) if header.little_endian else uuid.UUID(bytes=raw))
    major, minor = _formats(header)["HH"].unpack_from(pdu, offset + 16)
    return SyntaxId(text, f"{major}.{minor}")


def parse_call(pdu: bytes, header: Header) -> Call:
    """A REQUEST, RESPONSE or FAULT PDU (C706 12.6.4.9, 12.6.4.10, 12.6.4.7)."""
    end, auth_level = _body_end(pdu, header)
    fmt = _formats(header)
    if header.ptype == REQUEST:
        start = HEADER_SIZE + 8 + (16 if header.flags & PFC_OBJECT_UUID else 0)
        if start > end:
            raise PduError("request shorter than its fixed part")
        _, context_id, opnum = fmt["IHH"].unpack_from(pdu, HEADER_SIZE)
        return Call(context_id, opnum, pdu[start:end], auth_level)
    start = HEADER_SIZE + 8
    if start > end:
        raise PduError("response shorter than its fixed part")
    context_id = fmt["H"].unpack_from(pdu, HEADER_SIZE + 4)[0]
    if header.ptype == FAULT:
        if start + 4 > end:
            raise PduError("fault without a status")
        status = fmt["I"].unpack_from(pdu, start)[0]
        return Call(context_id, None, b"", auth_level, status)
    return Call(context_id, None, pdu[start:end], auth_level)


def parse_bind(pdu: bytes, header: Header) -> tuple[ContextElement, ...]:
    """The presentation contexts a BIND or ALTER_CONTEXT offers (C706 12.6.4.3)."""
    end, _ = _body_end(pdu, header)
    offset = HEADER_SIZE + 8  # max_xmit_frag, max_recv_frag, assoc_group_id
    if offset + 4 > end:
        raise PduError("bind shorter than its fixed part")
    count = pdu[offset]
    offset += 4
    contexts = []
    for _ in range(count):
        if offset + 4 + 20 > end:
            raise PduError("bind context list runs past the PDU")
        context_id = _formats(header)["H"].unpack_from(pdu, offset)[0]
        n_transfers = pdu[offset + 2]
        abstract = _syntax(pdu, offset + 4, header)
        offset += 24
        if offset + 20 * n_transfers > end:
            raise PduError("bind transfer syntaxes run past the PDU")
        transfers = tuple(_syntax(pdu, offset + 20 * i, header) for i in range(n_transfers))
        offset += 20 * n_transfers
        contexts.append(ContextElement(context_id, abstract, transfers))
    return tuple(contexts)


def parse_bind_ack(pdu: bytes, header: Header) -> tuple[ContextResult, ...]:
    """The results of a BIND_ACK or ALTER_CONTEXT_RESP, one per offered context (12.6.4.4)."""
    end, _ = _body_end(pdu, header)
    offset = HEADER_SIZE + 8
    if offset + 2 > end:
        raise PduError("bind_ack shorter than its fixed part")
    sec_addr_length = _formats(header)["H"].unpack_from(pdu, offset)[0]
    offset += 2 + sec_addr_length
    offset += -offset % 4
    if offset + 4 > end:
        raise PduError("bind_ack secondary address runs past the PDU")
    count = pdu[offset]
    offset += 4
    if offset + 24 * count > end:
        raise PduError("bind_ack result list runs past the PDU")
    results = []
    for i in range(count):
        at = offset + 24 * i
        result, reason = _formats(header)["HH"].unpack_from(pdu, at)
        results.append(ContextResult(result, reason, _syntax(pdu, at + 4, header)))
    return tuple(results)


def parse_bind_nak(pdu: bytes, header: Header) -> int:
    """The provider_reject_reason of a BIND_NAK (12.6.4.5)."""
    if header.frag_length < HEADER_SIZE + 2:
        raise PduError("bind_nak without a reason")
    return _formats(header)["H"].unpack_from(pdu, HEADER_SIZE)[0]


def ack_result_name(result: int) -> str:
    """``acceptance``, ``provider_rejection``... (C706 p_cont_def_result_t)."""
    return ACK_RESULTS[result] if result < len(ACK_RESULTS) else f"result_{result}"


def bind_nak_reason_name(reason: int) -> str:
    """``protocol_version_not_supported``... (C706 p_reject_reason_t)."""
    return BIND_NAK_REASONS[reason] if reason < len(BIND_NAK_REASONS) else f"reason_{reason}"
