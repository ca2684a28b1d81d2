"""NTLMSSP (MS-NLMP) messages: who logged on (AUTHENTICATE) and what the server calls itself
(CHALLENGE target info). Only the clear-text identity fields are read; nothing is verified.

Every field is located through its (length, offset) descriptor, so the order of the payload does
not matter, and every descriptor is bounds-checked: a bad one raises ``ValueError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from smbwatch.utf16 import utf16le

SIGNATURE: Final = b"NTLMSSP\x00"
NEGOTIATE_MESSAGE: Final = 1
CHALLENGE_MESSAGE: Final = 2
AUTHENTICATE_MESSAGE: Final = 3

NTLMSSP_NEGOTIATE_UNICODE: Final = 0x00000001
NTLMSSP_NEGOTIATE_ANONYMOUS: Final = 0x00000800
NTLMSSP_NEGOTIATE_VERSION: Final = 0x02000000

# MsvAvNbComputerName, MsvAvNbDomainName, MsvAvDnsComputerName (MS-NLMP 2.2.2.1)
_MSV_AV_EOL: Final = 0
_MSV_AV_NB_COMPUTER_NAME: Final = 1
_MSV_AV_NB_DOMAIN_NAME: Final = 2
_MSV_AV_DNS_COMPUTER_NAME: Final = 3

_FIELD: Final = struct.Struct("<HHI")  # Len, MaxLen, BufferOffset
_MESSAGE_TYPE: Final = struct.Struct("<I")
# Signature, MessageType, LmChallengeResponse, NtChallengeResponse, DomainName, UserName,
# Workstation, EncryptedRandomSessionKey, NegotiateFlags
_AUTHENTICATE: Final = struct.Struct("<8sI8s8s8s8s8s8sI")
# Signature, MessageType, TargetName, NegotiateFlags, ServerChallenge, Reserved, TargetInfo
_CHALLENGE: Final = struct.Struct("<8sI8sI8s8s8s")
_VERSION: Final = struct.Struct("<BBH3xB")  # ProductMajor, ProductMinor, ProductBuild, NTLMRevision
_AV_PAIR: Final = struct.Struct("<HH")


@dataclass(slots=True)
class Authenticate:
    """The identity an AUTHENTICATE_MESSAGE claims."""

    user: str
    domain: str
    workstation: str
    anonymous: bool
    version: str | None  # "10.0 build 19041 rev 15": the client's OS, when it says


@dataclass(slots=True)
class Challenge:
    """What a CHALLENGE_MESSAGE says of the server."""

    target_name: str
    nb_computer_name: str | None
    nb_domain_name: str | None
    dns_computer_name: str | None


def message_type(blob: bytes) -> int | None:
    """NEGOTIATE (1), CHALLENGE (2) or AUTHENTICATE (3); None if ``blob`` is not NTLMSSP."""
    if len(blob) < 12 or not blob.startswith(SIGNATURE):
        return None
    return _MESSAGE_TYPE.unpack_from(blob, 8)[0]


def _field(blob: bytes, descriptor: bytes) -> bytes:
    length, _, offset = _FIELD.unpack(descriptor)
    if offset + length > len(blob):
        raise ValueError(f"NTLMSSP field at {offset}+{length} beyond {len(blob)} bytes")
    return blob[offset : offset + length]


def _payload_start(blob: bytes, descriptors: tuple[bytes, ...]) -> int:
    """Where the first non-empty field's bytes begin (the end of the fixed part)."""
    starts = [offset for length, _, offset in map(_FIELD.unpack, descriptors) if length]
    return min(starts, default=len(blob))


def _text(raw: bytes, unicode: bool) -> str:
    return utf16le(raw) if unicode else raw.decode("cp437")


def _version(blob: bytes, flags: int, offset: int, payload_start: int) -> str | None:
    # Old clients set the flag but start their payload where the version would be.
    if not flags & NTLMSSP_NEGOTIATE_VERSION or payload_start < offset + _VERSION.size:
        return None
    major, minor, build, revision = _VERSION.unpack_from(blob, offset)
    return f"{major}.{minor} build {build} rev {revision}"


def parse_authenticate(blob: bytes) -> Authenticate:
    """The user, domain and workstation of an AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3)."""
    if len(blob) < _AUTHENTICATE.size:
        raise ValueError("NTLMSSP AUTHENTICATE truncated")
    (_, _, lm, nt, domain, user, workstation, key, flags) = _AUTHENTICATE.unpack_from(blob)
    descriptors = (lm, nt, domain, user, workstation, key)
    unicode = bool(flags & NTLMSSP_NEGOTIATE_UNICODE)
    user_name = _text(_field(blob, user), unicode)
    nt_response = _field(blob, nt)
    lm_response = _field(blob, lm)
    # MS-NLMP 3.2.5.1.2: anonymous is an empty user with empty NT and empty or Z(1) LM responses.
    anonymous = bool(flags & NTLMSSP_NEGOTIATE_ANONYMOUS) or (
        not user_name and not nt_response and lm_response in (b"", b"\x00")
    )
    return Authenticate(
        user=user_name,
        domain=_text(_field(blob, domain), unicode),
        workstation=_text(_field(blob, workstation), unicode),
        anonymous=anonymous,
        version=_version(blob, flags, _AUTHENTICATE.size, _payload_start(blob, descriptors)),
    )


def parse_challenge(blob: bytes) -> Challenge:
    """The server's names from a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2) and its AV pairs."""
    if len(blob) < _CHALLENGE.size:
        raise ValueError("NTLMSSP CHALLENGE truncated")
    (_, _, target_name, flags, _, _, target_info) = _CHALLENGE.unpack_from(blob)
    unicode = bool(flags & NTLMSSP_NEGOTIATE_UNICODE)
    names: dict[int, str] = {}
    info = _field(blob, target_info)
    offset = 0
    while offset + _AV_PAIR.size <= len(info):
        av_id, av_len = _AV_PAIR.unpack_from(info, offset)
        offset += _AV_PAIR.size
        if av_id == _MSV_AV_EOL or offset + av_len > len(info):
            break
        if av_id <= _MSV_AV_DNS_COMPUTER_NAME:
            names[av_id] = utf16le(info[offset : offset + av_len])
        offset += av_len
    return Challenge(
        target_name=_text(_field(blob, target_name), unicode),
        nb_computer_name=names.get(_MSV_AV_NB_COMPUTER_NAME),
        nb_domain_name=names.get(_MSV_AV_NB_DOMAIN_NAME),
        dns_computer_name=names.get(_MSV_AV_DNS_COMPUTER_NAME),
    )
