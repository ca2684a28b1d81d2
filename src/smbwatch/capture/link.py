"""Link, network and TCP headers: from a captured frame to a TCP segment of an SMB port.

This is the first and hottest filter of the whole tool: every frame of a capture passes through
``read_segment``, and everything that is not TCP to or from port 445 or 139 (or DCE/RPC over TCP,
``capture.flows``) is thrown away here before any object is built for it. The one place where
link, IP and TCP headers are read: what it finds goes on in a ``Segment`` record.
"""

from __future__ import annotations

import struct
from typing import Final

from smbwatch.capture.flows import SMB_PORTS, Flows
from smbwatch.capture.pcap import Buffer
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
# From the EtherType: EtherType, IPv4 version/IHL, total length, fragment offset and flags,
# protocol; TCP ports, sequence number, data offset and flags.
_ETHERNET_IPV4_TCP: Final = struct.Struct("!HB1xH2xH1xB10xHHI4xH")


class Segment:
    """One TCP segment, read where it lies: its payload is ``buf[start:stop]``, in the frame's
    own buffer (the memory-mapped capture, for the common case), so that only the payload that
    is kept is ever copied. One record is filled again for every frame."""

    def __init__(self) -> None:
        # The direction of the connection: source and destination addresses, then the two
        # ports as they stand in the TCP header (``capture.flows.flow_key``).
        self.key = b""
        self.source_port = 0
        self.destination_port = 0
        self.seq = 0
        self.flags = 0
        self.buf: Buffer = b""
        self.start = 0
        self.stop = 0
        self.cut = 0  # bytes of the payload the capture's snap length left out
        self.time = 0  # of the frame, µs since the epoch (set by the segment source)
        self.frame = 0  # its number, from 1

    def fill(
        self,
        key: bytes,
        source_port: int,
        destination_port: int,
        seq: int,
        flags: int,
        buf: Buffer,
        start: int,
        end: int,
        last: int,
    ) -> None:
        """The segment whose payload runs from ``start`` to ``end`` as its headers say, in a
        frame that ends at ``last``."""
        self.key = key
        self.source_port = source_port
        self.destination_port = destination_port
        self.seq = seq
        self.flags = flags
        self.buf = buf
        self.start = start
        stop = end if end < last else last
        self.stop = stop if stop > start else start
        self.cut = end - self.stop


def read_segment(
    linktype: int,
    buf: Buffer,
    first: int,
    last: int,
    segment: Segment,
    diagnostics: Diagnostics,
    flows: Flows,
) -> bool:
    """Whether the frame ``buf[first:last]`` is a TCP segment of an SMB port (445/139) or of
    DCE/RPC over TCP (``Flows.is_rpc``); if so, ``segment`` now describes it."""
    if linktype == LINKTYPE_ETHERNET and last - first >= 54:
        # The common case, Ethernet + IPv4 + TCP, in one unpack and without a copy.
        ethertype: int  # typed, so that the compiled build does this arithmetic natively
        version_ihl: int
        total_len: int
        fragment: int
        protocol: int
        source_port: int
        destination_port: int
        seq: int
        offset_flags: int
        (
            ethertype, version_ihl, total_len, fragment, protocol, source_port, destination_port,
            seq, offset_flags,
        ) = _ETHERNET_IPV4_TCP.unpack_from(buf, first + 12)  # fmt: skip
        if ethertype == ETHERTYPE_IPV4:
            if protocol != PROTO_TCP:
                return False
            if not (fragment & 0x3FFF or version_ihl != 0x45 or total_len < 40):
                start, end = first + 34 + (offset_flags >> 12) * 4, first + 14 + total_len
                key = buf[first + 26 : first + 38]
                if (
                    source_port not in SMB_PORTS
                    and destination_port not in SMB_PORTS
                    and not flows.is_rpc(buf, start, last, key)
                ) or start > end:
                    return False
                segment.fill(
                    key, source_port, destination_port, seq, offset_flags & 0x3F, buf, start,
                    end, last,
                )  # fmt: skip
                return True
    return _other(linktype, buf[first:last], segment, diagnostics, flows)


