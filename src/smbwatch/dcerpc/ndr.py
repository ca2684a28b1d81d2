"""Bounded NDR (C706 chapter 14) and NDR64 (MS-RPCE 2.2.5) primitives over one stub.

The reader walks the stub front to back, as NDR lays it out; it never follows offsets, so a
hostile stub cannot make it loop. Every count is checked against the bytes left before anything
is sliced, so a huge count costs an ``NdrError``, never an allocation.

NDR64 differs in what the argument decoders touch here: pointers (referent ids) and
conformance/variance counts are 8 bytes aligned to 8, and enums are 4 bytes instead of 2.
"""

from __future__ import annotations

import struct
import uuid
from typing import Final

from smbwatch.utf16 import utf16be, utf16le

CONTEXT_HANDLE_SIZE: Final = 20

_LE: Final = (struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q"))
_BE: Final = (struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q"))


class NdrError(ValueError):
    """The stub does not hold what its counts and pointers claim."""


class NdrReader:
    """A cursor over one stub; positions (and so alignment) are relative to the stub start."""

    __slots__ = ("_data", "_pos", "ndr64", "_u16", "_u32", "_u64", "_little", "_text")

    def __init__(self, data: bytes, ndr64: bool = False, little_endian: bool = True) -> None:
        self._data = data
        self._pos = 0
        self.ndr64 = ndr64
        self._u16, self._u32, self._u64 = _LE if little_endian else _BE
        self._little = little_endian
        self._text = utf16le if little_endian else utf16be  # UTF-16 in the stub's byte order

    @property
    def remaining(self) -> int:
        """Bytes left after the cursor."""
        return len(self._data) - self._pos

    def align(self, size: int) -> None:
        """Skip the padding that brings the cursor to a multiple of ``size``."""
        self.skip(-self._pos % size)

    def skip(self, count: int) -> None:
        """Skip ``count`` bytes that must be there."""
        if count < 0 or count > self.remaining:
            raise NdrError(f"{count} bytes needed at offset {self._pos}, {self.remaining} left")
        self._pos += count

    def raw(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        start = self._pos
        self.skip(count)
        return self._data[start : self._pos]

    def u8(self) -> int:
        """An unsigned small."""
        self.skip(1)
        return self._data[self._pos - 1]

    def u16(self) -> int:
        """An unsigned short, aligned to 2."""
        self.align(2)
        self.skip(2)
        return self._u16.unpack_from(self._data, self._pos - 2)[0]

    def u32(self) -> int:
        """An unsigned long (DWORD), aligned to 4."""
        self.align(4)
        self.skip(4)
        return self._u32.unpack_from(self._data, self._pos - 4)[0]

    def u64(self) -> int:
        """An unsigned hyper, aligned to 8."""
        self.align(8)
        self.skip(8)
        return self._u64.unpack_from(self._data, self._pos - 8)[0]

    def pointer(self) -> int:
        """A unique/full pointer's referent id (0 is NULL)."""
        return self.u64() if self.ndr64 else self.u32()

    def count(self) -> int:
        """A conformance (max_count) or variance (offset, actual_count) value."""
        return self.u64() if self.ndr64 else self.u32()

    def enum(self) -> int:
        """An enum: 16 bits in NDR, 32 bits in NDR64."""
        return self.u32() if self.ndr64 else self.u16()

    def pointer_sized(self) -> int:
        """A ``DWORD_PTR``/``ULONG_PTR`` (``__int3264``): 32 bits in NDR, 64 in NDR64."""
        return self.u64() if self.ndr64 else self.u32()

    def guid(self) -> str:
        """A GUID (MS-DTYP 2.3.4.2: a DWORD, two WORDs, eight bytes), aligned to 4, as text."""
        self.align(4)
        raw = self.raw(16)
        return str(uuid.UUID(bytes_le=raw) if self._little else uuid.UUID(bytes=raw))

    def begin_struct(self) -> None:
        """Align for a structure that holds a pointer: 4 in NDR, 8 in NDR64."""
        self.align(8 if self.ndr64 else 4)

    def union_discriminant(self) -> int:
        """The DWORD discriminant of a union whose arms are pointers (aligned as the union)."""
        self.begin_struct()
        return self.u32()

    def context_handle(self) -> bytes:
        """A 20-byte context handle (attributes + GUID), aligned to 4."""
        self.align(4)
        return self.raw(CONTEXT_HANDLE_SIZE)

    def conformant_bytes(self, limit: int | None = None) -> tuple[bytes, int]:
        """A ``[size_is]`` byte array: its first ``limit`` bytes and its full size."""
        size = self.count()
        if size > self.remaining:
            raise NdrError(f"byte array of {size} with {self.remaining} bytes left")
        data = self.raw(size)
        return (data if limit is None else data[:limit]), size

    def _varying(self, unit: int) -> bytes:
        """A conformant varying array's elements (max_count, offset, actual_count, elements)."""
        max_count = self.count()
        offset = self.count()
        actual = self.count()
        if offset > max_count or actual > max_count - offset:
            raise NdrError(f"varying array offset {offset} + {actual} exceeds max {max_count}")
        if actual * unit > self.remaining:
            raise NdrError(f"array of {actual} x {unit} bytes with {self.remaining} left")
        return self.raw(actual * unit)

    def wstr(self) -> str:
        """A ``[string] wchar_t*`` referent: UTF-16 text without its terminating NUL."""
        text = self._text(self._varying(2))
        return text.split("\x00", 1)[0]

    def astr(self) -> str:
        """A ``[string] char*`` referent (an "A" API string, Windows code page 1252)."""
        text = self._varying(1).decode("cp1252", "replace")
        return text.split("\x00", 1)[0]

    def unique_wstr(self) -> str | None:
        """A top-level ``[unique, string] wchar_t*``: pointer then (unless NULL) the string."""
        return self.wstr() if self.pointer() else None

    def unique_astr(self) -> str | None:
        """A top-level ``[unique, string] char*``."""
        return self.astr() if self.pointer() else None

    def unicode_string(self) -> tuple[int, int]:
        """The inline part of an RPC_UNICODE_STRING: (Length in bytes, Buffer referent id)."""
        self.begin_struct()
        length = self.u16()
        self.u16()  # MaximumLength
        return length, self.pointer()

    def unicode_string_buffer(self, length: int) -> str:
        """The deferred Buffer of an RPC_UNICODE_STRING whose Length was ``length`` bytes."""
        text = self._varying(2)
        if len(text) > length:  # Length is authoritative; a terminating NUL may follow
            text = text[:length]
        return self._text(text).rstrip("\x00")

    def unicode_string_value(self) -> str | None:
        """An RPC_UNICODE_STRING whose Buffer is deferred right after it (a top-level [in])."""
        length, referent = self.unicode_string()
        return self.unicode_string_buffer(length) if referent else None

    def sid(self) -> str:
        """An RPC_SID (MS-DTYP 2.4.2.3) in its ``S-1-5-21-...`` form."""
        sub_count = self.count()  # conformance of SubAuthority[]
        revision = self.u8()
        declared = self.u8()
        if declared != sub_count or sub_count > 15:
            raise NdrError(f"SID with {declared} sub-authorities, conformance {sub_count}")
        authority = int.from_bytes(self.raw(6), "big")
        subs = [self.u32() for _ in range(sub_count)]
        return "-".join(["S", str(revision), str(authority), *map(str, subs)])

    def array_count(self, limit: int) -> int:
        """A count of elements that will each take at least one byte: bounded by what is left."""
        if limit > self.remaining:
            raise NdrError(f"{limit} elements with {self.remaining} bytes left")
        return limit
