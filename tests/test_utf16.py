"""UTF-16 names and strings from the wire (SMB's little-endian, DCE/RPC's either way) decode
as the standard library decodes them, whatever the bytes (an odd last byte, lone and paired
surrogates, random bytes from a hostile capture)."""

from __future__ import annotations

import random

import pytest

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