def _other(
    linktype: int, frame: bytes, segment: Segment, diagnostics: Diagnostics, flows: Flows
) -> bool:
    """Every other link layer and IP header (a copy of the frame: these are rare)."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return False
        offset = 12
        ethertype = _u16(frame, offset)[0]
        while ethertype in VLAN_TAGS and len(frame) >= offset + 6:
            offset += 4
            ethertype = _u16(frame, offset)[0]
        offset += 2
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return False
        ethertype, offset = _u16(frame, 14)[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return False
        ethertype, offset = _u16(frame, 0)[0], 20
    elif linktype in RAW_ALIASES:
        if not frame:
            return False
        ethertype = ETHERTYPE_IPV4 if frame[0] >> 4 == 4 else ETHERTYPE_IPV6
        offset = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return False
        family = frame[0] or frame[3]  # host byte order for NULL, network order for LOOP
        ethertype = ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6
        if family != 2 and family not in BSD_AF_INET6:
            return False
        offset = 4
    else:
        if flows.share.first:
            diagnostics.warn("unsupported_link_type", f"link type {linktype}")
        return False
    if ethertype == ETHERTYPE_IPV4:
        return _ipv4(frame, offset, segment, diagnostics, flows)
    if ethertype == ETHERTYPE_IPV6:
        return _ipv6(frame, offset, segment, diagnostics, flows)
    return False


def _ipv4(
    frame: bytes, offset: int, segment: Segment, diagnostics: Diagnostics, flows: Flows
) -> bool:
    if len(frame) < offset + 20 or frame[offset + 9] != PROTO_TCP or frame[offset] >> 4 != 4:
        return False
    header_len = (frame[offset] & 0x0F) * 4
    total_len = _u16(frame, offset + 2)[0]
    fragment = _u16(frame, offset + 6)[0] & 0x3FFF
    if fragment:
        if fragment & 0x1FFF == 0:  # first fragment: the TCP header is there to look at
            addresses = frame[offset + 12 : offset + 20]
            _count_fragment(frame, offset + header_len, addresses, diagnostics, flows)
        return False
    if header_len < 20 or 0 < total_len < header_len:
        return False
    end = offset + total_len if total_len else len(frame)  # 0: segmentation offload on capture
    addresses = frame[offset + 12 : offset + 20]
    return _tcp_segment(frame, offset + header_len, end, addresses, segment, flows)


def _ipv6(
    frame: bytes, offset: int, segment: Segment, diagnostics: Diagnostics, flows: Flows
) -> bool:
    if len(frame) < offset + 40:
        return False
    next_header = frame[offset + 6]
    end = offset + 40 + _u16(frame, offset + 4)[0]
    addresses = frame[offset + 8 : offset + 40]
    pos = offset + 40
    for _ in range(8):  # bounded walk over extension headers
        if next_header == PROTO_TCP:
            return _tcp_segment(frame, pos, end, addresses, segment, flows)
        if next_header == IPV6_FRAGMENT:
            if len(frame) >= pos + 8 and _u16(frame, pos + 2)[0] & 0xFFF8 == 0:
                _count_fragment(frame, pos + 8, addresses, diagnostics, flows)
            return False
        if next_header not in IPV6_EXTENSIONS or len(frame) < pos + 2:
            return False
        next_header, pos = frame[pos], pos + 8 + frame[pos + 1] * 8
    return False


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
    frame: bytes, pos: int, end: int, addresses: bytes, segment: Segment, flows: Flows
) -> bool:
    if len(frame) < pos + 20:
        return False
    source_port, destination_port, seq, _, offset_flags = _tcp(frame, pos)
    start = pos + (offset_flags >> 12) * 4
    key = addresses + frame[pos : pos + 4]
    if (
        source_port not in SMB_PORTS
        and destination_port not in SMB_PORTS
        and not flows.is_rpc(frame, start, len(frame), key)
    ) or start > end:
        return False
    segment.fill(
        key, source_port, destination_port, seq, offset_flags & 0x3F, frame, start, end,
        len(frame),
    )  # fmt: skip
    return True
