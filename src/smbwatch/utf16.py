"""UTF-16 text from the wire: the names of files, shares, users and hosts in SMB1, SMB2 and
NTLMSSP messages, and the strings of DCE/RPC calls (service names and command lines, registry
values, task XML, WMI queries). Below both layers, so that each decodes the same way.

Decoded by the codec's own function: ``bytes.decode("utf-16-le")`` looks the codec up by name
and passes through a Python function on its way there (0.5 µs a name against 0.1 µs), and a
capture has a name in nearly every CREATE.
"""

from __future__ import annotations

import codecs
from typing import Final

_DECODE_LE: Final = codecs.utf_16_le_decode
_DECODE_BE: Final = codecs.utf_16_be_decode


def utf16le(data: bytes) -> str:
    """``data`` as UTF-16LE text, what is not (an odd last byte, a lone surrogate) replaced
    with U+FFFD, exactly as ``data.decode("utf-16-le", "replace")``."""
    return _DECODE_LE(data, "replace", True)[0]


def utf16be(data: bytes) -> str:
    """The same for UTF-16BE (a DCE/RPC stub in big-endian data representation), exactly as
    ``data.decode("utf-16-be", "replace")``."""
    return _DECODE_BE(data, "replace", True)[0]
