"""SESSION_SETUP security buffers: SPNEGO (RFC 4178) around NTLMSSP or Kerberos (RFC 4120).

From a Kerberos AP-REQ only the clear part of the ticket is read: the realm and the service
principal (``cifs/server.domain``); the client's name is inside the encrypted authenticator.
The DER reader is minimal and bounds-checked: anything malformed raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smbwatch.events import SmbEvent
from smbwatch.smb import ntlmssp
from smbwatch.smb.ntlmssp import SIGNATURE as NTLMSSP_SIGNATURE

# DER identifiers used below
_SEQUENCE: Final = 0x30
_OID: Final = 0x06
_OCTET_STRING: Final = 0x04
_GSS_INITIAL_CONTEXT_TOKEN: Final = 0x60  # [APPLICATION 0]
_NEG_TOKEN_INIT: Final = 0xA0  # NegotiationToken choice [0]
_NEG_TOKEN_RESP: Final = 0xA1  # NegotiationToken choice [1]
_KRB_AP_REQ: Final = 0x6E  # [APPLICATION 14]
_KRB_TICKET: Final = 0x61  # [APPLICATION 1]
_AP_REQ_TOKEN_ID: Final = b"\x01\x00"  # RFC 4121 4.1

# OID contents (without tag and length)
OID_SPNEGO: Final = bytes.fromhex("2b0601050502")  # 1.3.6.1.5.5.2
OID_KERBEROS: Final = bytes.fromhex("2a864886f712010202")  # 1.2.840.113554.1.2.2
OID_MS_KERBEROS: Final = bytes.fromhex("2a864882f712010202")  # 1.2.840.48018.1.2.2
OID_KERBEROS_U2U: Final = bytes.fromhex("2a864886f71201020203")  # 1.2.840.113554.1.2.2.3
OID_NTLMSSP: Final = bytes.fromhex("2b06010401823702020a")  # 1.3.6.1.4.1.311.2.2.10
_MECHANISMS: Final = {
    OID_KERBEROS: "kerberos",
    OID_MS_KERBEROS: "kerberos",
    OID_KERBEROS_U2U: "kerberos",
    OID_NTLMSSP: "ntlmssp",
}

_MAX_LENGTH_OCTETS: Final = 4


@dataclass(slots=True)
class SecurityToken:
    """What a security buffer reveals: the mechanism and its clear-text identity parts."""

    mechanism: str | None = None  # "ntlmssp", "kerberos"
    ntlmssp: bytes | None = None  # the NTLMSSP message, for smb.ntlmssp
    realm: str | None = None  # Kerberos ticket realm
    spn: str | None = None  # Kerberos ticket service principal: cifs/host.domain


def _tlv(buf: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``offset``; checked against ``end``."""
    if offset + 2 > end:
        raise ValueError("DER element truncated")
    tag = buf[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER high tag numbers are not used by SPNEGO/Kerberos")
    length = buf[offset + 1]
    offset += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 0 < octets <= _MAX_LENGTH_OCTETS or offset + octets > end:
            raise ValueError("DER length malformed")
        length = int.from_bytes(buf[offset : offset + octets], "big")
        offset += octets
    if offset + length > end:
        raise ValueError("DER value beyond its container")
    return tag, offset, offset + length


def _children(buf: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """The elements of a constructed value by tag (context tags of a SEQUENCE are unique)."""
    found: dict[int, tuple[int, int]] = {}
    while start < end:
        tag, value_start, value_end = _tlv(buf, start, end)
        found.setdefault(tag, (value_start, value_end))
        start = value_end
    return found


def _inner(buf: bytes, span: tuple[int, int], tag: int) -> tuple[int, int]:
    """The value of the single element of type ``tag`` that fills ``span`` (explicit tagging)."""
    found, start, end = _tlv(buf, span[0], span[1])
    if found != tag:
        raise ValueError(f"DER tag 0x{found:02x} where 0x{tag:02x} was expected")
    return start, end


def parse_security_buffer(blob: bytes) -> SecurityToken:
    """Unwrap a SESSION_SETUP security buffer: SPNEGO init/response, raw NTLMSSP or raw GSS."""
    if blob.startswith(NTLMSSP_SIGNATURE):
        return SecurityToken(mechanism="ntlmssp", ntlmssp=blob)
    if not blob:
        return SecurityToken()
    tag, start, end = _tlv(blob, 0, len(blob))
    if tag == _NEG_TOKEN_RESP:
        return _neg_token_resp(blob, start, end)
    if tag != _GSS_INITIAL_CONTEXT_TOKEN:
        raise ValueError(f"security buffer starts with DER tag 0x{tag:02x}")
    oid_start, oid_end = _inner(blob, (start, end), _OID)
    oid = blob[oid_start:oid_end]
    if oid == OID_SPNEGO:
        return _neg_token_init(blob, oid_end, end)
    return _mech_token(blob, 0, len(blob))


def _neg_token_init(blob: bytes, start: int, end: int) -> SecurityToken:
    init = _inner(blob, _inner(blob, (start, end), _NEG_TOKEN_INIT), _SEQUENCE)
    fields = _children(blob, *init)
    token = SecurityToken()
    if 0xA0 in fields:  # mechTypes: the client's preference comes first
        types = _children(blob, *_inner(blob, fields[0xA0], _SEQUENCE))
        if _OID in types:
            oid_start, oid_end = types[_OID]
            token.mechanism = _MECHANISMS.get(blob[oid_start:oid_end])
    if 0xA2 in fields:  # mechToken: the first token of the preferred mechanism
        inner = _mech_token(blob, *_inner(blob, fields[0xA2], _OCTET_STRING))
        return inner if inner.mechanism else token
    return token


def _neg_token_resp(blob: bytes, start: int, end: int) -> SecurityToken:
    fields = _children(blob, *_inner(blob, (start, end), _SEQUENCE))
    token = SecurityToken()
    if 0xA1 in fields:  # supportedMech: what the server chose
        oid_start, oid_end = _inner(blob, fields[0xA1], _OID)
        token.mechanism = _MECHANISMS.get(blob[oid_start:oid_end])
    if 0xA2 in fields:  # responseToken
        inner = _mech_token(blob, *_inner(blob, fields[0xA2], _OCTET_STRING))
        if inner.mechanism:
            return inner
    return token


def _mech_token(blob: bytes, start: int, end: int) -> SecurityToken:
    """An NTLMSSP message, or a Kerberos GSS token (RFC 4121 4.1) that may carry an AP-REQ."""
    if blob.startswith(NTLMSSP_SIGNATURE, start):
        return SecurityToken(mechanism="ntlmssp", ntlmssp=blob[start:end])
    if start >= end or blob[start] != _GSS_INITIAL_CONTEXT_TOKEN:
        return SecurityToken()
    _, value_start, value_end = _tlv(blob, start, end)
    oid_start, oid_end = _inner(blob, (value_start, value_end), _OID)
    mechanism = _MECHANISMS.get(blob[oid_start:oid_end])
    token = SecurityToken(mechanism=mechanism)
    if mechanism == "kerberos" and blob.startswith(_AP_REQ_TOKEN_ID, oid_end):
        token.realm, token.spn = _ap_req_ticket(blob, oid_end + 2, value_end)
    return token


def _ap_req_ticket(blob: bytes, start: int, end: int) -> tuple[str | None, str | None]:
    """Realm and service principal of the ticket in a KRB_AP_REQ (RFC 4120 5.5.1, 5.3)."""
    ap_req = _children(blob, *_inner(blob, _inner(blob, (start, end), _KRB_AP_REQ), _SEQUENCE))
    if 0xA3 not in ap_req:
        raise ValueError("AP-REQ without a ticket")
    ticket_span = _inner(blob, _inner(blob, ap_req[0xA3], _KRB_TICKET), _SEQUENCE)
    ticket = _children(blob, *ticket_span)
    realm = None
    if 0xA1 in ticket:
        realm = _kerberos_string(blob, _tlv(blob, *ticket[0xA1]))
    spn = None
    if 0xA2 in ticket:
        principal = _children(blob, *_inner(blob, ticket[0xA2], _SEQUENCE))
        if 0xA1 in principal:
            names_start, names_end = _inner(blob, principal[0xA1], _SEQUENCE)
            parts = []
            while names_start < names_end:
                element = _tlv(blob, names_start, names_end)
                parts.append(_kerberos_string(blob, element))
                names_start = element[2]
            spn = "/".join(parts)
    return realm, spn


def _kerberos_string(blob: bytes, element: tuple[int, int, int]) -> str:
    """A KerberosString (GeneralString, IA5 in practice); UTF-8 tolerated, never fails."""
    _, start, end = element
    return blob[start:end].decode("utf-8", "replace")


def fill_identity(event: SmbEvent, blob: bytes) -> bool:
    """Who logs on, from a SESSION_SETUP security blob (SMB1 and SMB2 alike): the NTLMSSP
    AUTHENTICATE identity, or the realm and SPN of a Kerberos AP-REQ. False when the blob is
    an earlier round that names no one (NTLMSSP NEGOTIATE)."""
    token = parse_security_buffer(blob)
    event.auth = token.mechanism
    if token.ntlmssp is not None:
        if ntlmssp.message_type(token.ntlmssp) != ntlmssp.AUTHENTICATE_MESSAGE:
            return False
        identity = ntlmssp.parse_authenticate(token.ntlmssp)
        event.user = identity.user or None
        event.domain = identity.domain or None
        event.workstation = identity.workstation or None
        event.client_version = identity.version
        if identity.anonymous:
            event.auth = "anonymous"
        return True
    event.realm, event.spn = token.realm, token.spn
    return token.realm is not None or token.spn is not None
