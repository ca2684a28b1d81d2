"""Smb2Decoder: the SMB2/SMB3 state of one TCP connection, turned into SmbEvents.

Requests are remembered by MessageId until their response arrives, so that each event carries
what the client asked (path, access, offset) and what the server answered (status, file id,
create action); the event's time and frame are the request's. Sessions, trees and open files
are remembered so that a READ knows its path and share. Every table is bounded; what is pushed
out is counted, and a pending request pushed out is emitted unanswered rather than lost.
Sans-I/O: bytes in, events out (CONTRIBUTING.md, "Capture → SMB").
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.flows import starts_dcerpc_bind
from smbwatch.capture.tcp import BodyTap
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.magic import sniff_magic
from smbwatch.filedata.transfers import FileData, Transfers, tracker_of
from smbwatch.ntstatus import (
    STATUS_BUFFER_OVERFLOW,
    STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_PENDING,
    STATUS_SUCCESS,
    nt_status_name,
)
from smbwatch.smb import fscc
from smbwatch.smb import smb2_records as rec
from smbwatch.smb.nbss import Decoder
from smbwatch.smb.session import (
    MAX_FILES,
    MAX_SESSIONS,
    MAX_TREES,
    SNIFF_WINDOW,
    FileKey,
    OpenFile,
    Session,
    Tree,
    challenge_server,
    close_events,
    describe_create,
    describe_create_action,
    file_gone,
    logon_identity,
    remember,
    rpc_events,
    split_unc,
)

MAX_PENDING: Final = 4096  # requests awaiting a response
MAX_DECOMPRESSED: Final = 16 * 1024 * 1024

_ALL_ONES_FILE_ID: Final = b"\xff" * 16  # "the file of the previous request" in a related compound
_ALL_ONES_SESSION_ID: Final = 0xFFFFFFFFFFFFFFFF
_ALL_ONES_TREE_ID: Final = 0xFFFFFFFF
# Warnings of the shared session helpers, by this decoder's name
_STATE_EVICTED: Final = "smb2_state_evicted"
_PIPE_TRUNCATED: Final = "smb2_pipe_data_truncated"
_SECURITY_BUFFER_MALFORMED: Final = "smb2_security_buffer_malformed"
# The action of the commands whose response only answers the request (_plain_response)
_PLAIN_ACTIONS: Final = {rec.QUERY_DIRECTORY: "query_directory", rec.QUERY_INFO: "query_info"}
# Commands that do not work on a tree, whatever TreeId their header carries.
_NOT_ON_A_TREE: Final = frozenset((rec.NEGOTIATE, rec.SESSION_SETUP, rec.LOGOFF, rec.TREE_CONNECT))


def _session(event: SmbEvent) -> int:
    """The SessionId of a network event (0 when it has none)."""
    return event.session_id if isinstance(event.session_id, int) else 0


class _Pending:
    """A request waiting for its response: its event, and what the response handler needs."""

    __slots__ = (
        "event", "command", "file", "chain_create", "opened", "ctl_code", "quiet", "data",
    )  # fmt: skip

    def __init__(self, event: SmbEvent, command: int, file: OpenFile | None = None) -> None:
        self.event = event
        self.command = command
        self.file = file
        self.chain_create: _Pending | None = None  # the CREATE before it in a related compound
        self.opened: OpenFile | None = None  # what a CREATE opened, once answered
        self.ctl_code: int | None = None  # IOCTL
        self.quiet = False  # not worth an event unless answered (an NTLM NEGOTIATE round)
        self.data: FileData | None = None  # CREATE: data written in its compound before it opened


class _Chain:
    """What a related operation in a compound request inherits from the one before it."""

    __slots__ = ("session_id", "tree_id", "file", "create")

    def __init__(self) -> None:
        self.session_id: int | None = None
        self.tree_id: int | None = None
        self.file: OpenFile | None = None
        self.create: _Pending | None = None


class _Request:
    """One request being decoded, with the session and tree it really works under."""

    __slots__ = ("header", "msg", "session_id", "tree_id", "time", "frame", "chain")

    def __init__(
        self,
        header: rec.Header,
        msg: bytes,
        session_id: int,
        tree_id: int | None,
        time: int,
        frame: int,
        chain: _Chain,
    ) -> None:
        self.header = header
        self.msg = msg
        self.session_id = session_id
        self.tree_id = tree_id
        self.time = time
        self.frame = frame
        self.chain = chain


def _fsctl_name(ctl_code: int) -> str:
    return fscc.FSCTL_NAMES.get(ctl_code, f"0x{ctl_code:08x}")


def _body_present(command: int, status: int) -> bool:
    """Whether a response carries its command's structure rather than an ERROR response."""
    if status == STATUS_SUCCESS:
        return True
    if status == STATUS_BUFFER_OVERFLOW:
        return command in (rec.READ, rec.IOCTL, rec.QUERY_INFO)
    return status == STATUS_MORE_PROCESSING_REQUIRED and command == rec.SESSION_SETUP


