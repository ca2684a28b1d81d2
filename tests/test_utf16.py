"""UTF-16 names and strings from the wire (SMB's little-endian, DCE/RPC's either way) decode
as the standard library decodes them, whatever the bytes (an odd last byte, lone and paired
surrogates, random bytes from a hostile capture)."""

from __future__ import annotations

import random
import struct

import pytest

from smbwatch.dcerpc.ndr import NdrReader
from smbwatch.utf16 import utf16be, utf16le

pytestmark = pytest.mark.unit


def test_names_decode_as_the_standard_library_decodes_them() -> None:
    rng = random.Random(16)
    cases = [
        b"",
        b"a",
        "\\\\FILESRV\\ADMIN$".encode("utf-16-le"),
        "Windows\\Temp\\ÿ€😀.exe".encode("utf-16-le"),
        b"\x00\xd8",  # a lone high surrogate
        b"\x00\xdc" + "x".encode("utf-16-le"),  # a lone low surrogate
        b"\x3d\xd8\x00\xde",  # a pair
        "name".encode("utf-16-le") + b"\x41",  # an odd last byte
    ]
    cases += [rng.randbytes(rng.randrange(0, 80)) for _ in range(5000)]
    cases += [
        bytes(rng.choice((0x00, 0xD8, 0xDC, 0x41)) for _ in range(rng.randrange(0, 20)))
        for _ in range(2000)
    ]
    for data in cases:
        assert utf16le(data) == data.decode("utf-16-le", "replace"), data
        assert utf16be(data) == data.decode("utf-16-be", "replace"), data


@pytest.mark.parametrize("little_endian", [True, False])
def test_ndr_strings_decode_in_the_stubs_byte_order(little_endian: bool) -> None:
    """A DCE/RPC stub says its byte order in the PDU header's data representation: a wide
    string of a big-endian stub reads as the same text as one of a little-endian stub."""
    text = "C:\\Windows\\Temp\\ÿ€😀.exe"
    order, codec, other = ("<", "utf-16-le", "utf-16-be")
    if not little_endian:
        order, codec, other = (">", "utf-16-be", "utf-16-le")

    def stub(encoding: str) -> bytes:
        units = (text + "\x00").encode(encoding)
        count = len(units) // 2
        return struct.pack(f"{order}III", count, 0, count) + units  # max, offset, actual

    assert NdrReader(stub(codec), little_endian=little_endian).wstr() == text
    assert NdrReader(stub(other), little_endian=little_endian).wstr() != text
