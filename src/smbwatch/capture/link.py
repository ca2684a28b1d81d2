"""Link, network and TCP headers: from a captured frame to a TCP segment of an SMB port.

This is the first and hottest filter of the whole tool: every frame of a capture passes through
``tcp_segment``, and everything that is not TCP to or from port 445 or 139 is thrown away here
before any object is built for it.
"""

from __future__ import annotations

import struct
from typing import Final

from smbwatch.capture.flows import SMB_PORTS, Flows
from smbwatch.diagnostics import Diagnostics

# Link types (tcpdump.org/linktypes.html).
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
RAW_ALIASES: Final = frozenset((LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6))

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
VLAN_TAGS: Final = frozenset((0x8100, 0x88A8, 0x9100))
BSD_AF_INET6: Final = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

IPV6_EXTENSIONS: Final = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
IPV6_FRAGMENT: Final = 44
PROTO_TCP: Final = 6

_u16 = struct.Struct("!H").unpack_from
_tcp = struct.Struct("!HHIIH").unpack_from
_ipv4_header = struct.Struct("!BxHxxHxB").unpack_from  # version/IHL, length, fragment, protocol

# (flow key, ports, sequence number, TCP flags, payload, bytes the capture's snap length cut).
# The key is the source and destination addresses followed by the two ports as they stand in the
# TCP header: one bytes object that identifies the direction of a connection.
Segment = tuple[bytes, int, int, int, int, bytes, int]


def tcp_segment(
    linktype: int, frame: bytes, diagnostics: Diagnostics, flows: Flows
) -> Segment | None:
    """The TCP segment in ``frame`` if it is SMB (port 445/139) or DCE/RPC over TCP, else None.

    DCE/RPC over TCP runs on dynamic ports: ``flows`` recognises it (``Flows.is_rpc``).
    """
    if linktype == LINKTYPE_ETHERNET and frame[12:14] == b"\x08\x00" and len(frame) >= 54:
        # The common case, Ethernet + IPv4 + TCP, without a function call per layer.
        version_ihl, total_len, fragment, protocol = _ipv4_header(frame, 14)
        if protocol != PROTO_TCP or fragment & 0x3FFF or version_ihl != 0x45 or total_len < 40:
            return _ipv4(frame, 14, diagnostics, flows) if protocol == PROTO_TCP else None
        source_port, destination_port, seq, _, offset_flags = _tcp(frame, 34)
        start, end = 34 + (offset_flags >> 12) * 4, 14 + total_len
        if (
            source_port not in SMB_PORTS
            and destination_port not in SMB_PORTS
            and not flows.is_rpc(frame, start, frame[26:38])
        ):
            return None
        if start > end:
            return None
        payload = frame[start:end]
        return (
            frame[26:38], source_port, destination_port, seq, offset_flags & 0x3F, payload,
            end - start - len(payload),
        )  # fmt: skip
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        offset = 12
        ethertype = _u16(frame, offset)[0]
        while ethertype in VLAN_TAGS and len(frame) >= offset + 6:
            offset += 4
            ethertype = _u16(frame, offset)[0]
        offset += 2
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        ethertype, offset = _u16(frame, 14)[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        ethertype, offset = _u16(frame, 0)[0], 20
    elif linktype in RAW_ALIASES:
        if not frame:
            return None
        ethertype = ETHERTYPE_IPV4 if frame[0] >> 4 == 4 else ETHERTYPE_IPV6
        offset = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        family = frame[0] or frame[3]  # host byte order for NULL, network order for LOOP
        ethertype = ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6
        if family != 2 and family not in BSD_AF_INET6:
            return None
        offset = 4
    else:
        if flows.share.first:
            diagnostics.warn("unsupported_link_type", f"link type {linktype}")
        return None
    if ethertype == ETHERTYPE_IPV4:
        return _ipv4(frame, offset, diagnostics, flows)
    if ethertype == ETHERTYPE_IPV6:
        return _ipv6(frame, offset, diagnostics, flows)
    return None


def _ipv4(frame: bytes, offset: int, diagnostics: Diagnostics, flows: Flows) -> Segment | None:
    if len(frame) < offset + 20 or frame[offset + 9] != PROTO_TCP or frame[offset] >> 4 != 4:
        return None
    header_len = (frame[offset] & 0x0F) * 4
    total_len = _u16(frame, offset + 2)[0]
    fragment = _u16(frame, offset + 6)[0] & 0x3FFF
    if fragment:
        if fragment & 0x1FFF == 0:  # first fragment: the TCP header is there to look at
            addresses = frame[offset + 12 : offset + 20]
            _count_fragment(frame, offset + header_len, addresses, diagnostics, flows)
        return None
    if header_len < 20 or 0 < total_len < header_len:
        return None
    end = offset + total_len if total_len else len(frame)  # 0: segmentation offload on capture
    return _tcp_segment(
        frame, offset + header_len, end, frame[offset + 12 : offset + 16],
        frame[offset + 16 : offset + 20], flows,
    )  # fmt: skip


def _ipv6(frame: bytes, offset: int, diagnostics: Diagnostics, flows: Flows) -> Segment | None:
    if len(frame) < offset + 40:
        return None
    next_header = frame[offset + 6]
    end = offset + 40 + _u16(frame, offset + 4)[0]
    source, destination = frame[offset + 8 : offset + 24], frame[offset + 24 : offset + 40]
    pos = offset + 40
    for _ in range(8):  # bounded walk over extension headers
        if next_header == PROTO_TCP:
            return _tcp_segment(frame, pos, end, source, destination, flows)
        if next_header == IPV6_FRAGMENT:
            if len(frame) >= pos + 8 and _u16(frame, pos + 2)[0] & 0xFFF8 == 0:
                _count_fragment(frame, pos + 8, source + destination, diagnostics, flows)
            return None
        if next_header not in IPV6_EXTENSIONS or len(frame) < pos + 2:
            return None
        next_header, pos = frame[pos], pos + 8 + frame[pos + 1] * 8
    return None


def _count_fragment(
    frame: bytes, pos: int, addresses: bytes, diagnostics: Diagnostics, flows: Flows
) -> None:
    """Fragmented IP is not reassembled; count it when it is SMB so the loss is visible (in
    the share of its connection)."""
    if len(frame) >= pos + 4:
        source_port, destination_port = struct.unpack_from("!HH", frame, pos)
        smb = source_port in SMB_PORTS or destination_port in SMB_PORTS
        if smb and flows.share.ours(addresses + frame[pos : pos + 4]):
            diagnostics.warn("ip_fragment_skipped", "fragmented IP carrying SMB is not reassembled")


def _tcp_segment(
    frame: bytes, pos: int, end: int, source: bytes, destination: bytes, flows: Flows
) -> Segment | None:
    if len(frame) < pos + 20:
        return None
    source_port, destination_port, seq, _, offset_flags = _tcp(frame, pos)
    start = pos + (offset_flags >> 12) * 4
    key = source + destination + frame[pos : pos + 4]
    if (
        source_port not in SMB_PORTS
        and destination_port not in SMB_PORTS
        and not flows.is_rpc(frame, start, key)
    ):
        return None
    if start > end:
        return None
    payload = frame[start:end]
    cut = end - start - len(payload)  # bytes the capture's snap length left out
    return key, source_port, destination_port, seq, offset_flags & 0x3F, payload, cut
