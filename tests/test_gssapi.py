"""SPNEGO and Kerberos from real session setups, checked against tshark; hostile DER."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from smb2_wire import all_captures, fields_by_frame, security_buffers

from smbwatch.smb import ntlmssp
from smbwatch.smb.gssapi import SecurityToken, parse_security_buffer

pytestmark = pytest.mark.oracle


def all_buffers(shared_data: Path) -> list[tuple[Path, int, bool, bytes]]:
    return [
        (capture, frame, from_client, buffer)
        for capture in all_captures(shared_data)
        for frame, from_client, buffer in security_buffers(capture)
    ]


def test_kerberos_realm_and_spn_match_tshark(shared_data: Path) -> None:
    checked = 0
    for capture, frame, from_client, buffer in all_buffers(shared_data):
        token = parse_security_buffer(buffer)
        if not from_client or token.mechanism != "kerberos":
            continue
        rows = fields_by_frame(
            capture, "kerberos.msg_type == 14", "kerberos.realm", "kerberos.SNameString"
        )
        realm, sname = rows[frame]
        assert token.realm == realm, (capture, frame)
        assert token.spn == sname.replace(",", "/"), (capture, frame)
        checked += 1
    assert checked >= 3  # smb2-06 and the three SharpSC sessions carry AP-REQs


def test_mechanism_matches_tshark(shared_data: Path) -> None:
    """NTLMSSP where tshark dissects NTLMSSP, Kerberos where it dissects a Kerberos AP-REQ."""
    seen = set()
    for capture, frame, _, buffer in all_buffers(shared_data):
        if not buffer:
            continue
        token = parse_security_buffer(buffer)
        ntlm = fields_by_frame(capture, "smb2.cmd == 1 && ntlmssp")
        kerberos = fields_by_frame(capture, "smb2.cmd == 1 && kerberos.msg_type == 14")
        if frame in ntlm:
            assert token.mechanism == "ntlmssp" and token.ntlmssp is not None, (capture, frame)
            assert ntlmssp.message_type(token.ntlmssp) in (1, 2, 3)
        if frame in kerberos:
            assert token.mechanism == "kerberos", (capture, frame)
        seen.add(token.mechanism)
    assert {"ntlmssp", "kerberos"} <= seen


def kerberos_buffer(shared_data: Path) -> bytes:
    capture = shared_data / "suricata-verify/smb2-06/20171220_smb_net_user.pcap"
    return next(
        buffer
        for _, from_client, buffer in security_buffers(capture)
        if from_client and parse_security_buffer(buffer).mechanism == "kerberos"
    )


def test_every_truncation_fails_cleanly(shared_data: Path) -> None:
    """DER says how long each element is: a buffer cut anywhere is refused as a whole (an empty
    one is no token at all), never read as a shorter token with other names."""
    buffer = kerberos_buffer(shared_data)
    assert parse_security_buffer(b"") == SecurityToken()
    for length in range(1, len(buffer)):
        with pytest.raises(ValueError):
            parse_security_buffer(buffer[:length])
    whole = parse_security_buffer(buffer)
    assert (whole.mechanism, whole.realm) == ("kerberos", "CONTOSO.LOCAL")  # as tshark reads it


@pytest.mark.parametrize("seed", range(20))
def test_random_damage_fails_cleanly(shared_data: Path, seed: int) -> None:
    damaged = bytearray(kerberos_buffer(shared_data))
    rng = random.Random(seed)
    for _ in range(8):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    try:
        token = parse_security_buffer(bytes(damaged))
    except ValueError:
        return
    assert token.realm is None or isinstance(token.realm, str)


def test_huge_lengths_are_rejected() -> None:
    # [APPLICATION 0] with a 4-byte length far beyond the buffer, then a 5-byte length form
    for blob in (b"\x60\x84\xff\xff\xff\xff\x06\x06", b"\x60\x85\x01\x00\x00\x00\x00\x06"):
        with pytest.raises(ValueError):
            parse_security_buffer(blob)
