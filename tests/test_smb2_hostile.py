"""Hostile SMB2 input: real messages damaged, truncated, lying, looping, compressed or flooded.

Whatever the bytes, the decoder raises nothing, warns with a counted ``smb2_*`` kind, and keeps
decoding the messages that follow.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from smb2_wire import EXAMPLE, all_captures, endpoints_of, smb2_commands, wire_messages

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.smb import smb2_records as rec
from smbwatch.smb.smb2 import Smb2Decoder

pytestmark = pytest.mark.oracle

HEADER = rec.HEADER_SIZE


def real_commands(shared_data: Path) -> list[tuple[bool, bytes]]:
    """(response?, message) of one request and one response of each command in the corpus."""
    seen: dict[tuple[int, bool], bytes] = {}
    for capture in all_captures(shared_data):
        for _, header, msg in smb2_commands(capture):
            response = bool(header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR)
            seen.setdefault((header.command, response), msg)
    assert len(seen) >= 25
    return [(response, msg) for (_, response), msg in sorted(seen.items())]


def fresh_decoder() -> tuple[Smb2Decoder, Diagnostics]:
    diagnostics = Diagnostics()
    endpoints = next(iter(endpoints_of(EXAMPLE).values()))
    return Smb2Decoder(endpoints, diagnostics), diagnostics


def run(decoder: Smb2Decoder, response: bool, msg: bytes) -> list[SmbEvent]:
    """One message the way the framing layer gives it (wanted part, then the rest as body)."""
    wanted = decoder.wanted(not response, msg[:512], len(msg))
    assert 0 < wanted <= len(msg) or len(msg) == 0
    events = decoder.message(not response, msg[:wanted], len(msg), 1, 1)
    decoder.body(not response, msg[wanted:])
    return events


def only_smb2_warnings(diagnostics: Diagnostics) -> bool:
    """Counted warnings of the decoder (and of the DCE/RPC reader of damaged pipe bytes)."""
    return all(kind.startswith(("smb2_", "dcerpc_")) for kind in diagnostics.counts)


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_after_a_valid_header(shared_data: Path, seed: int) -> None:
    rng = random.Random(seed)
    decoder, diagnostics = fresh_decoder()
    for response, msg in real_commands(shared_data):
        body_length = rng.choice((0, 1, 7, len(msg) - HEADER, 300, 5000))
        body = rng.randbytes(max(body_length, 0))
        header = bytearray(msg[:HEADER])
        struct.pack_into("<I", header, 20, 0)  # no NextCommand: a single message
        run(decoder, response, bytes(header) + body)
    decoder.finish()
    assert only_smb2_warnings(diagnostics)


def test_every_truncation_of_every_command(shared_data: Path) -> None:
    decoder, diagnostics = fresh_decoder()
    for response, msg in real_commands(shared_data):
        for length in range(4, min(len(msg), 400)):
            run(decoder, response, msg[:length])
    decoder.finish()
    assert diagnostics.counts["smb2_malformed"] > 100
    assert only_smb2_warnings(diagnostics)


@pytest.mark.parametrize("seed", range(8))
def test_random_damage_to_real_conversations(shared_data: Path, seed: int) -> None:
    """Whole connections replayed with bytes flipped: no exception, and events still come."""
    rng = random.Random(seed)
    capture = all_captures(shared_data)[seed % 4 + 4]  # smb2-01, smb2-06, smb2-async, smb2-delete
    decoder, diagnostics = fresh_decoder()
    events = []
    for message in wire_messages(capture):
        data = bytearray(message.data)
        if data.startswith(b"\xfeSMB") and rng.random() < 0.3:
            for _ in range(rng.randrange(1, 6)):
                position = rng.randrange(4, len(data))
                data[position] = rng.randrange(256)
        events += run(decoder, not message.from_client, bytes(data))
    events += decoder.finish()
    assert events
    assert only_smb2_warnings(diagnostics)


def patched(msg: bytes, offset: int, fmt: str, *values: int) -> bytes:
    data = bytearray(msg)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def first(shared_data: Path, command: int, response: bool) -> bytes:
    for is_response, msg in real_commands(shared_data):
        if rec.parse_header(msg).command == command and is_response == response:
            return msg
    raise AssertionError(f"no {rec.COMMAND_NAMES[command]} in the corpus")


@pytest.mark.parametrize(
    ("command", "response", "offset", "fmt"),
    [
        (rec.CREATE, False, HEADER + 44, "<HH"),  # NameOffset, NameLength
        (rec.TREE_CONNECT, False, HEADER + 4, "<HH"),  # PathOffset, PathLength
        (rec.SESSION_SETUP, False, HEADER + 12, "<HH"),  # SecurityBufferOffset/Length
        (rec.SESSION_SETUP, True, HEADER + 4, "<HH"),
        (rec.SET_INFO, False, HEADER + 8, "<xxxxH"),  # BufferOffset (and BufferLength below)
        (rec.IOCTL, False, HEADER + 24, "<II"),  # InputOffset, InputCount
        (rec.QUERY_DIRECTORY, False, HEADER + 24, "<HH"),  # FileNameOffset/Length
    ],
)
def test_offsets_and_lengths_pointing_outside(
    shared_data: Path, command: int, response: bool, offset: int, fmt: str
) -> None:
    msg = first(shared_data, command, response)
    for values in ((0xFFF0, 0x20), (HEADER, 0xFFFF), (len(msg) - 2, 16), (3, 8)):
        decoder, diagnostics = fresh_decoder()
        lying = patched(msg, offset, fmt, *values[: fmt.count("H") + fmt.count("I")])
        run(decoder, response, lying)
        decoder.finish()
        assert only_smb2_warnings(diagnostics)


def test_huge_write_and_read_lengths_keep_memory_small(shared_data: Path) -> None:
    write = first(shared_data, rec.WRITE, False)
    decoder, diagnostics = fresh_decoder()
    lying = patched(write, HEADER + 4, "<I", 0xFFFFFFFF)  # Length
    huge = lying + bytes(64 * 1024)
    assert decoder.wanted(True, huge[:512], len(huge)) <= HEADER + 48 + 512 + 64
    run(decoder, False, lying)
    assert only_smb2_warnings(diagnostics)


def chain(*messages: bytes) -> bytes:
    """Messages joined into one compound, each NextCommand pointing at the next (8-aligned)."""
    parts = []
    for index, msg in enumerate(messages):
        padded = msg + bytes(-len(msg) % 8)
        if index < len(messages) - 1:
            padded = patched(padded, 20, "<I", len(padded))
        else:
            padded = patched(msg, 20, "<I", 0)
        parts.append(padded)
    return b"".join(parts)


@pytest.mark.parametrize("next_command", [8, 63, 65, 0xFFFFFFF8, 0x7FFFFFF8])
def test_compound_chains_that_point_nowhere(shared_data: Path, next_command: int) -> None:
    create = first(shared_data, rec.CREATE, False)
    decoder, diagnostics = fresh_decoder()
    run(decoder, False, patched(create, 20, "<I", next_command))
    assert diagnostics.counts["smb2_malformed"] == 1
    assert only_smb2_warnings(diagnostics)


def test_a_long_compound_is_walked_once(shared_data: Path) -> None:
    """10 000 commands in one message: each decoded once (NextCommand only goes forward)."""
    close = first(shared_data, rec.CLOSE, True)
    compound = chain(*[patched(close, 24, "<Q", number) for number in range(10_000)])
    decoder, diagnostics = fresh_decoder()
    events = run(decoder, True, compound)
    assert len(events) == 10_000  # each an unanswered close response, decoded for what it says
    assert only_smb2_warnings(diagnostics)


def test_a_chain_pointing_into_garbage(shared_data: Path) -> None:
    create = first(shared_data, rec.CREATE, False)
    decoder, diagnostics = fresh_decoder()
    garbage = patched(create, 20, "<I", 8 * (len(create) // 8)) + b"\x00" * 200
    run(decoder, False, garbage)
    assert diagnostics.counts["smb2_malformed"] == 1


def compressed_chained(*payloads: tuple[int, bytes], original_size: int) -> bytes:
    """SMB2 COMPRESSION_TRANSFORM_HEADER (chained) around payloads (MS-SMB2 2.2.42.2)."""
    parts = [b"\xfcSMB", struct.pack("<I", original_size)]
    for number, (algorithm, data) in enumerate(payloads):
        flags = 1 if number == 0 else 0
        parts.append(struct.pack("<HHI", algorithm, flags, len(data)) + data)
    return b"".join(parts)


def test_compressed_messages_decode_like_the_original(shared_data: Path) -> None:
    """A real CREATE response, re-sent chained-compressed (uncompressed + Pattern_V1 parts for
    its zero signature), gives the same event as the original."""
    capture = EXAMPLE
    pairs = [(h, m) for _, h, m in smb2_commands(capture) if h.command == rec.CREATE]
    request = next(m for h, m in pairs if not h.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR)
    response = next(
        m
        for h, m in pairs
        if h.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
        and h.message_id == rec.parse_header(request).message_id
    )
    plain, _ = fresh_decoder()
    run(plain, False, request)
    (expected,) = run(plain, True, response)
    zeroed = response[:48] + bytes(16) + response[64:]  # an unsigned response
    compressed = compressed_chained(
        (0, zeroed[:48]),
        (4, struct.pack("<BxxxI", 0, 16)),  # Pattern_V1: 16 zero bytes
        (0, zeroed[64:]),
        original_size=len(zeroed),
    )
    decoder, diagnostics = fresh_decoder()
    run(decoder, False, request)
    (event,) = run(decoder, True, compressed)
    assert event == expected
    assert not diagnostics.counts


def test_unsupported_compression_decodes_the_uncompressed_head(shared_data: Path) -> None:
    request = first(shared_data, rec.TREE_CONNECT, False)
    unchained = b"\xfcSMB" + struct.pack("<IHHI", len(request), 2, 0, len(request)) + request
    unchained += b"\x13" * 40  # "LZ77 data" that is never read
    decoder, diagnostics = fresh_decoder()
    run(decoder, False, unchained)
    (event,) = decoder.finish()
    assert event.action == "tree_connect" and event.share
    assert diagnostics.counts["smb2_compression_unsupported"] == 1


@pytest.mark.parametrize(
    "payloads",
    [
        [(4, struct.pack("<BxxxI", 0x41, 0xFFFFFFFF))],  # a Pattern_V1 bomb
        [(0, b"x" * 10), (4, struct.pack("<BxxxI", 0, 100))],  # beyond the original size
        [(0, b"\xfeSMB")],  # then a payload header cut short
    ],
)
def test_compression_bombs_and_lies(payloads: list[tuple[int, bytes]]) -> None:
    decoder, diagnostics = fresh_decoder()
    message = compressed_chained(*payloads, original_size=64) + b"\x00\x00"
    decoder.message(True, message, len(message), 1, 1)
    assert diagnostics.counts
    assert only_smb2_warnings(diagnostics)


def test_encrypted_message_cut_short() -> None:
    decoder, diagnostics = fresh_decoder()
    for length in range(4, 52):
        decoder.message(True, b"\xfdSMB" + bytes(length - 4), length, 1, 1)
    assert diagnostics.counts["smb2_malformed"] == 48


@pytest.mark.parametrize("seed", range(4))
def test_wanted_never_fails_or_overreaches(seed: int) -> None:
    rng = random.Random(seed)
    decoder, _ = fresh_decoder()
    for _ in range(2000):
        head = rng.choice((b"\xfeSMB", b"\xfdSMB", b"\xfcSMB", b"")) + rng.randbytes(
            rng.randrange(0, 600)
        )
        head = head[:512]
        total = rng.choice((len(head), len(head) + rng.randrange(1 << 24)))
        wanted = decoder.wanted(bool(rng.randrange(2)), head, total)
        assert 0 <= wanted <= total


def test_a_broken_security_buffer_costs_the_identity_not_the_logon(shared_data: Path) -> None:
    capture = next(p for p in all_captures(shared_data) if "smb2-ntlmssp-order" in str(p))
    setups = [(h, m) for _, h, m in smb2_commands(capture) if h.command == rec.SESSION_SETUP]
    request, response = next(
        (m, r)
        for h, m in setups
        if not h.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR and b"NTLMSSP\x00\x03" in m
        for hr, r in setups
        if hr.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR and hr.message_id == h.message_id
    )
    at = request.index(b"NTLMSSP\x00\x03")
    broken = patched(request, at + 36, "<HHI", 40, 40, 0xFFFF)  # UserName beyond the buffer
    decoder, diagnostics = fresh_decoder()
    run(decoder, False, broken)
    (logon,) = run(decoder, True, response)
    assert logon.action == "logon" and logon.status == "STATUS_SUCCESS" and logon.user is None
    assert diagnostics.counts == {"smb2_security_buffer_malformed": 1}