RequestHandler = Callable[["Smb2Decoder", _Request], _Pending]
ResponseHandler = Callable[["Smb2Decoder", rec.Header, bytes, "_Pending | None", int, int], None]


class Smb2Decoder(Decoder):
    """Decodes the SMB2/3 messages of one connection (the ``Decoder`` of CONTRIBUTING.md).

    The bytes written to and read from each open named pipe go to a ``dcerpc.RpcPipe``; each
    call it completes becomes an ``rpc_call`` event on that pipe. The data of each open file goes
    to a ``files.FileTracker``: its summary (size, bytes seen, type, hashes) is reported on the
    file's close. ``files`` is shared by the decoders of one capture (by default, this one's own
    with the default options).
    """

    def __init__(
        self, endpoints: Endpoints, diagnostics: Diagnostics, files: Transfers | None = None
    ) -> None:
        self._endpoints = endpoints
        self._diag = diagnostics
        super().__init__()
        # File data past what a message's decoding keeps goes to the tracker (counted and
        # hashed); ``wants_body``, set after each message, is True only while such data follows.
        self._tracker = tracker_of(files, diagnostics)
        self._follows = 0  # bytes of the message being decoded that come to body() after it
        self.dialect: str | None = None
        self._sessions: dict[int, Session] = {}
        self._trees: dict[tuple[int, int], Tree] = {}
        self._files: dict[FileKey, OpenFile] = {}
        self._pending: dict[int, _Pending] = {}
        self._events: list[SmbEvent] = []

    # -- the Decoder interface ---------------------------------------------------------------

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        """All of a message, except the data of a file WRITE request or READ response."""
        if total_len <= rec.WRITE_REQUEST_FIXED_END + SNIFF_WINDOW:
            return total_len
        if head.startswith(rec.TRANSFORM_PROTOCOL_ID):
            return rec.TRANSFORM_HEADER_SIZE  # encrypted: only the header can be read
        if not head.startswith(rec.PROTOCOL_ID):
            return total_len
        try:
            header = rec.parse_header(head)
            if header.next_command:
                return total_len  # a compound: the commands after this one are needed
            response = header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR
            if header.command == rec.WRITE and not response:
                write = rec.parse_write_request(head)
                file = self._files.get(write.file_id)
                data_start = write.data_offset
            elif header.command == rec.READ and response:
                pending = self._pending.get(header.message_id)
                file = self._resolve_chain(pending) if pending is not None else None
                data_start, _ = rec.parse_read_response(head)
            else:
                return total_len
        except struct.error:
            return total_len  # message() will say what is wrong with it
        if file is not None and file.pipe is not None:
            return total_len  # pipe data is small and DCE/RPC needs all of it
        if file is not None and not response and starts_dcerpc_bind(head, data_start):
            return total_len  # a BIND may make it a pipe (OpenFile.pipe_by_bind)
        return min(total_len, max(data_start, rec.HEADER_SIZE) + SNIFF_WINDOW)

    def message(
        self, from_client: bool, data: bytes, total_len: int, time: int, frame: int
    ) -> list[SmbEvent]:
        """Decode one SMB2 message: a (compound) message, an encrypted or a compressed one."""
        self._tracker.new_message(from_client)
        self._follows = 0
        try:
            if data.startswith(rec.PROTOCOL_ID):
                self._follows = total_len - len(data)
                self._chain(data, time, frame)
            elif data.startswith(rec.TRANSFORM_PROTOCOL_ID):
                self._encrypted(from_client, data, time, frame)
            elif data.startswith(rec.COMPRESSION_PROTOCOL_ID):
                self._compressed(data, time, frame)
            else:
                self._diag.warn("smb2_not_smb2", f"frame {frame}: protocol id {data[:4].hex()}")
        except (ValueError, struct.error) as error:
            self._diag.warn("smb2_malformed", f"frame {frame}: {error}")
        finally:
            self.wants_body = self._tracker.routed(from_client)
        events, self._events = self._events, []
        return events

    def body(self, from_client: bool, chunk: bytes) -> None:
        self._tracker.body(from_client, chunk)

    def body_gap(self, from_client: bool, length: int) -> None:
        """Bytes of a file's data were not captured: that file's hash is impossible."""
        self._tracker.body_gap(from_client, length)

    def body_tap(self, from_client: bool) -> BodyTap | None:
        return self._tracker.tap(from_client)

    def finish(self) -> list[SmbEvent]:
        """Requests that never got a response (``status`` None), pipes' unanswered calls, and a
        ``close`` event (no command, no status) for each file with data still open."""
        for pending in self._pending.values():
            self._unanswered(pending)
        self._pending.clear()
        for file in list(self._files.values()):
            self._forget_file(file)
        events, self._events = self._events, []
        return events

    # -- framing ------------------------------------------------------------------------------

    def _chain(self, data: bytes, time: int, frame: int) -> None:
        """Each command of a compound chain (MS-SMB2 3.2.4.1.4); NextCommand only goes forward."""
        chain = _Chain()
        start = 0
        while True:
            header = rec.parse_header(data, start)
            next_command = header.next_command
            if next_command:
                if next_command < rec.HEADER_SIZE or next_command % 8:
                    raise ValueError(f"NextCommand {next_command} is not a valid offset")
                msg = data[start : start + next_command]
            else:
                msg = data[start:] if start else data
            try:
                if header.flags & rec.SMB2_FLAGS_SERVER_TO_REDIR:
                    self._response(header, msg, time, frame)
                else:
                    self._request(header, msg, time, frame, chain)
            except (ValueError, struct.error) as error:
                where = f"frame {frame} command {header.command}"
                self._diag.warn("smb2_malformed", f"{where}: {error}")
            if not next_command:
                return
            start += next_command
            if not data.startswith(rec.PROTOCOL_ID, start):
                raise ValueError("NextCommand does not point at an SMB2 header in the message")

    def _encrypted(self, from_client: bool, data: bytes, time: int, frame: int) -> None:
        """SMB3 encryption hides everything but the session: say so once per direction."""
        _, session_id = rec.parse_transform_header(data)
        session = self._session(session_id)
        if from_client in session.seen_encrypted:
            return
        session.seen_encrypted.add(from_client)
        event = self._event("encrypted", None, None, session_id, None, time, frame)
        event.encrypted = True
        self._events.append(event)

    def _compressed(self, data: bytes, time: int, frame: int) -> None:
        """SMB 3.1.1 compression: decoded when uncompressed or Pattern_V1 chained, else the
        uncompressed head (often a whole header and fixed part) is decoded for what it has."""
        try:
            inner = rec.decompress(data, MAX_DECOMPRESSED)
        except rec.UnsupportedCompression as error:
            self._diag.warn("smb2_compression_unsupported", f"frame {frame}: {error}")
            inner = error.prefix
        if inner.startswith(rec.PROTOCOL_ID) and len(inner) >= rec.HEADER_SIZE:
            self._chain(inner, time, frame)

    # -- pairing ------------------------------------------------------------------------------

    def _request(
        self, header: rec.Header, msg: bytes, time: int, frame: int, chain: _Chain
    ) -> None:
        session_id, tree_id = header.session_id, header.tree_id
        if header.flags & rec.SMB2_FLAGS_RELATED_OPERATIONS:
            if session_id in (0, _ALL_ONES_SESSION_ID) and chain.session_id is not None:
                session_id = chain.session_id
            if tree_id in (0, _ALL_ONES_TREE_ID, None) and chain.tree_id is not None:
                tree_id = chain.tree_id
        else:
            chain.file = chain.create = None
        chain.session_id, chain.tree_id = session_id, tree_id
        if header.command in _NOT_ON_A_TREE:
            tree_id = None
        if header.command >= len(rec.COMMAND_NAMES):
            self._diag.warn("smb2_unknown_command", f"frame {frame}: command {header.command}")
            return
        handler = _REQUESTS.get(header.command)
        if handler is None:
            return
        pending = handler(self, _Request(header, msg, session_id, tree_id, time, frame, chain))
        if len(self._pending) >= MAX_PENDING:
            self._diag.warn("smb2_pending_evicted", f"more than {MAX_PENDING} unanswered")
            self._unanswered(self._pending.pop(next(iter(self._pending))))
        previous = self._pending.pop(header.message_id, None)
        if previous is not None:
            self._unanswered(previous)  # the MessageId was used again before any response
        self._pending[header.message_id] = pending

    def _unanswered(self, pending: _Pending) -> None:
        if pending.quiet:
            return
        if pending.command == rec.CLOSE:
            self._events.extend(
                close_events(self._resolve_chain(pending), pending.event, self._tracker)
            )
        else:
            self._events.append(pending.event)

    def _response(self, header: rec.Header, msg: bytes, time: int, frame: int) -> None:
        if header.status == STATUS_PENDING and header.flags & rec.SMB2_FLAGS_ASYNC_COMMAND:
            return  # interim response: the final one follows with the same MessageId
        if header.command >= len(rec.COMMAND_NAMES):
            self._diag.warn("smb2_unknown_command", f"frame {frame}: command {header.command}")
            return
        pending = self._pending.pop(header.message_id, None)
        if pending is not None:
            if pending.command != header.command:
                self._diag.warn("smb2_response_mismatch", f"frame {frame}: MessageId reused")
                self._unanswered(pending)
                pending = None
            else:
                pending.event.status = nt_status_name(header.status)
        handler = _RESPONSES.get(header.command)
        if handler is not None:
            handler(self, header, msg, pending, time, frame)

    def _orphan(self, action: str, header: rec.Header, time: int, frame: int) -> SmbEvent:
        """The event of a response whose request was not seen (a capture started mid-session)."""
        tree_id = header.tree_id
        if header.command in _NOT_ON_A_TREE and header.command != rec.TREE_CONNECT:
            tree_id = None
        event = self._event(
            action, header.command, header.message_id, header.session_id, tree_id, time, frame
        )
        event.status = nt_status_name(header.status)
        return event

    def _file(self, file_id: bytes, chain: _Chain) -> tuple[OpenFile | None, _Pending | None]:
        """The open file a request names, or the CREATE it follows in a related compound."""
        if file_id == _ALL_ONES_FILE_ID:
            return chain.file, chain.create
        file = self._files.get(file_id)
        chain.file, chain.create = file, None
        return file, None

    def _file_request(self, action: str, req: _Request, file_id: bytes) -> _Pending:
        """The pending event of a request on an open file (or on the one a compound creates)."""
        file, chain_create = self._file(file_id, req.chain)
        event = self._request_event(action, req)
        if file is not None:
            event.path, event.file_id, event.pipe = file.path, file.file_id, file.pipe
        elif chain_create is not None:
            event.path, event.pipe = chain_create.event.path, chain_create.event.pipe
        elif file_id != _ALL_ONES_FILE_ID:
            event.file_id = file_id.hex()  # opened before the capture began
        pending = _Pending(event, req.header.command, file)
        pending.chain_create = chain_create
        return pending

    @staticmethod
    def _resolve_chain(pending: _Pending) -> OpenFile | None:
        """The file a request works on; for a related one, what the CREATE before it opened."""
        if pending.file is None and pending.chain_create is not None:
            pending.file = pending.chain_create.opened
            if pending.file is not None:
                pending.event.file_id = pending.file.file_id
        return pending.file

    # -- NEGOTIATE, SESSION_SETUP, LOGOFF ------------------------------------------------------

    def _negotiate_request(self, req: _Request) -> _Pending:
        return _Pending(self._request_event("negotiate", req), req.header.command)

    def _negotiate_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        revision = None
        if header.status == STATUS_SUCCESS:
            revision = rec.negotiate_response_dialect(msg)
        if revision == rec.SMB2_DIALECT_WILDCARD:
            return  # the answer to an SMB1 negotiate: the SMB2 NEGOTIATE follows
        event = pending.event if pending else self._orphan("negotiate", header, time, frame)
        if revision is not None:
            self.dialect = rec.DIALECTS.get(revision, f"0x{revision:04x}")
            event.dialect = self.dialect
        self._events.append(event)

    def _session_setup_request(self, req: _Request) -> _Pending:
        event = self._request_event("logon", req)
        pending = _Pending(event, req.header.command)
        buffer = rec.session_setup_request_buffer(req.msg)
        named = logon_identity(event, buffer, self._diag, _SECURITY_BUFFER_MALFORMED, req.frame)
        pending.quiet = not named  # an NTLMSSP NEGOTIATE round names no one
        return pending

    def _session_setup_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        session = self._session(header.session_id) if header.session_id else None
        session_flags = 0
        if _body_present(header.command, header.status):
            session_flags, buffer = rec.parse_session_setup_response(msg)
            if session is not None and buffer:
                named = challenge_server(buffer, self._diag, _SECURITY_BUFFER_MALFORMED, frame)
                session.server = named or session.server
        if header.status == STATUS_MORE_PROCESSING_REQUIRED:
            return  # the next round carries the identity
        event = pending.event if pending else self._orphan("logon", header, time, frame)
        event.session_id = header.session_id or None
        if session_flags & rec.SMB2_SESSION_FLAG_IS_GUEST:
            event.auth = "guest"
        elif session_flags & rec.SMB2_SESSION_FLAG_IS_NULL:
            event.auth = "anonymous"
        if session_flags & rec.SMB2_SESSION_FLAG_ENCRYPT_DATA:
            event.encrypted = True
        if session is not None:
            event.server = event.server or session.server
            if header.status == STATUS_SUCCESS:
                session.learn(event)
                session.encrypted = bool(event.encrypted)
        self._events.append(event)

    def _logoff_request(self, req: _Request) -> _Pending:
        return _Pending(self._request_event("logoff", req), req.header.command)

    def _logoff_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        event = pending.event if pending else self._orphan("logoff", header, time, frame)
        if header.status == STATUS_SUCCESS and isinstance(event.session_id, int):
            self._sessions.pop(event.session_id, None)
        self._events.append(event)

    # -- TREE_CONNECT, TREE_DISCONNECT ---------------------------------------------------------

    def _tree_connect_request(self, req: _Request) -> _Pending:
        event = self._request_event("tree_connect", req)  # its TreeId comes with the response
        event.share = rec.tree_connect_request_path(req.msg)
        event.server, event.share_name = split_unc(event.share)
        return _Pending(event, req.header.command)

    def _tree_connect_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        event = pending.event if pending else self._orphan("tree_connect", header, time, frame)
        if header.status == STATUS_SUCCESS and header.tree_id is not None:
            share_type, share_flags, _ = rec.parse_tree_connect_response(msg)
            tree = Tree(
                event.share, event.share_name, event.server, rec.SHARE_TYPES.get(share_type)
            )
            session = self._sessions.get(header.session_id)
            tree.encrypted = bool(share_flags & rec.SMB2_SHAREFLAG_ENCRYPT_DATA) or bool(
                session is not None and session.encrypted
            )
            key = (header.session_id, header.tree_id)
            remember(self._trees, key, tree, MAX_TREES, self._diag, _STATE_EVICTED)
            event.tree_id = header.tree_id
            event.share_type = tree.share_type
            if tree.encrypted:
                event.encrypted = True
        self._events.append(event)

    def _tree_disconnect_request(self, req: _Request) -> _Pending:
        return _Pending(self._request_event("tree_disconnect", req), req.header.command)

    def _tree_disconnect_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        event = pending.event if pending else self._orphan("tree_disconnect", header, time, frame)
        if header.status == STATUS_SUCCESS and event.tree_id is not None:
            self._trees.pop((_session(event), event.tree_id), None)
        self._events.append(event)

    # -- CREATE, CLOSE -------------------------------------------------------------------------

    def _create_request(self, req: _Request) -> _Pending:
        create = rec.parse_create_request(req.msg)
        event = self._request_event("open", req)
        event.path = create.name
        describe_create(
            event,
            create.desired_access,
            create.share_access,
            create.create_disposition,
            create.create_options,
        )
        pending = _Pending(event, req.header.command)
        req.chain.file, req.chain.create = None, pending
        return pending

    def _create_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        event = pending.event if pending else self._orphan("open", header, time, frame)
        if header.status == STATUS_SUCCESS:
            response = rec.parse_create_response(msg)
            key = response.file_id
            file = OpenFile(key, key.hex(), _session(event), event.tree_id, event.path, event.pipe)
            if file.pipe is None and pending is not None:
                file.data = pending.data  # written in the compound that opened it
            file.opened(self._diag, response.end_of_file)
            self._remember_file(file)
            if pending is not None:
                pending.opened = file
            event.file_id = file.file_id
            event.file_size = response.end_of_file
            describe_create_action(event, response.create_action)
        self._events.append(event)
        if event.delete_on_close and header.status == STATUS_SUCCESS:
            self._events.append(event.copy(action="delete"))

    def _close_request(self, req: _Request) -> _Pending:
        return self._file_request("close", req, rec.close_request_file_id(req.msg))

    def _close_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        if pending is None:
            self._events.append(self._orphan("close", header, time, frame))
            return
        file = self._resolve_chain(pending)
        end_of_file = None
        if header.status == STATUS_SUCCESS:
            end_of_file = pending.event.file_size = rec.close_response_end_of_file(msg)
        self._events.extend(close_events(file, pending.event, self._tracker, end_of_file))
        if header.status == STATUS_SUCCESS and file is not None:
            self._forget_file(file)

    # -- READ, WRITE ---------------------------------------------------------------------------

    def _read_request(self, req: _Request) -> _Pending:
        read = rec.parse_read_request(req.msg)
        pending = self._file_request("read", req, read.file_id)
        pending.event.offset = read.offset
        pending.event.bytes = read.length
        return pending

    def _read_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        event = pending.event if pending else self._orphan("read", header, time, frame)
        file = self._resolve_chain(pending) if pending else None
        event.bytes = 0
        if not _body_present(header.command, header.status):
            self._events.append(event)
            return
        data_offset, data_length = rec.parse_read_response(msg)
        event.bytes = data_length
        self._events.append(event)
        if file is not None and file.pipe is not None:
            data = rec.available(msg, data_offset, data_length)
            self._pipe_data(file, False, data, data_length, time, frame)
            return
        if event.offset == 0:
            window = rec.available(msg, data_offset, min(data_length, SNIFF_WINDOW))
            event.magic = sniff_magic(window)
        file_data = self._file_data(pending) if pending else None
        if file_data is not None and event.offset is not None:
            self._track(False, file_data, event.offset, data_length, msg, data_offset, time, frame)

    def _write_request(self, req: _Request) -> _Pending:
        write = rec.parse_write_request(req.msg)
        pending = self._file_request("write", req, write.file_id)
        event = pending.event
        event.offset = write.offset
        event.bytes = write.length
        file = pending.file
        if file is not None and write.offset == 0 and write.data_offset >= rec.HEADER_SIZE:
            self._pipe_by_bind(file, req.msg, write.data_offset, event)
        if file is not None and file.pipe is not None:
            data = rec.available(req.msg, write.data_offset, write.length)
            self._pipe_data(file, True, data, write.length, req.time, req.frame)
            return pending
        if write.offset == 0:
            window = rec.available(req.msg, write.data_offset, min(write.length, SNIFF_WINDOW))
            event.magic = sniff_magic(window)
        file_data = self._file_data(pending)
        if file_data is not None:
            self._track(
                True, file_data, write.offset, write.length, req.msg, write.data_offset,
                req.time, req.frame,
            )  # fmt: skip
        return pending

    # -- file data -----------------------------------------------------------------------------

    @staticmethod
    def _file_data(pending: _Pending) -> FileData | None:
        """What crossed the wire of the file a request works on (None: a pipe, or unknown)."""
        if pending.file is not None:
            return pending.file.data
        create = pending.chain_create
        if create is None or create.event.pipe is not None:
            return None
        if create.data is None:  # written in the compound that opens the file
            create.data = FileData()
        return create.data

    def _track(
        self,
        from_client: bool,
        file_data: FileData,
        offset: int,
        length: int,
        msg: bytes,
        data_offset: int,
        time: int,
        frame: int,
    ) -> None:
        """File data of a WRITE request or READ response, for the file's summary and hashes."""
        if data_offset < rec.HEADER_SIZE:
            self._diag.warn("smb2_data_offset", f"frame {frame}: DataOffset {data_offset}")
            return
        self._tracker.data(
            from_client, file_data, offset, length, msg, data_offset, self._follows, time, frame
        )

    def _write_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        if pending is None:
            event = self._orphan("write", header, time, frame)
            if header.status == STATUS_SUCCESS:
                event.bytes = rec.write_response_count(msg)
            self._events.append(event)
            return
        self._resolve_chain(pending)
        self._events.append(pending.event)

    # -- IOCTL, QUERY_DIRECTORY, QUERY_INFO, SET_INFO ------------------------------------------

    def _ioctl_request(self, req: _Request) -> _Pending:
        ioctl = rec.parse_ioctl_request(req.msg)
        pending = self._file_request("ioctl", req, ioctl.file_id)
        pending.event.fsctl = _fsctl_name(ioctl.ctl_code)
        pending.ctl_code = ioctl.ctl_code
        file = pending.file
        if ioctl.ctl_code == fscc.FSCTL_PIPE_TRANSCEIVE and file is not None:
            self._pipe_by_bind(file, ioctl.input, 0, pending.event)
            if file.pipe:
                self._pipe_data(file, True, ioctl.input, len(ioctl.input), req.time, req.frame)
        return pending

    def _ioctl_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        if pending is None:
            event = self._orphan("ioctl", header, time, frame)
            if _body_present(header.command, header.status):  # the request's CtlCode, repeated
                event.fsctl = _fsctl_name(rec.ioctl_response_ctl_code(msg))
            self._events.append(event)
            return
        file = self._resolve_chain(pending)
        self._events.append(pending.event)
        if (
            pending.ctl_code == fscc.FSCTL_PIPE_TRANSCEIVE
            and file is not None
            and file.pipe is not None
            and _body_present(header.command, header.status)
        ):
            output = rec.ioctl_response_output(msg)
            self._pipe_data(file, False, output, len(output), time, frame)

    def _query_directory_request(self, req: _Request) -> _Pending:
        file_id, pattern = rec.parse_query_directory_request(req.msg)
        pending = self._file_request("query_directory", req, file_id)
        pending.event.pattern = pattern
        return pending

    def _plain_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        """A response that only answers its request (QUERY_DIRECTORY, QUERY_INFO)."""
        if pending is None:
            action = _PLAIN_ACTIONS[header.command]
            self._events.append(self._orphan(action, header, time, frame))
            return
        self._resolve_chain(pending)
        self._events.append(pending.event)

    def _query_info_request(self, req: _Request) -> _Pending:
        info = rec.parse_query_info_request(req.msg)
        pending = self._file_request("query_info", req, info.file_id)
        pending.event.info_class = rec.info_class_name(info.info_type, info.file_info_class)
        return pending

    def _set_info_request(self, req: _Request) -> _Pending:
        info = rec.parse_set_info_request(req.msg)
        action = "set_info"
        target = None
        if info.info_type == rec.SMB2_0_INFO_FILE:
            info_class = info.file_info_class
            if info_class in (fscc.FileRenameInformation, fscc.FileRenameInformationEx):
                action = "rename"
                target = fscc.file_rename_information_name(info.buffer)
            elif info_class == fscc.FileLinkInformation:
                target = fscc.file_rename_information_name(info.buffer)
            elif info_class in (
                fscc.FileDispositionInformation,
                fscc.FileDispositionInformationEx,
            ) and fscc.disposition_deletes(info_class, info.buffer):
                action = "delete"
        pending = self._file_request(action, req, info.file_id)
        pending.event.info_class = rec.info_class_name(info.info_type, info.file_info_class)
        pending.event.new_path = target
        if action == "delete":
            pending.event.delete_on_close = True  # DeletePending: gone when the last handle closes
        return pending

    def _set_info_response(
        self, header: rec.Header, msg: bytes, pending: _Pending | None, time: int, frame: int
    ) -> None:
        if pending is None:
            self._events.append(self._orphan("set_info", header, time, frame))
            return
        file = self._resolve_chain(pending)
        event = pending.event
        if event.action == "rename" and header.status == STATUS_SUCCESS and file is not None:
            file.path = event.new_path
        self._events.append(event)

    # -- state and events ----------------------------------------------------------------------

    def _session(self, session_id: int) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = Session()
            remember(self._sessions, session_id, session, MAX_SESSIONS, self._diag, _STATE_EVICTED)
        return session

    def _request_event(self, action: str, req: _Request) -> SmbEvent:
        header = req.header
        return self._event(
            action,
            header.command,
            header.message_id,
            req.session_id,
            req.tree_id,
            req.time,
            req.frame,
        )

    def _event(
        self,
        action: str,
        command: int | None,
        message_id: int | None,
        session_id: int | None,
        tree_id: int | None,
        time: int,
        frame: int,
    ) -> SmbEvent:
        """An event with what the connection, session and tree say of every command on them."""
        event = self._endpoints.event(action, time, frame)
        event.session_id = session_id or None
        event.tree_id = tree_id or None
        event.dialect = self.dialect
        if command is not None:
            event.command = rec.COMMAND_NAMES[command]
        event.message_id = message_id
        if not session_id:
            return event
        session = self._sessions.get(session_id)
        if session is not None:
            session.describe(event)
        if tree_id:
            tree = self._trees.get((session_id, tree_id))
            if tree is not None:
                tree.describe(event)
        return event

    def _file_event(self, action: str, file: OpenFile, time: int, frame: int) -> SmbEvent:
        """An event on an open file that no request of its own made (``session.FileEvent``)."""
        return self._event(action, None, None, file.session_id, file.tree_id, time, frame)

    def _pipe_by_bind(self, file: OpenFile, data: bytes, start: int, event: SmbEvent) -> None:
        """An open not known as a pipe whose first bytes written are a DCE/RPC BIND is one
        (``OpenFile.pipe_by_bind``): its events from this request on say so."""
        tree = self._trees.get((file.session_id, file.tree_id or 0))
        pipe = file.pipe_by_bind(data, start, tree, self._diag)
        if pipe is not None:
            event.pipe = pipe

    def _pipe_data(
        self, file: OpenFile, from_client: bool, data: bytes, length: int, time: int, frame: int
    ) -> None:
        """Bytes written to or read from an open named pipe: DCE/RPC calls become events."""
        calls = file.pipe_data(from_client, data, length, time, frame, self._diag, _PIPE_TRUNCATED)
        if calls:
            self._events.extend(rpc_events(file, calls, self._file_event))

    def _remember_file(self, file: OpenFile) -> None:
        """Remember an open file; when too many are open, the oldest is forgotten (counted)."""
        pushed_out = remember(self._files, file.key, file, MAX_FILES, self._diag, _STATE_EVICTED)
        if pushed_out is not None:
            self._forget_file(pushed_out)

    def _forget_file(self, file: OpenFile) -> None:
        """A file closed, pushed out, or still open at the end (``session.file_gone``)."""
        self._files.pop(file.key, None)
        self._events.extend(file_gone(file, self._file_event, self._tracker))


