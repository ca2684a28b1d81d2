"""netlogon (MS-NRPC) arguments: the secure channel handshake that Zerologon abuses (T1210).

CVE-2020-1472: with a client challenge and credential of zeros, one AES-CFB8 session key in 256
encrypts zeros to zeros, so an attacker repeats NetrServerAuthenticate2/3 with zero credentials
until one succeeds, then resets the DC's machine account password with NetrServerPasswordSet2
(a zero authenticator and a zeroed new password). A genuine client's credential is derived from
random challenges: eight zero bytes are, in practice, only ever an attack. The credentials are
shown in hex so that rules can compare them with ``0000000000000000``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

Args = dict[str, Any]

CREDENTIAL_SIZE: Final = 8  # NETLOGON_CREDENTIAL
TRUSTED_PASSWORD_SIZE: Final = 516  # NL_TRUSTED_PASSWORD: WCHAR Buffer[256], ULONG Length
OWF_PASSWORD_SIZE: Final = 16  # ENCRYPTED_NT_OWF_PASSWORD
SECURE_CHANNEL_TYPES: Final = {  # NETLOGON_SECURE_CHANNEL_TYPE (MS-NRPC 2.2.1.3.13)
    0: "NullSecureChannel",
    1: "MsvApSecureChannel",
    2: "WorkstationSecureChannel",
    3: "TrustedDnsDomainSecureChannel",
    4: "TrustedDomainSecureChannel",
    5: "UasServerSecureChannel",
    6: "ServerSecureChannel",
    7: "CdcServerSecureChannel",
}


def _primary_name(r: NdrReader, args: Args) -> None:
    """``[in, unique, string] LOGONSRV_HANDLE PrimaryName``: the DC the client addressed."""
    name = r.unique_wstr()
    if name is not None:
        args["primary_name"] = name


def _credential(r: NdrReader) -> str:
    """A NETLOGON_CREDENTIAL (eight bytes, byte-aligned) in hex."""
    return r.raw(CREDENTIAL_SIZE).hex()


def _account(r: NdrReader, args: Args) -> None:
    """AccountName, SecureChannelType and ComputerName, common to the calls below."""
    args["account_name"] = r.wstr()
    channel = r.enum()
    args["secure_channel_type"] = SECURE_CHANNEL_TYPES.get(channel, f"0x{channel:X}")
    args["computer_name"] = r.wstr()


def _req_challenge(r: NdrReader, handles: HandleNames) -> Args:
    """NetrServerReqChallenge (3.5.4.4.1): the client's name and challenge."""
    args: Args = {}
    _primary_name(r, args)
    args["computer_name"] = r.wstr()
    args["client_challenge"] = _credential(r)
    return args


def _authenticate(flags: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """NetrServerAuthenticate (3.5.4.4.3), and 2 and 3 (3.5.4.4.2, .4.4.4) which add flags."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        args: Args = {}
        _primary_name(r, args)
        _account(r, args)
        args["client_credential"] = _credential(r)
        if flags:
            args["negotiate_flags"] = f"0x{r.u32():08x}"
        return args

    return decode


def _authenticator(r: NdrReader, args: Args) -> None:
    """A NETLOGON_AUTHENTICATOR: the credential and its timestamp."""
    r.align(4)
    args["authenticator_credential"] = _credential(r)
    args["authenticator_timestamp"] = r.u32()


def _password_set(r: NdrReader, handles: HandleNames) -> Args:
    """NetrServerPasswordSet (3.5.4.4.6): the account and an encrypted NT OWF password."""
    args: Args = {}
    _primary_name(r, args)
    _account(r, args)
    _authenticator(r, args)
    args["new_password_zero"] = not any(r.raw(OWF_PASSWORD_SIZE))
    return args


def _password_set2(r: NdrReader, handles: HandleNames) -> Args:
    """NetrServerPasswordSet2 (3.5.4.4.5): the account and an encrypted clear-text password."""
    args: Args = {}
    _primary_name(r, args)
    _account(r, args)
    _authenticator(r, args)
    r.align(4)
    args["new_password_zero"] = not any(r.raw(TRUSTED_PASSWORD_SIZE))
    return args


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    4: _req_challenge,
    5: _authenticate(flags=False),
    6: _password_set,
    15: _authenticate(flags=True),
    26: _authenticate(flags=True),
    30: _password_set2,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
