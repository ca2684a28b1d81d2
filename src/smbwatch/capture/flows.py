"""Shares of a capture's TCP connections, for workers that each decode a part of one capture.

Every worker reads the whole file and decodes only the connections of its share: those whose
flow hash modulo the number of shares is its index. The flow hash depends on the unordered
4-tuple alone (both directions of a connection, and a later connection on the same 4-tuple, fall
in one share), and is the same in every process and on every machine: CRC-32 (``zlib.crc32``)
of the two endpoints, each its address bytes (4 for IPv4, 16 for IPv6) and its port (2 bytes,
big-endian), the lesser endpoint first. Python's ``hash`` would differ between processes. (The
native path computes it again in C, ``native.pyx``'s ``flow_hash``, to drop the other shares'
segments before they reach Python; ``tests/test_native.py`` holds the two together.)

The decision is taken before any state is made for a connection (or a DCE/RPC-over-TCP flow is
remembered), so a worker spends nothing on the connections of the others beyond reading their
frames. What belongs to no connection (a damaged file, an unsupported link type) is said by the
share of index 0 alone: together the shares say what one reader of the whole capture says.
"""

from __future__ import annotations

import zlib
from typing import Final

from smbwatch.capture.pcap import Buffer

SMB_PORTS: Final = frozenset((445, 139))
PORT_BYTES: Final = 2
DCERPC_BIND: Final = b"\x05\x00\x0b"  # rpc_vers 5, rpc_vers_minor 0, PTYPE bind
MAX_RPC_FLOWS: Final = 1 << 17


def flow_key(source: bytes, destination: bytes, source_port: int, destination_port: int) -> bytes:
    """One direction of a connection as the capture layer keys it: the two addresses, then the
    two ports (big-endian), as they stand in the IP and TCP headers."""
    ports = source_port.to_bytes(PORT_BYTES) + destination_port.to_bytes(PORT_BYTES)
    return source + destination + ports


def flow_hash(key: bytes) -> int:
    """The flow hash of the connection ``key`` (a ``flow_key``, either direction)."""
    size = len(key) // 2 - PORT_BYTES
    first = key[:size] + key[2 * size : 2 * size + PORT_BYTES]
    second = key[size : 2 * size] + key[2 * size + PORT_BYTES :]
    return zlib.crc32(first + second if first <= second else second + first)


def flow_share_of(key: bytes, count: int) -> int:
    """The index of the share (of ``count``) the connection ``key`` belongs to."""
    return flow_hash(key) % count


class FlowShare:
    """Share ``index`` of ``count``: which connections a worker decodes."""

    def __init__(self, index: int, count: int) -> None:
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"share {index} of {count}: needs 0 <= index < count")
        self.index = index
        self.count = count

    def ours(self, key: bytes) -> bool:
        """Whether the connection ``key`` (a ``flow_key``) is decoded here."""
        return self.count == 1 or flow_hash(key) % self.count == self.index

    @property
    def first(self) -> bool:
        """Whether this share says what belongs to no connection (the share of index 0)."""
        return self.index == 0


EVERY_FLOW: Final = FlowShare(0, 1)


def starts_dcerpc_bind(data: Buffer, start: int = 0) -> bool:
    """Whether ``data[start:]`` begins with a DCE/RPC BIND: version 5.0, packet type 11, NDR's
    data representation (little-endian, ASCII). How a DCE/RPC conversation is recognised
    whatever carries it: a TCP flow on any port, or a file on a tree whose connect was missed."""
    return data[start : start + 3] == DCERPC_BIND and data[start + 4 : start + 5] == b"\x10"


def reverse_key(key: bytes) -> bytes:
    """The other direction of the connection ``key``."""
    size = len(key) // 2 - PORT_BYTES
    return key[size : 2 * size] + key[:size] + key[-2:] + key[-4:-2]


class Flows:
    """The flows of one capture that are read besides SMB's ports, and the share read."""

    def __init__(self, share: FlowShare = EVERY_FLOW) -> None:
        self.share = share
        self.rpc: set[bytes] = set()  # DCE/RPC over TCP, both directions

    def is_rpc(self, buf: Buffer, start: int, stop: int, key: bytes) -> bool:
        """Is this segment (its payload from ``buf[start]`` in a frame that ends at ``stop``)
        of a DCE/RPC-over-TCP flow: one seen before, or a new one of this share starting with a
        BIND?"""
        rpc = self.rpc
        if key in rpc:
            return True
        if stop - start < 5 or not starts_dcerpc_bind(buf, start) or not self.share.ours(key):
            return False
        if len(rpc) >= MAX_RPC_FLOWS:
            rpc.clear()  # bounded: hostile traffic full of binds cannot grow it without end
        rpc.add(key)
        rpc.add(reverse_key(key))
        return True
