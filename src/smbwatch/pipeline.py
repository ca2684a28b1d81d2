"""Inputs → readers and decoders → events, one pass per input.

``iter_events`` is the one function every front end (CLI, parallel runner, tests) calls: it
expands directories, recognises each input from its content, and yields the events of each input
in order. Per-input work is a plain function (``input_events``) so a process pool or a cluster
can run the very same code.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Final

from smbwatch import readback, winlog
from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.link import LINKTYPE_ETHERNET, SMB_PORTS, tcp_segment
from smbwatch.capture.pcap import (
    CaptureError,
    FrameReader,
    capture_format,
    open_maybe_gzip,
    read_frames,
)
from smbwatch.capture.tcp import StreamConsumer, TcpReassembler, connection_id
from smbwatch.dcerpc.transport import RpcTcpConnection
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent
from smbwatch.file_keys import with_file_keys
from smbwatch.options import Options
from smbwatch.parallel import InputRun, parallel_inputs
from smbwatch.smb.files import Transfers
from smbwatch.smb.nbss import DecoderFactory, SmbConnection
from smbwatch.smb.smb1 import Smb1Decoder
from smbwatch.smb.smb2 import Smb2Decoder

CAPTURE_FORMATS: Final = ("pcap", "pcapng")
# Each decoder takes files=Transfers: what its connection's file data is reported with.
DECODERS: dict[int, type[Smb2Decoder] | type[Smb1Decoder]] = {
    0xFE: Smb2Decoder,
    0xFF: Smb1Decoder,
}
DEFAULT_OPTIONS: Final = Options()
MAX_HELD_EVENTS: Final = 16384  # events held back behind one whose file is still being hashed


def expand_inputs(paths: Iterable[str], errors: list[str] | None = None) -> list[tuple[str, bool]]:
    """Files to read, as (path, named explicitly); a directory means every file below it.

    A name that is neither is reported in ``errors`` (raised as InputError when it is None).
    """
    files: list[tuple[str, bool]] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            files.extend((str(p), False) for p in below)
            continue
        if path.is_file():
            files.append((name, True))
            continue
        problem = "not a regular file" if path.exists() else "no such file or directory"
        if errors is None:
            raise InputError(f"{name}: {problem}")
        errors.append(f"{name}: {problem}")
    return files


def sniff_format(path: str) -> str | None:
    """The input's format from its first bytes (gzip looked through), or None if unknown."""
    try:
        with open_maybe_gzip(path) as stream:
            head = stream.read(4096)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return capture_format(head) or readback.sniff_format(head) or winlog.sniff_format(head)


def input_events(
    path: str,
    diagnostics: Diagnostics,
    input_format: str | None = None,
    options: Options = DEFAULT_OPTIONS,
) -> Iterator[SmbEvent]:
    """The events of one input file. Raises InputError if it is not something smbwatch reads."""
    kind = input_format or sniff_format(path)
    if kind in CAPTURE_FORMATS:
        try:
            yield from capture_events(path, diagnostics, options=options)
        except CaptureError as exc:
            raise InputError(str(exc)) from None
        return
    if kind is None:
        raise InputError(
            f"{path}: not a capture (pcap, pcapng), a Windows event log, or smbwatch's events"
        )
    if kind in readback.FORMATS:
        try:
            yield from readback.read_events(path, diagnostics, kind)
        except (readback.NotOursError, OSError) as exc:
            raise InputError(str(exc)) from None
        return
    try:
        events = winlog.read_events(path, diagnostics, kind)
    except (winlog.NotALogError, OSError) as exc:
        raise InputError(str(exc)) from None
    yield from events


def capture_events(
    path: str,
    diagnostics: Diagnostics,
    source_format: str | None = None,
    decoders: dict[int, DecoderFactory] | None = None,
    options: Options = DEFAULT_OPTIONS,
    frames: FrameReader | None = None,
) -> Iterator[SmbEvent]:
    """SMB events of one capture file, in the order their messages complete.

    ``decoders`` maps an SMB protocol id byte (0xFE, 0xFF) to the decoder for that dialect family
    (by default ``DECODERS``, sharing the capture's file ``Transfers`` built from ``options``).
    ``frames`` is where the frames come from (by default ``path`` read with ``read_frames``).
    """
    transfers = Transfers(options, diagnostics)
    if decoders is None:
        decoders = {key: partial(decoder, files=transfers) for key, decoder in DECODERS.items()}
    if frames is None:
        frames = read_frames(path, diagnostics)
    transfers.read_from(frames.mapped, frames.fileno)
    try:
        batches = _capture_events(frames, path, diagnostics, source_format, decoders)
        yield from with_file_keys(_settled(batches, transfers))
    finally:
        frames.close()
        transfers.close()


