"""Hostile and damaged pipe data: it costs one call (or its arguments), with a counted warning,
never an exception, never the other calls, never unbounded memory.

Every input here is real pipe bytes from a capture (smbexec's svcctl session), cut, split,
mutated or replayed; nothing is built by hand.
"""

from __future__ import annotations

import random
import struct
import tracemalloc
from pathlib import Path

import pytest
from dcerpc_capture import PipeStream, run_pipe, smb2_pipes

from smbwatch.dcerpc import pipe as pipe_module
from smbwatch.dcerpc.pdu import PFC_FIRST_FRAG, PFC_LAST_FRAG
from smbwatch.dcerpc.pipe import RpcPipe
from smbwatch.diagnostics import Diagnostics

pytestmark = pytest.mark.oracle

SMBEXEC = "pcap/empire_smbexec_dcerpc_smb_svcctl_WORKSTATION6_2020-09-20025716.cap"


@pytest.fixture(scope="module")
def stream(shared_data: Path) -> PipeStream:
    (svcctl,) = smb2_pipes(shared_data / SMBEXEC)
    return svcctl


def _summary(calls):
    return [(c.operation, c.call_id, c.status, c.args) for c in calls]


def _client_pdus(stream: PipeStream) -> list[bytes]:
    """The client's PDUs (each SMB2 WRITE of this session carries exactly one)."""
    return [chunk.data for chunk in stream.chunks if chunk.from_client]


def _with_call_id(pdu: bytes, call_id: int) -> bytes:
    """A real PDU with its call_id rewritten."""
    return pdu[:12] + struct.pack("<I", call_id) + pdu[16:]


def test_arbitrary_splits_give_the_same_calls(stream: PipeStream) -> None:
    whole = _summary(run_pipe(stream))
    rng = random.Random(7)
    for _ in range(5):
        pipe = RpcPipe(Diagnostics())
        calls = []
        for chunk in stream.chunks:
            data, at = chunk.data, 0
            while at < len(data):
                step = rng.randint(1, 40)
                calls += pipe.feed(chunk.from_client, data[at : at + step], chunk.time, chunk.frame)
                at += step
        assert _summary(calls + pipe.finish()) == whole
    byte_by_byte = RpcPipe(Diagnostics())
    calls = []
    for chunk in stream.chunks:
        for i in range(len(chunk.data)):
            calls += byte_by_byte.feed(chunk.from_client, chunk.data[i : i + 1], 0, chunk.frame)
    assert _summary(calls + byte_by_byte.finish()) == whole


def _mutated_create_service(stream: PipeStream, mutate) -> tuple[list, Diagnostics]:
    """The session with CreateServiceW's binary path count fields rewritten by ``mutate``."""
    path = "%COMSPEC%".encode("utf-16-le")
    chunks = []
    for chunk in stream.chunks:
        data = chunk.data
        at = data.find(path)
        if at >= 0 and chunk.from_client:
            data = bytearray(data)
            mutate(data, at - 12)  # max_count, offset, actual_count precede the characters
            data = bytes(data)
        chunks.append(type(chunk)(chunk.from_client, data, chunk.time, chunk.frame))
    diagnostics = Diagnostics()
    return run_pipe(PipeStream("svcctl", chunks), diagnostics), diagnostics


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data, at: struct.pack_into("<III", data, at, 0x7FFFFFFF, 0, 0x7FFFFFFF),  # huge
        lambda data, at: struct.pack_into("<I", data, at + 4, 0xFFFFFFF0),  # offset past max
        lambda data, at: struct.pack_into("<I", data, at + 8, 0x10000000),  # actual > max
    ],
    ids=["huge_count", "offset_out_of_range", "actual_over_max"],
)
def test_hostile_counts_cost_the_arguments_of_one_call(stream: PipeStream, mutate) -> None:
    clean = _summary(run_pipe(stream))
    calls, diagnostics = _mutated_create_service(stream, mutate)
    create = [c for c in calls if c.operation == "CreateServiceW"]
    assert len(create) == 1 and create[0].args is None and create[0].status == "ERROR_SUCCESS"
    assert diagnostics.counts["dcerpc_ndr_error"] == 1
    assert set(diagnostics.counts) <= {"dcerpc_ndr_error", "dcerpc_duplicate_call_id"}
    # The other calls are all there, answered as before (only names learnt from it are lost).
    assert [s[:3] for s in _summary(calls)] == [s[:3] for s in clean]


def test_repeated_referent_ids_do_not_loop(stream: PipeStream) -> None:
    """Every pointer of the request aliased to one referent id: read linearly, no loop."""
    (create,) = [p for p in _client_pdus(stream) if b"%\x00C\x00O\x00M" in p]
    aliased = create.replace(b"\x00\x00\x02\x00", b"\x04\x00\x02\x00")
    pipe = RpcPipe(Diagnostics(), "svcctl")
    pipe.feed(True, aliased, 0, 1)
    (call,) = pipe.finish()
    assert call.opnum == 12


