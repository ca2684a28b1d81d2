"""Byte-level damage to real EVTX files, for the winlog hostile-input tests.

Offsets from the EVTX format description (libyal's "Windows XML Event Log (EVTX)"): a 4096-byte
file header, then 65536-byte chunks, each with a 512-byte header before its records.
"""

from __future__ import annotations

import struct
import zlib

FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
_FILE_CHECKSUM = 0x7C  # CRC32 of the first 120 bytes
_FILE_FLAGS = 0x78
_FILE_LAST_CHUNK = 16
_FILE_CHUNK_COUNT = 42
_CHUNK_FREE_SPACE = 0x30
_CHUNK_DATA_CHECKSUM = 0x34  # CRC32 of the records
_CHUNK_HEADER_CHECKSUM = 0x7C  # CRC32 of bytes 0-0x78 and 0x80-0x200
_CHUNK_RECORDS = 0x200
DIRTY = 0x1


def chunk_start(index: int) -> int:
    return FILE_HEADER_SIZE + index * CHUNK_SIZE


def records_span(data: bytes | bytearray, index: int) -> range:
    """Where a chunk's records lie in the file."""
    start = chunk_start(index)
    (free_space,) = struct.unpack_from("<I", data, start + _CHUNK_FREE_SPACE)
    return range(start + _CHUNK_RECORDS, start + free_space)


def reseal_chunk(data: bytearray, index: int) -> None:
    """Recompute a chunk's checksums, as an attacker who edits records would."""
    start = chunk_start(index)
    span = records_span(data, index)
    struct.pack_into(
        "<I", data, start + _CHUNK_DATA_CHECKSUM, zlib.crc32(data[span.start : span.stop])
    )
    header = data[start : start + 0x78] + data[start + 0x80 : start + _CHUNK_RECORDS]
    struct.pack_into("<I", data, start + _CHUNK_HEADER_CHECKSUM, zlib.crc32(header))


def mark_dirty_with_stale_header(data: bytearray, chunk_count: int) -> None:
    """An unclosed log: the dirty flag set and the header still counting fewer chunks."""
    struct.pack_into("<Q", data, _FILE_LAST_CHUNK, chunk_count - 1)
    struct.pack_into("<H", data, _FILE_CHUNK_COUNT, chunk_count)
    (flags,) = struct.unpack_from("<I", data, _FILE_FLAGS)
    struct.pack_into("<I", data, _FILE_FLAGS, flags | DIRTY)
    struct.pack_into("<I", data, _FILE_CHECKSUM, zlib.crc32(data[:120]))