def _settled(batches: Iterator[list[SmbEvent]], transfers: Transfers) -> Iterator[SmbEvent]:
    """The events in order, each once its file's digests are in: an event still waiting for
    them holds back the ones after it, up to ``MAX_HELD_EVENTS``, while hashing goes on."""
    held: deque[SmbEvent] = deque()
    for batch in batches:
        held.extend(batch)
        while held and transfers.settle(held[0], len(held) > MAX_HELD_EVENTS):
            yield held.popleft()
    while held:
        transfers.settle(held[0])
        yield held.popleft()


def _capture_events(
    frames: FrameReader,
    path: str,
    diagnostics: Diagnostics,
    source_format: str | None,
    decoders: dict[int, DecoderFactory],
) -> Iterator[list[SmbEvent]]:
    """The events of the capture, in batches as frames complete messages."""
    out: list[SmbEvent] = []
    if source_format is None:
        source_format = sniff_format(path) or "pcap"

    def connection(
        client: str, client_port: int, server: str, server_port: int, isn: int | None
    ) -> StreamConsumer:
        conn_id = connection_id(client, client_port, server, server_port, isn)
        endpoints = Endpoints(
            client, client_port, server, server_port, source_format, path, conn_id
        )
        if server_port in SMB_PORTS:
            return SmbConnection(endpoints, diagnostics, decoders, out)
        return RpcTcpConnection(endpoints, diagnostics, out)

    reassembler = TcpReassembler(connection, diagnostics)
    rpc_flows: set[bytes] = set()
    try:
        while frames.next():
            buf, start, stop = frames.buf, frames.start, frames.stop
            frame, time = frames.number, frames.time
            if frames.linktype != LINKTYPE_ETHERNET or not reassembler.ethernet_frame(
                buf, start, stop, time, frame
            ):
                seg = tcp_segment(frames.linktype, buf[start:stop], diagnostics, rpc_flows)
                if seg is None:
                    continue
                reassembler.segment(seg, time, frame)
            if out:
                yield out  # taken in by the consumer before this resumes
                out.clear()
    finally:
        frames.close()
    reassembler.finish()
    yield out


def iter_events(
    paths: Iterable[str],
    diagnostics: Diagnostics,
    input_format: str | None = None,
    errors: list[str] | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
) -> Iterator[SmbEvent]:
    """Events of every input in turn (in input order), with up to ``jobs`` worker processes.

    An input named explicitly that cannot be read is reported in ``errors`` (raised as
    InputError when ``errors`` is None); a file met inside a directory that is not a capture or
    log is only counted as a warning.
    """
    files = expand_inputs(paths, errors)
    for run in input_runs(files, input_format, jobs, options):
        yield from run.events
        diagnostics.merge(run.diagnostics)
        if run.error is None:
            continue
        if not run.explicit:
            diagnostics.warn("input_skipped", run.error)
        elif errors is None:
            raise InputError(run.error)
        else:
            errors.append(run.error)


def input_runs(
    files: list[tuple[str, bool]],
    input_format: str | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
) -> Iterator[InputRun]:
    """Each (path, named explicitly) input as it is read, in order, by up to ``jobs`` worker
    processes. Read each one's events before asking for the next."""
    if jobs > 1 and len(files) > 1:
        yield from parallel_inputs(input_events, files, input_format, jobs, options)
        return
    for path, explicit in files:
        run = InputRun(path, explicit)
        run.events = _read(run, input_format, options)
        yield run


def _read(run: InputRun, input_format: str | None, options: Options) -> Iterator[SmbEvent]:
    try:
        yield from input_events(run.path, run.diagnostics, input_format, options)
    except InputError as exc:
        run.error = str(exc)