def test_truncations_and_random_bytes_never_raise(stream: PipeStream) -> None:
    rng = random.Random(11)
    for _ in range(300):
        diagnostics = Diagnostics()
        pipe = RpcPipe(diagnostics, rng.choice([None, "svcctl", "winreg"]))
        for chunk in stream.chunks:
            data = bytearray(chunk.data)
            action = rng.random()
            if action < 0.3:
                data = data[: rng.randrange(len(data) + 1)]
            elif action < 0.6:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            elif action < 0.7:
                data = bytearray(rng.randbytes(rng.randint(1, 300)))
            pipe.feed(chunk.from_client, bytes(data), chunk.time, chunk.frame)
            if rng.random() < 0.05:
                pipe.gap(chunk.from_client)
        pipe.finish()
        assert "dcerpc_decoder_error" not in diagnostics.counts
    random_only = Diagnostics()
    pipe = RpcPipe(random_only, "svcctl")
    for _ in range(200):
        pipe.feed(rng.random() < 0.5, b"\x05\x00" + rng.randbytes(rng.randint(0, 200)), 0, 0)
    pipe.finish()
    assert random_only.counts and "dcerpc_decoder_error" not in random_only.counts


def test_truncated_fragmented_request_is_kept_without_arguments(stream: PipeStream) -> None:
    """smbexec's CreateServiceW comes in 3 fragments; the capture loses the last one."""
    diagnostics = Diagnostics()
    pipe = RpcPipe(diagnostics)
    calls = []
    for chunk in stream.chunks:
        if chunk.from_client and chunk.data[3] == PFC_LAST_FRAG:
            break  # the last fragment, and everything after it, is lost
        if chunk.from_client and chunk.data[3] == PFC_FIRST_FRAG:
            first_frame = chunk.frame
        calls += pipe.feed(chunk.from_client, chunk.data, chunk.time, chunk.frame)
    calls += pipe.finish()
    (create,) = [c for c in calls if c.opnum == 12]
    assert (create.operation, create.args, create.request_frame) == (
        "CreateServiceW",
        None,
        first_frame,
    )
    assert diagnostics.counts["dcerpc_truncated_call"] == 1


def test_fragment_flood_is_bounded(stream: PipeStream) -> None:
    """Thousands of first fragments that never finish: bounded state, each abandoned counted."""
    (first,) = [p for p in _client_pdus(stream) if p[3] == PFC_FIRST_FRAG]
    diagnostics = Diagnostics()
    pipe = RpcPipe(diagnostics, "svcctl")
    tracemalloc.start()
    abandoned = []
    for call_id in range(5000):
        abandoned += pipe.feed(True, _with_call_id(first, call_id), 0, call_id)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * pipe_module.MAX_PARTIAL_CALLS * len(first) + 4_000_000
    assert len(abandoned) == 5000 - pipe_module.MAX_PARTIAL_CALLS
    assert diagnostics.counts["dcerpc_fragment_limit"] == len(abandoned)
    assert all(call.operation == "CreateServiceW" and call.args is None for call in abandoned)


def test_oversized_call_is_given_up_but_answered(stream: PipeStream, monkeypatch) -> None:
    """A call past MAX_CALL_BYTES keeps its operation and its status, not its arguments."""
    monkeypatch.setattr(pipe_module, "MAX_CALL_BYTES", 5000)
    diagnostics = Diagnostics()
    calls = run_pipe(stream, diagnostics)
    (create,) = [c for c in calls if c.opnum == 12]
    assert (create.args, create.status) == (None, "ERROR_SUCCESS")
    assert diagnostics.counts["dcerpc_call_too_large"] == 1


def test_unbound_context_and_orphan_answers(stream: PipeStream) -> None:
    """A capture that starts after the BIND: requests named from the pipe, answers counted."""
    diagnostics = Diagnostics()
    pipe = RpcPipe(diagnostics, "\\PIPE\\svcctl")
    calls = []
    for chunk in stream.chunks[2:]:  # BIND and BIND_ACK lost
        calls += pipe.feed(chunk.from_client, chunk.data, chunk.time, chunk.frame)
    calls += pipe.finish()
    create = next(c for c in calls if c.opnum == 12)
    assert (create.interface, create.operation) == ("svcctl", "CreateServiceW")
    assert create.args["binary_path"].startswith("%COMSPEC%")
    orphan = RpcPipe(Diagnostics())
    server_only = [c for c in stream.chunks if not c.from_client]
    answers = []
    for chunk in server_only[1:]:
        answers += orphan.feed(False, chunk.data, chunk.time, chunk.frame)
    assert answers and all(c.operation is None for c in answers)


def test_bad_headers_are_dropped_with_a_warning(stream: PipeStream) -> None:
    pdu = _client_pdus(stream)[1]
    diagnostics = Diagnostics()
    pipe = RpcPipe(diagnostics)
    for bad in (
        b"\x04" + pdu[1:],  # version 4
        pdu[:8] + struct.pack("<H", 10) + pdu[10:],  # frag_length shorter than the header
        pdu[:10] + struct.pack("<H", 0xFFF0) + pdu[12:],  # auth_length past the PDU
    ):
        assert pipe.feed(True, bad, 0, 0) == []
    assert diagnostics.counts["dcerpc_bad_pdu"] == 3
