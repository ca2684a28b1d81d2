"""NTLMSSP identities from real session setups, checked against tshark and test.yaml."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml
from smb2_wire import all_captures, fields_by_frame, security_buffers

from smbwatch.smb import ntlmssp
from smbwatch.smb.gssapi import parse_security_buffer

pytestmark = pytest.mark.oracle


def ntlm_messages(capture: Path, kind: int) -> list[tuple[int, bytes]]:
    """(frame, NTLMSSP message of type ``kind``) from the SESSION_SETUPs of a capture."""
    found = []
    for frame, _, buffer in security_buffers(capture):
        token = parse_security_buffer(buffer)
        if token.ntlmssp is not None and ntlmssp.message_type(token.ntlmssp) == kind:
            found.append((frame, token.ntlmssp))
    return found


def tshark_text(value: str) -> str:
    return "" if value == "NULL" else value


def test_authenticate_identities_match_tshark(shared_data: Path) -> None:
    checked = 0
    for capture in all_captures(shared_data):
        messages = ntlm_messages(capture, ntlmssp.AUTHENTICATE_MESSAGE)
        if not messages:
            continue
        fields = (
            "ntlmssp.auth.username",
            "ntlmssp.auth.domain",
            "ntlmssp.auth.hostname",
            "ntlmssp.version.major",
            "ntlmssp.version.minor",
            "ntlmssp.version.build_number",
            "ntlmssp.version.ntlm_current_revision",
        )
        rows = fields_by_frame(capture, "ntlmssp.messagetype == 3", *fields)
        for frame, message in messages:
            identity = ntlmssp.parse_authenticate(message)
            user, domain, host, major, minor, build, revision = rows[frame]
            assert identity.user == tshark_text(user), (capture, frame)
            assert identity.domain == tshark_text(domain), (capture, frame)
            assert identity.workstation == tshark_text(host), (capture, frame)
            expected = f"{major}.{minor} build {build} rev {revision}" if major else None
            assert identity.version == expected, (capture, frame)
            checked += 1
    assert checked >= 8  # every NTLM logon of the corpus (tshark sees 8 AUTHENTICATEs)


def test_challenge_names_match_tshark(shared_data: Path) -> None:
    checked = 0
    for capture in all_captures(shared_data):
        messages = ntlm_messages(capture, ntlmssp.CHALLENGE_MESSAGE)
        if not messages:
            continue
        rows = fields_by_frame(
            capture,
            "ntlmssp.messagetype == 2",
            "ntlmssp.challenge.target_info.nb_computer_name",
            "ntlmssp.challenge.target_info.dns_computer_name",
        )
        for frame, message in messages:
            challenge = ntlmssp.parse_challenge(message)
            nb_name, dns_name = rows[frame]
            assert (challenge.nb_computer_name or "") == nb_name, (capture, frame)
            assert (challenge.dns_computer_name or "") == dns_name, (capture, frame)
            checked += 1
    assert checked >= 8


def test_suricata_expectations_are_met(shared_data: Path) -> None:
    """Every smb.ntlmssp.* value a suricata-verify test expects is in a parsed AUTHENTICATE."""
    keys = {"user": "user", "domain": "domain", "host": "workstation", "version": "version"}
    checked = 0
    for test_yaml in sorted(shared_data.glob("suricata-verify/*/test.yaml")):
        expected = [
            {
                key[len("smb.ntlmssp.") :]: value
                for key, value in check["filter"]["match"].items()
                if key.startswith("smb.ntlmssp.")
            }
            for check in yaml.safe_load(test_yaml.read_text())["checks"]
            if "filter" in check and check["filter"].get("count")
        ]
        expected = [values for values in expected if values]
        if not expected:
            continue
        (capture,) = [p for p in test_yaml.parent.iterdir() if p.suffix in (".pcap", ".cap")]
        identities = [
            ntlmssp.parse_authenticate(message)
            for _, message in ntlm_messages(capture, ntlmssp.AUTHENTICATE_MESSAGE)
        ]
        for values in expected:
            assert any(
                all(getattr(identity, keys[key]) == value for key, value in values.items())
                for identity in identities
            ), (test_yaml, values)
            checked += 1
    assert checked >= 2


def test_anonymous_follows_tshark(shared_data: Path) -> None:
    """Anonymous (MS-NLMP 3.2.5.1.2) only where tshark sees no user and no NT response."""
    checked = 0
    for capture in all_captures(shared_data):
        messages = ntlm_messages(capture, ntlmssp.AUTHENTICATE_MESSAGE)
        if not messages:
            continue
        rows = fields_by_frame(
            capture, "ntlmssp.messagetype == 3", "ntlmssp.auth.username", "ntlmssp.auth.ntresponse"
        )
        for frame, message in messages:
            user, nt_response = rows[frame]
            expected = user == "NULL" and not nt_response
            assert ntlmssp.parse_authenticate(message).anonymous == expected, (capture, frame)
            checked += 1
    assert checked >= 8


def test_an_authenticate_emptied_of_its_credentials_is_anonymous(shared_data: Path) -> None:
    message = bytearray(real_authenticate(shared_data))
    flags_offset = 60
    flags = struct.unpack_from("<I", message, flags_offset)[0]
    struct.pack_into("<I", message, flags_offset, flags & ~ntlmssp.NTLMSSP_NEGOTIATE_ANONYMOUS)
    for descriptor in (0, 1, 3):  # LmChallengeResponse, NtChallengeResponse, UserName
        struct.pack_into("<HH", message, 12 + 8 * descriptor, 0, 0)
    assert ntlmssp.parse_authenticate(bytes(message)).anonymous
    assert not ntlmssp.parse_authenticate(real_authenticate(shared_data)).anonymous


def real_authenticate(shared_data: Path) -> bytes:
    capture = shared_data / "suricata-verify/smb2-ntlmssp-order/smb2.pcap"
    return ntlm_messages(capture, ntlmssp.AUTHENTICATE_MESSAGE)[0][1]


def test_every_truncation_fails_cleanly(shared_data: Path) -> None:
    """A message cut before the end of a field that is read is refused; cut after it (in the
    session key, which is not read), it says exactly what the whole message says."""
    message = real_authenticate(shared_data)
    # LmChallengeResponse, NtChallengeResponse, DomainName, UserName, Workstation (MS-NLMP
    # 2.2.1.3): (Len, MaxLen, BufferOffset) each, from offset 12
    fields = [struct.unpack_from("<HHI", message, 12 + 8 * i) for i in range(5)]
    needed = max(offset + length for length, _, offset in fields)
    assert 64 < needed < len(message)  # the cut falls inside the payload on both sides
    whole = ntlmssp.parse_authenticate(message)
    for length in range(len(message)):
        if length < needed:
            with pytest.raises((ValueError, struct.error)):
                ntlmssp.parse_authenticate(message[:length])
        else:
            assert ntlmssp.parse_authenticate(message[:length]) == whole, length


@pytest.mark.parametrize("descriptor", range(5))  # the fields that are read
def test_a_field_pointing_outside_is_rejected(shared_data: Path, descriptor: int) -> None:
    message = bytearray(real_authenticate(shared_data))
    struct.pack_into("<HHI", message, 12 + 8 * descriptor, 16, 16, len(message) - 8)
    with pytest.raises(ValueError):
        ntlmssp.parse_authenticate(bytes(message))
