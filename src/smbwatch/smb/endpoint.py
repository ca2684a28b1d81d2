"""What is known of one TCP connection before any SMB byte is decoded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Client (src) and server (dst) of a connection, and where the bytes came from."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    source_format: str  # pcap, pcapng, live
    source_file: str