# By command code; a command not in them yields no event (FLUSH, LOCK, CANCEL, ECHO,
# CHANGE_NOTIFY, OPLOCK_BREAK).
_REQUESTS: Final[dict[int, RequestHandler]] = {
    rec.NEGOTIATE: Smb2Decoder._negotiate_request,
    rec.SESSION_SETUP: Smb2Decoder._session_setup_request,
    rec.LOGOFF: Smb2Decoder._logoff_request,
    rec.TREE_CONNECT: Smb2Decoder._tree_connect_request,
    rec.TREE_DISCONNECT: Smb2Decoder._tree_disconnect_request,
    rec.CREATE: Smb2Decoder._create_request,
    rec.CLOSE: Smb2Decoder._close_request,
    rec.READ: Smb2Decoder._read_request,
    rec.WRITE: Smb2Decoder._write_request,
    rec.IOCTL: Smb2Decoder._ioctl_request,
    rec.QUERY_DIRECTORY: Smb2Decoder._query_directory_request,
    rec.QUERY_INFO: Smb2Decoder._query_info_request,
    rec.SET_INFO: Smb2Decoder._set_info_request,
}
_RESPONSES: Final[dict[int, ResponseHandler]] = {
    rec.NEGOTIATE: Smb2Decoder._negotiate_response,
    rec.SESSION_SETUP: Smb2Decoder._session_setup_response,
    rec.LOGOFF: Smb2Decoder._logoff_response,
    rec.TREE_CONNECT: Smb2Decoder._tree_connect_response,
    rec.TREE_DISCONNECT: Smb2Decoder._tree_disconnect_response,
    rec.CREATE: Smb2Decoder._create_response,
    rec.CLOSE: Smb2Decoder._close_response,
    rec.READ: Smb2Decoder._read_response,
    rec.WRITE: Smb2Decoder._write_response,
    rec.IOCTL: Smb2Decoder._ioctl_response,
    rec.QUERY_DIRECTORY: Smb2Decoder._plain_response,
    rec.QUERY_INFO: Smb2Decoder._plain_response,
    rec.SET_INFO: Smb2Decoder._set_info_response,
}
