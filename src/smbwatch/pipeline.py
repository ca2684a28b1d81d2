"""Inputs → readers and decoders → events, one pass per input.

``iter_events`` is the one function every front end (CLI, parallel runner, tests) calls: it
expands directories, recognises each input from its content, and yields the events of each input
in order. Per-input work is a plain function (``input_events``) so a process pool or a cluster
can run the very same code.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Final

from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.flows import EVERY_FLOW, SMB_PORTS, FlowShare
from smbwatch.capture.pcap import CaptureError, FrameReader, capture_format, read_frames
from smbwatch.capture.streams import TcpStreams, smb_share
from smbwatch.capture.tcp import StreamConsumer
from smbwatch.containers import (
    ZIP_MAGIC,
    ContainerError,
    InputFile,
    as_input,
    is_zip,
    read_head,
    zip_members,
)
from smbwatch.dcerpc.transport import RpcTcpConnection
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent
from smbwatch.file_keys import with_file_keys
from smbwatch.filedata.transfers import Transfers, settled
from smbwatch.options import Options
from smbwatch.parallel import (
    Batching,
    InputRun,
    Progress,
    Readers,
    Render,
    Share,
    Work,
    can_fork,
    parallel_inputs,
)
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
SNIFF_SIZE: Final = 4096
# A capture file at least this large is read by every worker of ``-j N``, each decoding the
# connections of its share: a smaller one is read faster by one worker than N times over.
SPLIT_AT: Final = 64 << 20
# ... if at least this share of its bytes is SMB's (``streams.smb_share``): each share walks every
# frame, so a capture mostly of other traffic is read faster whole, by one process whose page
# thread works beside its walk (two cores, ``--no-hash``: a 1.2 GB capture 9% SMB in 0.36 s
# whole against 0.47 s split; 0.5 GB captures 25% and 50% SMB alike both ways, 75% SMB in 0.54
# s split against 0.68 s whole).
SPLIT_SMB_SHARE: Final = 0.3
END: Final = 1 << 62  # the key of the events the end of a capture completes (after every frame)
# Capture formats are told apart by the reader itself: forcing one on the other is no mismatch.
_SAME_READER: Final = {"pcap": "capture", "pcapng": "capture"}
# Who reads the inputs, in order, when not this process and its workers (``cluster``): the
# inputs (URLs among them), the input format and the options.
Engine = Callable[[list[tuple[InputFile, bool]], str | None, Options], Iterator[InputRun]]


class NotAnInput(InputError):
    """A file that is no capture or log: among others (a directory, an archive), only counted."""


def expand_inputs(
    paths: Iterable[str],
    errors: list[str] | None = None,
    zip_password: str | None = None,
    urls: bool = False,
) -> list[tuple[InputFile, bool]]:
    """Inputs to read, as (input, named explicitly); a directory means every file below it, a
    zip archive every file in it (the members of a named archive count as named); a URL
    (``s3://...``) is kept as it is for an engine that reads URLs (``urls``), else refused.

    A name that is neither is reported in ``errors`` (raised as InputError when it is None).
    """
    files: list[tuple[InputFile, bool]] = []
    for name in paths:
        path = name or "."  # as pathlib reads a name: "" is the current directory
        if "://" in name and not os.path.exists(path):
            if urls:
                files.append((InputFile(name), True))
                continue
            problem = "a URL: read through a cluster (--engine dask or --scheduler)"
            if errors is None:
                raise InputError(f"{name}: {problem}")
            errors.append(f"{name}: {problem}")
            continue
        if os.path.isdir(path):
            for file in _files_below(path):
                files.extend(_inputs_of(file, False, zip_password))
            continue
        if os.path.isfile(path):
            files.extend(_inputs_of(name, True, zip_password))
            continue
        problem = "not a regular file" if os.path.exists(path) else "no such file or directory"
        if errors is None:
            raise InputError(f"{name}: {problem}")
        errors.append(f"{name}: {problem}")
    return files


def _files_below(directory: str) -> list[str]:
    """Every file below the directory, hidden ones left out, in the order of their paths."""
    from pathlib import Path  # here: a run on named files never loads it

    below = Path(directory).rglob("*")
    return [str(p) for p in sorted(p for p in below if p.is_file() and not p.name.startswith("."))]


def _inputs_of(path: str, explicit: bool, zip_password: str | None) -> list[tuple[InputFile, bool]]:
    """The file, or the members of a zip archive (an unreadable one is left to ``input_events``
    to report)."""
    if is_zip(path):
        try:
            return [(member, explicit) for member in zip_members(path, zip_password)]
        except ContainerError:
            pass
    return [(InputFile(path), explicit)]


def sniff_format(source: str | InputFile) -> str | None:
    """The input's format from its first bytes (gzip looked through), or None if unknown."""
    return _sniff(as_input(source))[0]


def _sniff(source: InputFile) -> tuple[str | None, str | None]:
    """The format of the input, and the damage that cut its first bytes short, if any."""
    try:
        head, damage = read_head(source, SNIFF_SIZE)
    except OSError as exc:  # cannot be opened (a zip member: encrypted, unreadable...)
        raise InputError(f"{source.name}: cannot read: {exc}") from None
    if head.startswith(ZIP_MAGIC):
        return "zip", damage
    return capture_format(head) or _log_format(head), damage


def _log_format(head: bytes) -> str | None:
    """The format of an input that is no capture: smbwatch's own events, or a Windows log."""
    from smbwatch import readback, winlog  # here: a capture run never loads the log readers

    return readback.sniff_format(head) or winlog.sniff_format(head)


def input_events(
    source: str | InputFile,
    diagnostics: Diagnostics,
    input_format: str | None = None,
    options: Options = DEFAULT_OPTIONS,
) -> Iterator[SmbEvent]:
    """The events of one input. Raises InputError if it is not something smbwatch reads."""
    source = as_input(source)
    name = source.name
    kind, damage = _sniff(source)
    if kind is None and damage is not None:
        diagnostics.damaged(name, damage)  # nothing could be read to say what it is
        return
    if kind == "zip":
        _refuse_zip(source)
    if input_format is not None:
        if kind is not None and _SAME_READER.get(kind, kind) != _SAME_READER.get(
            input_format, input_format
        ):
            raise InputError(f"{name}: a {kind} file, not {input_format} (--input-format)")
        kind = input_format
    if kind in CAPTURE_FORMATS:
        try:
            yield from capture_events(source, diagnostics, options=options)
        except CaptureError as capture_error:
            raise InputError(str(capture_error)) from None
        return
    if kind is None:
        raise NotAnInput(
            f"{name}: not a capture (pcap, pcapng), a Windows event log, or smbwatch's events"
        )
    from smbwatch import readback, winlog  # here: a capture run never loads the log readers

    if kind in readback.FORMATS:
        try:
            yield from readback.read_events(source, diagnostics, kind)
        except (readback.NotOursError, OSError) as read_error:
            raise InputError(str(read_error)) from None
        return
    try:
        events = winlog.read_events(source, diagnostics, kind)
    except (winlog.NotALogError, OSError) as log_error:
        raise InputError(str(log_error)) from None
    yield from events


def _refuse_zip(source: InputFile) -> None:
    """A zip archive met as an input: one inside another (not opened), or one whose members
    could not be listed (``expand_inputs`` leaves it whole): say why."""
    if source.member is not None:
        raise NotAnInput(f"{source.name}: a zip archive inside a zip archive (not opened)")
    try:
        zip_members(source.path, None)
    except ContainerError as error:
        raise InputError(f"{source.name}: {error}") from None
    raise InputError(f"{source.name}: a zip archive named as one input")


def report_input_error(
    error: InputError,
    source: InputFile,
    explicit: bool,
    diagnostics: Diagnostics,
    errors: list[str] | None,
) -> None:
    """An input named explicitly that cannot be read is a user error (in ``errors``, raised when
    that is None); one met in a directory, or a member of an archive that is no capture or log,
    a counted warning."""
    skipped = not explicit or (source.member is not None and isinstance(error, NotAnInput))
    if skipped:
        diagnostics.warn("input_skipped", str(error))
    elif errors is not None:
        errors.append(str(error))
    else:
        raise error


def capture_events(
    source: str | InputFile,
    diagnostics: Diagnostics,
    source_format: str | None = None,
    decoders: dict[int, DecoderFactory] | None = None,
    options: Options = DEFAULT_OPTIONS,
    frames: FrameReader | None = None,
    flow_share: tuple[int, int] | None = None,
    completed: deque[tuple[int, int]] | None = None,
) -> Iterator[SmbEvent]:
    """SMB events of one capture file, in the order their messages complete.

    ``decoders`` maps an SMB protocol id byte (0xFE, 0xFF) to the decoder for that dialect family
    (by default ``DECODERS``, sharing the capture's file ``Transfers`` built from ``options``).
    ``frames`` is where the frames come from (by default ``source`` read with ``read_frames``).
    ``flow_share`` (index, count) decodes only the TCP connections of that share
    (``capture.flows``): the events of the ``count`` shares together are the capture's.
    ``completed`` is given, for each batch of events as the frame loop makes them, (the number
    of the frame that completed them, or ``END``; how many), before they come out in that order
    (``share_events``).
    """
    source = as_input(source)
    share = EVERY_FLOW if flow_share is None else FlowShare(*flow_share)
    transfers = Transfers(options, diagnostics)
    if decoders is None:
        decoders = {key: partial(decoder, files=transfers) for key, decoder in DECODERS.items()}
    if frames is None:  # a damaged file is said once, by the first share
        frames = read_frames(source, diagnostics if share.first else Diagnostics())
    transfers.read_from(frames.mapped, frames.fileno)
    try:
        if source_format is None:
            source_format = sniff_format(source) or "pcap"
        batches = _capture_events(
            frames, source.name, diagnostics, source_format, decoders, share, completed
        )
        yield from with_file_keys(settled(batches, transfers))
    finally:
        frames.close()
        transfers.close()


def _capture_events(
    frames: FrameReader,
    path: str,
    diagnostics: Diagnostics,
    source_format: str,
    decoders: dict[int, DecoderFactory],
    share: FlowShare,
    completed: deque[tuple[int, int]] | None,
) -> Iterator[list[SmbEvent]]:
    """The events of the capture, in batches as frames complete messages."""
    out: list[SmbEvent] = []

    def connection(
        client: str, client_port: int, server: str, server_port: int, isn: int | None
    ) -> StreamConsumer:
        endpoints = Endpoints.of_connection(
            client, client_port, server, server_port, source_format, path, isn
        )
        if server_port in SMB_PORTS:
            return SmbConnection(endpoints, diagnostics, decoders, out)
        return RpcTcpConnection(endpoints, diagnostics, out)

    streams = TcpStreams(frames, connection, diagnostics, share)
    try:
        while streams.advance(out):
            if completed is not None:
                completed.append((END if streams.ended else streams.segment.frame, len(out)))
            yield out  # taken in by the consumer before this resumes
            out.clear()
    finally:
        frames.close()


def share_events(
    source: InputFile,
    diagnostics: Diagnostics,
    input_format: str | None,
    options: Options,
    share: Share,
) -> Iterator[tuple[int, SmbEvent]]:
    """The events of one share of a capture's connections (``capture_events``' ``flow_share``),
    each with the number of the frame that completed it (``END``: the end of the capture). The
    events of all shares merged by that number, equal numbers share by share, are the whole
    capture's in its order, but for those the end completes (each share's together)."""
    completed: deque[tuple[int, int]] = deque()
    key, left = 0, 0
    try:
        for event in capture_events(
            source, diagnostics, input_format, options=options, flow_share=share,
            completed=completed,
        ):  # fmt: skip
            while not left:
                key, left = completed.popleft()
            left -= 1
            yield key, event
    except CaptureError as capture_error:
        raise InputError(str(capture_error)) from None


def iter_events(
    paths: Iterable[str],
    diagnostics: Diagnostics,
    input_format: str | None = None,
    errors: list[str] | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> Iterator[SmbEvent]:
    """Events of every input in turn (in input order), with up to ``jobs`` worker processes.

    An input named explicitly that cannot be read is reported in ``errors`` (raised as
    InputError when ``errors`` is None); a file met inside a directory that is not a capture or
    log is only counted as a warning. ``progress`` is told of the inputs and of each one read;
    ``engine``: who reads them (by default this process and its workers).
    """
    files = _inputs(paths, errors, options, progress, engine)
    runs = (
        input_runs(files, input_format, jobs, options)
        if engine is None
        else engine(files, input_format, options)
    )
    for run in runs:
        yield from run.events
        _read(run, diagnostics, errors, progress)


def iter_lines(
    paths: Iterable[str],
    diagnostics: Diagnostics,
    render: Render,
    input_format: str | None = None,
    errors: list[str] | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
    progress: Progress | None = None,
) -> Iterator[str]:
    """The events ``iter_events`` gives, each as the line of text ``render`` makes of it
    (``sinks.jsonl.line``), rendered by the worker that read it: only text travels between
    processes, and the parent merely writes it."""
    files = _inputs(paths, errors, options, progress, None)
    for run in input_runs(files, input_format, jobs, options, render):
        yield from map(render, run.events) if run.lines is None else run.lines
        _read(run, diagnostics, errors, progress)


def _inputs(
    paths: Iterable[str],
    errors: list[str] | None,
    options: Options,
    progress: Progress | None,
    engine: Engine | None,
) -> list[tuple[InputFile, bool]]:
    """The inputs the paths name (``expand_inputs``), of which ``progress`` is told."""
    files = expand_inputs(paths, errors, options.zip_password, urls=engine is not None)
    if progress is not None:
        progress.begin([source for source, _ in files])
    return files


def _read(
    run: InputRun, diagnostics: Diagnostics, errors: list[str] | None, progress: Progress | None
) -> None:
    """An input read whole: what it cost, and whether it could be used, are taken in."""
    if progress is not None:
        progress.finished(run)
    diagnostics.merge(run.diagnostics)
    if run.error is not None:
        report_input_error(run.error, run.source, run.explicit, diagnostics, errors)


def input_runs(
    files: list[tuple[InputFile, bool]],
    input_format: str | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
    render: Render | None = None,
    batch: Batching | None = None,
) -> Iterator[InputRun]:
    """Each (input, named explicitly) input as it is read, in order, by up to ``jobs`` worker
    processes (a large capture file by all of them, each decoding a share of its connections).
    Read each one's events (or, with ``render``, its ``lines`` where the workers wrote them; with
    ``batch``, its ``batches`` where they made them) before asking for the next."""
    if jobs > 1:
        work = [
            Work(source, explicit, local_shares(source, input_format, jobs, options))
            for source, explicit in files
        ]
        # can_fork last: one small input is read here, without loading multiprocessing
        if (len(work) > 1 or work and work[0].shares > 1) and can_fork():
            readers = Readers(input_events, share_events, render, batch)
            yield from parallel_inputs(readers, work, input_format, jobs, options)
            return
    for source, explicit in files:
        run = InputRun(source, explicit)
        run.events = _events_of(run, input_format, options)
        yield run


def local_shares(source: InputFile, input_format: str | None, jobs: int, options: Options) -> int:
    """In how many shares ``jobs`` worker processes of this machine read an input. Hashing
    files, each share has a digest process of its own beside its decoder
    (``filedata.digests``) and keeps two cores busy: then a share for every two workers (on two
    cores, the 1.1 GB benchmark capture split in two took 2.45 s against 2.28 s read whole,
    and 1.53 s against 2.02 s with ``--no-hash``)."""
    return shares(source, input_format, max(1, jobs // 2) if options.hashing else jobs)


def shares(source: InputFile, input_format: str | None, jobs: int) -> int:
    """In how many shares an input is read: one per job for a capture file of ``SPLIT_AT`` or
    more read where it lies (memory-mapped by every share), mostly SMB (``SPLIT_SMB_SHARE``);
    any other input whole (a compressed capture, or one in a zip, would be decompressed once
    per share)."""
    if jobs < 2 or source.member is not None:
        return 1
    if input_format is not None and input_format not in CAPTURE_FORMATS:
        return 1
    try:
        if os.stat(source.path).st_size < SPLIT_AT or not source.plain_file():
            return 1
        if sniff_format(source) not in CAPTURE_FORMATS:
            return 1
        frames = read_frames(source, Diagnostics())
    except (OSError, InputError, CaptureError):
        return 1  # said when it is read
    try:
        share = smb_share(frames)
    finally:
        frames.close()
    return jobs if share is None or share >= SPLIT_SMB_SHARE else 1


def _events_of(run: InputRun, input_format: str | None, options: Options) -> Iterator[SmbEvent]:
    try:
        yield from input_events(run.source, run.diagnostics, input_format, options)
    except InputError as exc:
        run.error = exc


READERS: Final = Readers(input_events, share_events)
