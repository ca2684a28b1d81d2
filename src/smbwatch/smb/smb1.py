"""Smb1Decoder: the SMB1 (NT LM 0.12) state of one TCP connection, turned into SmbEvents.

A request waits for its response under (PID, MID), in order, because some clients send every
request with the same MID; so each event carries what the client asked (path, access, offset)
and what the server answered (status, FID, create action), with the request's time and frame.
Every command of an AndX chain is decoded. Transactions are gathered from their secondary
requests and multi-part responses. Sessions (UID), trees (TID), open files (FID) and searches
(SID) are remembered so that a READ knows its path and share; every table is bounded, what is
pushed out is counted, and a pending request pushed out is emitted unanswered rather than lost.
Sans-I/O: bytes in, events out (CONTRIBUTING.md, "Capture → SMB").
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Final

from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.tcp import BodyTap
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.magic import sniff_magic
from smbwatch.filedata.transfers import Transfers, tracker_of
from smbwatch.ntstatus import STATUS_BUFFER_OVERFLOW, STATUS_MORE_PROCESSING_REQUIRED
from smbwatch.smb import fscc
from smbwatch.smb import smb1_records as rec
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
    is_pipe_tree,
    logon_identity,
    remember,
    rpc_events,
    split_unc,
)

MAX_MESSAGE_KEPT: Final = 1 << 20  # larger messages are cut (their data is not needed past this)
MAX_TRANSACTION: Final = 1 << 17  # parameters + data gathered for one transaction
MAX_PENDING: Final = 256  # requests awaiting a response (servers allow about 50: MaxMpxCount)
MAX_SEARCHES: Final = 256

_NO_TREE: Final = 0xFFFF
_PIPE_RESOURCE_TYPES: Final = (rec.FILE_TYPE_BYTE_MODE_PIPE, rec.FILE_TYPE_MESSAGE_MODE_PIPE)
# The primary command a secondary request continues
_PRIMARY: Final = {
    rec.SMB_COM_TRANSACTION_SECONDARY: rec.SMB_COM_TRANSACTION,
    rec.SMB_COM_TRANSACTION2_SECONDARY: rec.SMB_COM_TRANSACTION2,
    rec.SMB_COM_NT_TRANSACT_SECONDARY: rec.SMB_COM_NT_TRANSACT,
}
_MALFORMED: Final = (ValueError, struct.error, IndexError)
_QUERY_INFORMATION: Final = (
    rec.TRANS2_QUERY_PATH_INFORMATION,
    rec.TRANS2_QUERY_FILE_INFORMATION,
    rec.TRANS2_QUERY_FS_INFORMATION,
)
# Warnings of the shared session helpers, by this decoder's name
_STATE_EVICTED: Final = "smb1_state_evicted"
_PIPE_TRUNCATED: Final = "smb1_pipe_data_truncated"
_SECURITY_BLOB: Final = "smb1_security_blob"


class _Parts:
    """One direction of a transaction: its parameters and data, gathered by displacement."""

    __slots__ = ("total_parameters", "total_data", "parameters", "data", "received", "overflow")

    def __init__(self) -> None:
        self.total_parameters = self.total_data = self.received = 0
        self.parameters = bytearray()
        self.data = bytearray()
        self.overflow = False

    def add(self, part: rec.TransactionPart) -> None:
        # The totals may shrink in later parts (MS-CIFS 3.2.5.1.3); the last word counts.
        self.total_parameters, self.total_data = part.total_parameter_count, part.total_data_count
        self.received += len(part.parameters) + len(part.data)
        if self.total_parameters + self.total_data > MAX_TRANSACTION:
            self.overflow = True
        if not self.overflow:
            self.overflow = not (
                _place(self.parameters, part.parameter_displacement, part.parameters)
                and _place(self.data, part.data_displacement, part.data)
            )

    @property
    def complete(self) -> bool:
        return self.received >= self.total_parameters + self.total_data


def _place(buf: bytearray, at: int, chunk: bytes) -> bool:
    """Put ``chunk`` at displacement ``at``; False if that would pass MAX_TRANSACTION."""
    if at + len(chunk) > MAX_TRANSACTION:
        return False
    if at > len(buf):
        buf.extend(bytes(at - len(buf)))
    buf[at : at + len(chunk)] = chunk
    return True


class _Request:
    """One request message being decoded: what every command of its chain shares."""

    __slots__ = ("header", "msg", "time", "frame")

    def __init__(self, header: rec.Header, msg: bytes, time: int, frame: int) -> None:
        self.header, self.msg, self.time, self.frame = header, msg, time, frame


class _Item:
    """One command of a request awaiting its response, with the event it becomes."""

    __slots__ = (
        "command",
        "event",
        "quiet",
        "emitted",
        "file",
        "dialects",
        "subcommand",
        "trans",
    )

    def __init__(self, command: int, event: SmbEvent | None, file: OpenFile | None = None) -> None:
        self.command = command
        self.event = event
        self.quiet = False  # not worth an event if it is never answered
        self.emitted = False
        self.file = file
        self.dialects: list[str] = []  # NEGOTIATE
        self.subcommand: int | None = None  # TRANSACTION2 sub-command, NT_TRANSACT Function
        self.trans: tuple[_Parts, _Parts] | None = None  # request and response of a transaction


class _Exchange:
    """A request message (its commands) and where its response is expected."""

    __slots__ = ("key", "command", "items", "request")

    def __init__(self, request: _Request, items: list[_Item]) -> None:
        header = request.header
        self.key = (header.pid, header.mid)
        self.command = header.command
        self.items = items
        # for a transaction that a later secondary request completes (its bytes are not kept)
        self.request = _Request(header, b"", request.time, request.frame)


RequestHandler = Callable[["Smb1Decoder", _Request, rec.Block], _Item]
ResponseHandler = Callable[["Smb1Decoder", _Item, rec.Header, bytes, "rec.Block | None"], None]


class Smb1Decoder(Decoder):
    """SMB1 of one connection (the ``Decoder`` protocol of ``smb.nbss``).

    The data of each open file goes to a ``files.FileTracker``: its summary (size, bytes seen,
    type, hashes) is reported on the file's close. ``files`` is shared by the decoders of one
    capture (by default, this one's own with the default options).
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
        self._security_mode: int | None = None
        self._pending: dict[tuple[int, int], deque[_Exchange]] = {}
        self._pending_count = 0
        self._sessions: dict[int, Session] = {}
        self._logons: dict[int, SmbEvent] = {}  # SESSION_SETUP legs answered "more processing"
        self._trees: dict[int, Tree] = {}
        self._files: dict[FileKey, OpenFile] = {}
        self._searches: dict[int, tuple[str | None, str | None]] = {}
        self._events: list[SmbEvent] = []
        self._time = self._frame = 0  # of the message being decoded

    # -- the Decoder protocol ------------------------------------------------------------------

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        """All of a message, except file data past a sniff window (WRITE_ANDX requests and
        READ_ANDX responses on files; named pipes keep everything for DCE/RPC)."""
        everything = min(total_len, MAX_MESSAGE_KEPT)
        try:
            header = rec.parse_header(head)
            write = from_client and header.command == rec.SMB_COM_WRITE_ANDX
            read = header.is_reply and header.command == rec.SMB_COM_READ_ANDX
            if not (write or read):
                return everything
            blocks, _ = rec.parse_chain(head, header.command)
            if not blocks or rec.andx_next(head, blocks[0]) != rec.SMB_COM_NO_ANDX_COMMAND:
                return everything
            file: OpenFile | None
            if write:
                request = rec.parse_write_request(head, blocks[0])
                file, data_offset = self._files.get(request.fid), request.data_offset
            else:
                exchange = self._find((header.pid, header.mid), rec.SMB_COM_READ_ANDX)
                file = exchange.items[0].file if exchange is not None else None
                data_offset = rec.parse_read_response(head, blocks[0])[1]
        except _MALFORMED:
            return everything  # message() will say what is wrong with it
        if self._is_pipe(file, header.tid):
            return everything
        return min(everything, max(data_offset, blocks[0].data) + SNIFF_WINDOW)

    def message(
        self, from_client: bool, data: bytes, total_len: int, time: int, frame: int
    ) -> list[SmbEvent]:
        try:
            header = rec.parse_header(data)
        except ValueError as exc:
            self._diag.warn("smb1_malformed", f"frame {frame}: {exc}")
            return []
        if header.is_reply != (not from_client):
            if from_client:  # a server's own request (oplock break) is expected, this is not
                self._diag.warn("smb1_malformed", f"frame {frame}: a reply from the client")
            return []
        self._time, self._frame = time, frame
        self._tracker.new_message(from_client)
        self._follows = total_len - len(data)
        try:
            if from_client:
                self._request(_Request(header, data, time, frame))
            else:
                self._response(header, data, time, frame)
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
        """Requests never answered, pipes' unanswered calls, and a ``close`` event (no command,
        no status) for each file with data still open."""
        for queue in self._pending.values():
            for exchange in queue:
                self._unanswered(exchange)
        self._pending.clear()
        for file in self._files.values():
            self._file_gone(file)
        self._events.extend(self._logons.values())
        self._logons.clear()
        events, self._events = self._events, []
        return events

    # -- requests and responses ----------------------------------------------------------------

    def _request(self, req: _Request) -> None:
        blocks, broken = rec.parse_chain(req.msg, req.header.command)
        if broken:
            self._diag.warn("smb1_andx_chain", f"frame {req.frame}: {broken}")
        if req.header.command in _PRIMARY:
            if blocks:
                self._secondary(req, blocks[0])
            return
        items = []
        for block in blocks:
            handler = _REQUESTS.get(block.command)
            if handler is None:
                continue
            try:
                items.append(handler(self, req, block))
            except _MALFORMED as exc:
                self._diag.warn("smb1_malformed", f"frame {req.frame}: {exc}")
        if items:
            self._remember_exchange(_Exchange(req, items))

    def _response(self, header: rec.Header, msg: bytes, time: int, frame: int) -> None:
        blocks, broken = rec.parse_chain(msg, header.command)
        if broken:
            self._diag.warn("smb1_andx_chain", f"frame {frame}: {broken}")
        exchange = self._find((header.pid, header.mid), header.command)
        if exchange is None:
            items = self._orphans(header, msg, blocks, time, frame)
        else:
            items = exchange.items
        following = deque(blocks)
        for index, item in enumerate(items):
            block = None
            if following and following[0].command == item.command:
                block = following.popleft()
            if item.event is not None:
                item.event.status = rec.status_name(header)
                if index and item.command != rec.SMB_COM_TREE_CONNECT_ANDX:
                    self._chained(item.event, header)
            try:
                _RESPONSES[item.command](self, item, header, msg, block)
            except _MALFORMED as exc:
                self._diag.warn("smb1_malformed", f"frame {frame}: {exc}")
                self._emit(item)
        if exchange is not None and all(item.emitted for item in items):
            self._forget_exchange(exchange)

    def _orphans(
        self, header: rec.Header, msg: bytes, blocks: list[rec.Block], time: int, frame: int
    ) -> list[_Item]:
        """Items for a response whose request was not seen (the capture began after it)."""
        if (
            header.command not in _ORPHAN_ACTIONS
            or header.status == STATUS_MORE_PROCESSING_REQUIRED
        ):
            return []
        self._diag.warn("smb1_response_unmatched", f"frame {frame}: MID {header.mid}")
        req = _Request(header, msg, time, frame)
        items = []
        for block in blocks:
            action = _ORPHAN_ACTIONS.get(block.command)
            if action is not None:
                items.append(_Item(block.command, self._event(action, req, block.command)))
        return items

    def _secondary(self, req: _Request, block: rec.Block) -> None:
        """A TRANSACTION/TRANSACTION2/NT_TRANSACT_SECONDARY request: more of a pending one."""
        header = req.header
        exchange = self._find((header.pid, header.mid), _PRIMARY[header.command])
        item = exchange.items[0] if exchange is not None else None
        if exchange is None or item is None or item.trans is None:
            self._diag.warn("smb1_response_unmatched", f"frame {req.frame}: secondary request")
            return
        request_parts = item.trans[0]
        if request_parts.complete:
            return
        try:
            request_parts.add(rec.parse_transaction_secondary(req.msg, block))
        except _MALFORMED as exc:
            self._diag.warn("smb1_malformed", f"frame {req.frame}: {exc}")
            return
        if request_parts.complete:
            self._transaction_request_done(exchange.request, item)

    # -- NEGOTIATE, SESSION_SETUP_ANDX, LOGOFF_ANDX --------------------------------------------

    def _negotiate_request(self, req: _Request, block: rec.Block) -> _Item:
        item = _Item(block.command, self._event("negotiate", req, block.command))
        item.dialects = rec.negotiate_dialects(req.msg, block)
        item.quiet = True  # an SMB2 server answers with SMB2: this request was only a probe
        return item

    def _negotiate_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        if header.status == 0 and block is not None and block.word_count:
            response = rec.parse_negotiate_response(msg, block)
            index = response.dialect_index
            if index < len(item.dialects):
                offered = item.dialects[index]
                self.dialect = rec.DIALECT_SYNONYMS.get(offered, offered)
            elif block.word_count == rec.NT_LM_RESPONSE_WORDS:
                self.dialect = rec.NT_LM_0_12  # the request was not seen; the form says it
            self._security_mode = response.security_mode
        event = item.event
        assert event is not None
        event.dialect = self.dialect
        event.session_id = event.tree_id = None  # none yet, whatever the header says
        self._emit(item)

    def _session_setup_request(self, req: _Request, block: rec.Block) -> _Item:
        event = self._event("logon", req, block.command)
        item = _Item(block.command, event)
        setup = rec.parse_session_setup_request(req.msg, block, req.header.unicode)
        if setup.security_blob is not None:
            blob = setup.security_blob
            item.quiet = not logon_identity(event, blob, self._diag, _SECURITY_BLOB, req.frame)
        else:
            event.user, event.domain = setup.account or None, setup.primary_domain or None
            if not setup.account and max(setup.password_lengths, default=0) <= 1:
                event.auth = "anonymous"
            elif self._security_mode is not None and not (
                self._security_mode & rec.NEGOTIATE_ENCRYPT_PASSWORDS
            ):
                event.auth = "plaintext"
            else:
                event.auth = "ntlm"  # LM/NTLM challenge responses without NTLMSSP
        earlier = self._logons.pop(req.header.uid, None) if req.header.uid else None
        if earlier is not None:
            event.auth = event.auth or earlier.auth
            event.server = event.server or earlier.server
        return item

    def _session_setup_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        event = item.event
        assert event is not None
        event.session_id = header.uid or None
        action, blob = 0, b""
        if block is not None and block.word_count:
            action, blob = rec.parse_session_setup_response(msg, block)
        if header.status == STATUS_MORE_PROCESSING_REQUIRED:
            if not event.server and blob:
                event.server = challenge_server(blob, self._diag, _SECURITY_BLOB, self._frame)
            if header.uid:  # held until the next leg, or emitted if the client gives up
                remember(self._logons, header.uid, event, MAX_SESSIONS, self._diag, _STATE_EVICTED)
            item.emitted = True
            return
        if action & rec.SMB_SETUP_GUEST and event.auth != "anonymous":
            event.auth = "guest"
        if header.status == 0 and header.uid:
            session = Session()
            session.learn(event)
            remember(self._sessions, header.uid, session, MAX_SESSIONS, self._diag, _STATE_EVICTED)
        self._emit(item)

    def _logoff_request(self, req: _Request, block: rec.Block) -> _Item:
        return _Item(block.command, self._event("logoff", req, block.command))

    def _logoff_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        abandoned = self._logons.pop(header.uid, None)
        if abandoned is not None:
            self._events.append(abandoned)
        if header.status == 0:
            self._sessions.pop(header.uid, None)
        self._emit(item)

    # -- TREE_CONNECT_ANDX, TREE_DISCONNECT ----------------------------------------------------

    def _tree_connect_request(self, req: _Request, block: rec.Block) -> _Item:
        event = self._event("tree_connect", req, block.command)
        path, service = rec.parse_tree_connect_request(req.msg, block, req.header.unicode)
        server, event.share_name = split_unc(path)
        event.share, event.server = path, server or event.server
        event.share_type = rec.SERVICE_SHARE_TYPES.get(service)
        event.tree_id = None  # assigned by the response
        return _Item(block.command, event)

    def _tree_connect_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        event = item.event
        assert event is not None
        self._identify(event, header.uid)
        if header.status == 0 and block is not None and block.word_count:
            service = rec.parse_tree_connect_response(msg, block)
            event.share_type = rec.SERVICE_SHARE_TYPES.get(service, event.share_type)
            event.tree_id = header.tid
            tree = Tree(event.share, event.share_name, event.server, event.share_type)
            remember(self._trees, header.tid, tree, MAX_TREES, self._diag, _STATE_EVICTED)
        self._emit(item)

    def _tree_disconnect_request(self, req: _Request, block: rec.Block) -> _Item:
        return _Item(block.command, self._event("tree_disconnect", req, block.command))

    def _tree_disconnect_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        self._emit(item)
        if header.status == 0 and self._trees.pop(header.tid, None) is not None:
            for key in [key for key, file in self._files.items() if file.tree_id == header.tid]:
                self._file_gone(self._files.pop(key))

    # -- NT_CREATE_ANDX, OPEN_ANDX (and NT_TRANSACT_CREATE), CLOSE -----------------------------

    def _nt_create_request(self, req: _Request, block: rec.Block) -> _Item:
        create = rec.parse_nt_create_request(req.msg, block, req.header.unicode)
        return _Item(block.command, self._create_event(req, block.command, create))

    def _open_request(self, req: _Request, block: rec.Block) -> _Item:
        create = rec.parse_open_andx_request(req.msg, block, req.header.unicode)
        return _Item(block.command, self._create_event(req, block.command, create))

    def _create_event(self, req: _Request, command: int, create: rec.CreateRequest) -> SmbEvent:
        event = self._event("open", req, command)
        event.path = rec.strip_path(create.name)
        root = self._files.get(create.root_fid) if create.root_fid else None
        if root is not None and root.path:
            event.path = f"{root.path}\\{event.path}"
        describe_create(
            event,
            create.access_mask,
            create.share_access,
            create.disposition,
            create.create_options,
        )
        return event

    def _nt_create_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        if header.status == 0 and block is not None and block.word_count:
            if item.command == rec.SMB_COM_OPEN_ANDX:
                self._opened(item, header, rec.parse_open_andx_response(msg, block))
            else:
                self._opened(item, header, rec.parse_nt_create_response(msg, block))
        self._emit_create(item, header)

    def _opened(self, item: _Item, header: rec.Header, response: rec.CreateResponse) -> None:
        event = item.event
        assert event is not None
        if event.pipe is None and response.resource_type in _PIPE_RESOURCE_TYPES:
            event.pipe = event.path
        event.file_id = _file_id(response.fid)
        event.file_size = response.end_of_file
        describe_create_action(event, response.create_action)
        fid = response.fid
        file = OpenFile(fid, _file_id(fid), header.uid, header.tid, event.path, event.pipe)
        file.opened(self._diag, response.end_of_file)
        self._remember_file(file)

    def _emit_create(self, item: _Item, header: rec.Header) -> None:
        self._emit(item)
        event = item.event
        if event is not None and event.delete_on_close and header.status == 0:
            self._events.append(event.copy(action="delete"))

    def _close_request(self, req: _Request, block: rec.Block) -> _Item:
        return self._file_item("close", req, block, rec.parse_fid(req.msg, block))

    def _close_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        self._emit_close(item)
        if header.status == 0 and item.file is not None:
            self._files.pop(item.file.key, None)
            self._file_gone(item.file)

    def _emit_close(self, item: _Item) -> None:
        """A close event, with what crossed the wire of its file (one event per direction)."""
        emitted = item.emitted
        self._emit(item)
        if not emitted and item.event is not None:
            self._events.extend(close_events(item.file, item.event, self._tracker)[1:])

    # -- READ_ANDX, WRITE_ANDX -----------------------------------------------------------------

    def _read_request(self, req: _Request, block: rec.Block) -> _Item:
        fid, offset = rec.parse_read_request(req.msg, block)
        item = self._file_item("read", req, block, fid)
        assert item.event is not None
        item.event.offset = offset
        return item

    def _read_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        event = item.event
        assert event is not None
        event.bytes = 0
        if _carries_data(header) and block is not None and block.word_count:
            length, data_offset = rec.parse_read_response(msg, block)
            event.bytes = length
            if event.pipe is not None:
                self._emit(item)
                self._pipe_data(item.file, False, msg[data_offset : data_offset + length], length)
                return
            if event.offset == 0 and length:
                window = msg[data_offset : data_offset + min(length, SNIFF_WINDOW)]
                event.magic = sniff_magic(window)
            if event.offset is not None:
                self._track(False, item.file, event.offset, length, msg, data_offset, block)
        self._emit(item)

    def _write_request(self, req: _Request, block: rec.Block) -> _Item:
        write = rec.parse_write_request(req.msg, block)
        item = self._file_item("write", req, block, write.fid)
        event = item.event
        assert event is not None
        event.offset, event.bytes = write.offset, write.length
        start, length = write.data_offset, write.length
        if event.pipe is not None:
            if write.write_mode & rec.WRITE_RAW_MODE and write.write_mode & rec.WRITE_MESSAGE_START:
                start, length = start + 2, length - 2  # a message length comes first
            self._pipe_data(item.file, True, req.msg[start : start + length], length)
            return item
        if write.offset == 0 and length:
            event.magic = sniff_magic(req.msg[start : start + min(length, SNIFF_WINDOW)])
        self._track(True, item.file, write.offset, length, req.msg, start, block)
        return item

    def _track(
        self,
        from_client: bool,
        file: OpenFile | None,
        offset: int,
        length: int,
        msg: bytes,
        data_offset: int,
        block: rec.Block,
    ) -> None:
        """File data of a WRITE_ANDX request or READ_ANDX response, for the file's summary and
        hashes (the rest of the message follows it only when it is the last of the chain)."""
        if file is None or file.data is None:
            return
        if data_offset < rec.HEADER_SIZE:
            self._diag.warn("smb1_data_offset", f"frame {self._frame}: DataOffset {data_offset}")
            return
        last = rec.andx_next(msg, block) == rec.SMB_COM_NO_ANDX_COMMAND
        follows = self._follows if last else 0
        self._tracker.data(
            from_client, file.data, offset, length, msg, data_offset, follows,
            self._time, self._frame,
        )  # fmt: skip

    def _write_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        event = item.event
        assert event is not None
        if event.bytes is None and header.status == 0 and block is not None and block.word_count:
            event.bytes = rec.parse_write_response(msg, block)  # the request was not seen
        self._emit(item)

    # -- DELETE, CREATE_DIRECTORY, DELETE_DIRECTORY, RENAME, NT_RENAME -------------------------

    def _delete_request(self, req: _Request, block: rec.Block) -> _Item:
        return self._name_item("delete", req, block)

    def _create_directory_request(self, req: _Request, block: rec.Block) -> _Item:
        return self._name_item("create", req, block)

    def _name_item(self, action: str, req: _Request, block: rec.Block) -> _Item:
        event = self._event(action, req, block.command)
        event.path = rec.strip_path(rec.parse_name_request(req.msg, block, req.header.unicode))
        return _Item(block.command, event)

    def _rename_request(self, req: _Request, block: rec.Block) -> _Item:
        event = self._event("rename", req, block.command)
        level, old, new = rec.parse_rename_request(req.msg, block, req.header.unicode)
        event.path, event.new_path = rec.strip_path(old), rec.strip_path(new)
        if level is not None:
            event.info_class = rec.NT_RENAME_LEVELS.get(level, f"0x{level:04X}")
        return _Item(block.command, event)

    def _plain_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        self._emit(item)

    # -- TRANSACTION, TRANSACTION2, NT_TRANSACT ------------------------------------------------

    def _transaction_request(self, req: _Request, block: rec.Block) -> _Item:
        if block.command == rec.SMB_COM_NT_TRANSACT:
            part = rec.parse_nt_transact_request(req.msg, block)
        else:
            part = rec.parse_transaction_request(req.msg, block)
        item = _Item(block.command, None)
        item.subcommand = part.setup[0] if part.setup else None
        if (
            block.command == rec.SMB_COM_TRANSACTION
            and item.subcommand == rec.TRANS_TRANSACT_NMPIPE
            and len(part.setup) >= 2
        ):
            item.file = self._files.get(part.setup[1])  # Setup[1]: the pipe's FID
        item.trans = (_Parts(), _Parts())
        item.trans[0].add(part)
        if item.trans[0].complete:
            self._transaction_request_done(req, item)
        return item

    def _transaction_request_done(self, req: _Request, item: _Item) -> None:
        """All of a transaction's request is in: what it asks becomes the event."""
        parts = item.trans
        assert parts is not None
        if parts[0].overflow:
            self._diag.warn("smb1_transaction_dropped", f"frame {req.frame}: too large")
            return
        parameters, data = bytes(parts[0].parameters), bytes(parts[0].data)
        unicode = req.header.unicode
        try:
            if item.command == rec.SMB_COM_TRANSACTION:
                self._pipe_data(item.file, True, data, len(data))
            elif item.command == rec.SMB_COM_TRANSACTION2:
                item.event = self._trans2_event(req, item, parameters, data, unicode)
            elif (
                item.subcommand == rec.NT_TRANSACT_CREATE
                and item.command == rec.SMB_COM_NT_TRANSACT
            ):
                create = rec.parse_nt_transact_create(parameters, unicode)
                item.event = self._create_event(req, item.command, create)
        except _MALFORMED as exc:
            self._diag.warn("smb1_malformed", f"frame {req.frame}: {exc}")

    def _trans2_event(
        self, req: _Request, item: _Item, parameters: bytes, data: bytes, unicode: bool
    ) -> SmbEvent | None:
        command, sub = item.command, item.subcommand
        if sub == rec.TRANS2_FIND_FIRST2:
            level, name = rec.parse_find_first2(parameters, unicode)
            event = self._event("query_directory", req, command)
            directory, _, event.pattern = rec.strip_path(name).rpartition("\\")
            event.path = directory
            event.info_class = rec.FIND_LEVELS.get(level, f"0x{level:04X}")
            return event
        if sub == rec.TRANS2_FIND_NEXT2:
            sid, level = rec.parse_find_next2(parameters)
            event = self._event("query_directory", req, command)
            event.path, event.pattern = self._searches.get(sid, (None, None))
            event.info_class = rec.FIND_LEVELS.get(level, f"0x{level:04X}")
            return event
        if sub in _QUERY_INFORMATION:
            return self._query_information(req, item, parameters, unicode)
        if sub == rec.TRANS2_SET_PATH_INFORMATION:
            level, name = rec.parse_path_information(parameters, unicode)
            event = self._event("set_info", req, command)
            event.path = rec.strip_path(name)
        elif sub == rec.TRANS2_SET_FILE_INFORMATION:
            fid, level = rec.parse_file_information(parameters)
            item.file = self._files.get(fid)
            event = self._event("set_info", req, command)
            self._describe_file(event, fid, item.file)
        else:
            return None
        self._set_information(event, level, data, unicode)
        return event

    def _query_information(
        self, req: _Request, item: _Item, parameters: bytes, unicode: bool
    ) -> SmbEvent:
        """A TRANS2_QUERY_PATH/FILE/FS_INFORMATION request: the ``query_info`` event."""
        event = self._event("query_info", req, item.command)
        levels, classes = rec.QUERY_LEVELS, fscc.FILE_INFORMATION_CLASSES
        if item.subcommand == rec.TRANS2_QUERY_PATH_INFORMATION:
            level, name = rec.parse_path_information(parameters, unicode)
            event.path = rec.strip_path(name)
        elif item.subcommand == rec.TRANS2_QUERY_FILE_INFORMATION:
            fid, level = rec.parse_file_information(parameters)
            item.file = self._files.get(fid)
            self._describe_file(event, fid, item.file)
        else:
            level = rec.parse_fs_information(parameters)
            levels, classes = rec.QUERY_FS_LEVELS, fscc.FS_INFORMATION_CLASSES
        event.info_class = rec.level_name(level, levels, classes)
        return event

    def _set_information(self, event: SmbEvent, level: int, data: bytes, unicode: bool) -> None:
        """Name a SET_*_INFORMATION level; a rename or a delete is an event of its own kind."""
        event.info_class = rec.level_name(level, rec.SET_LEVELS, fscc.FILE_INFORMATION_CLASSES)
        info_class = level - rec.SMB_INFO_PASSTHROUGH if level >= rec.SMB_INFO_PASSTHROUGH else None
        if info_class == fscc.FileRenameInformation:
            event.action = "rename"
            event.new_path = rec.strip_path(rec.parse_rename_information(data, unicode))
        elif info_class == fscc.FileLinkInformation:
            event.new_path = rec.strip_path(rec.parse_rename_information(data, unicode))
        elif level == rec.SMB_SET_FILE_DISPOSITION_INFO:
            info_class = fscc.FileDispositionInformation
        if info_class in (
            fscc.FileDispositionInformation,
            fscc.FileDispositionInformationEx,
        ) and fscc.disposition_deletes(info_class, data):
            event.action = "delete"

    def _transaction_response(
        self, item: _Item, header: rec.Header, msg: bytes, block: rec.Block | None
    ) -> None:
        parts = item.trans
        if parts is None:  # an orphan
            return
        if not _carries_data(header) or block is None or not block.word_count:
            if header.status == 0:
                return  # the interim response: send the secondary requests
            self._emit(item)  # the transaction failed: nothing more comes
            return
        if item.command == rec.SMB_COM_NT_TRANSACT:
            parts[1].add(rec.parse_nt_transact_response(msg, block))
        else:
            parts[1].add(rec.parse_transaction_response(msg, block))
        if not parts[1].complete:
            return
        self._emit(item)
        if item.command == rec.SMB_COM_TRANSACTION:
            if not _overflow(item):
                self._pipe_data(item.file, False, bytes(parts[1].data), len(parts[1].data))
            return
        self._transaction_response_done(item, header, bytes(parts[1].parameters))

    def _transaction_response_done(
        self, item: _Item, header: rec.Header, parameters: bytes
    ) -> None:
        """All of a transaction's response is in: what it says completes the event."""
        event = item.event
        if event is None or _overflow(item):
            return
        if item.command == rec.SMB_COM_NT_TRANSACT:
            self._opened(item, header, rec.parse_nt_transact_create_response(parameters))
            if event.delete_on_close:
                self._events.append(event.copy(action="delete"))
        elif item.subcommand == rec.TRANS2_FIND_FIRST2:
            sid = rec.parse_find_first2_response(parameters)
            search = (event.path, event.pattern)
            remember(self._searches, sid, search, MAX_SEARCHES, self._diag, _STATE_EVICTED)
        elif event.action == "rename" and item.file is not None:
            item.file.path = event.new_path

    # -- state and events ----------------------------------------------------------------------

    def _file_item(self, action: str, req: _Request, block: rec.Block, fid: int) -> _Item:
        """An item on an open file: its path and pipe name, if it was opened in the capture."""
        file = self._files.get(fid)
        event = self._event(action, req, block.command)
        self._describe_file(event, fid, file)
        return _Item(block.command, event, file)

    @staticmethod
    def _describe_file(event: SmbEvent, fid: int, file: OpenFile | None) -> None:
        event.file_id = _file_id(fid)
        if file is not None:
            event.path, event.pipe = file.path, file.pipe

    def _pipe_data(
        self, file: OpenFile | None, from_client: bool, data: bytes, length: int
    ) -> None:
        """Bytes written to or read from an open named pipe: DCE/RPC calls become events."""
        if file is None:
            return
        calls = file.pipe_data(
            from_client, data, length, self._time, self._frame, self._diag, _PIPE_TRUNCATED
        )
        if calls:
            self._events.extend(rpc_events(file, calls, self._file_event))

    def _file_gone(self, file: OpenFile) -> None:
        """A file closed, pushed out, or open at the end (``session.file_gone``)."""
        self._events.extend(file_gone(file, self._file_event, self._tracker))

    def _is_pipe(self, file: OpenFile | None, tid: int) -> bool:
        """Whether a file is a named pipe; for one opened before the capture, its tree says."""
        if file is not None:
            return file.pipe is not None
        tree = self._trees.get(tid)
        return tree is not None and is_pipe_tree(tree.share_type, tree.share_name)

    def _event(self, action: str, req: _Request, command: int) -> SmbEvent:
        """The event of one command of a request."""
        header = req.header
        event = self._new_event(action, req.time, req.frame, header.uid, header.tid)
        event.command, event.message_id = rec.command_name(command), header.mid
        return event

    def _new_event(self, action: str, time: int, frame: int, uid: int, tid: int) -> SmbEvent:
        """An event with what the connection, session and tree say of everything on them."""
        event = self._endpoints.event(action, time, frame)
        if tid not in (0, _NO_TREE):
            event.tree_id = tid
        event.dialect = self.dialect
        self._identify(event, uid)
        self._describe_tree(event, tid)
        return event

    def _file_event(self, action: str, file: OpenFile, time: int, frame: int) -> SmbEvent:
        """An event on an open file that no request of its own made (``session.FileEvent``)."""
        return self._new_event(action, time, frame, file.session_id, file.tree_id or 0)

    def _describe_tree(self, event: SmbEvent, tid: int) -> None:
        tree = self._trees.get(tid)
        if tree is not None:
            tree.describe(event)

    def _chained(self, event: SmbEvent, header: rec.Header) -> None:
        """A command chained after a SESSION_SETUP or TREE_CONNECT: the session and tree the
        response assigned are its own."""
        self._identify(event, header.uid)
        if event.tree_id is None and header.tid not in (0, _NO_TREE):
            event.tree_id = header.tid
            self._describe_tree(event, header.tid)

    def _identify(self, event: SmbEvent, uid: int) -> None:
        """The session's identity on an event (a chained request learns it from the response)."""
        event.session_id = uid or None
        session = self._sessions.get(uid)
        if session is not None:
            session.describe(event)

    def _emit(self, item: _Item) -> None:
        if item.event is not None and not item.emitted:
            self._events.append(item.event)
        item.emitted = True

    def _unanswered(self, exchange: _Exchange) -> None:
        for item in exchange.items:
            if item.quiet:
                continue
            if item.command == rec.SMB_COM_CLOSE:
                self._emit_close(item)
            else:
                self._emit(item)

    def _remember_exchange(self, exchange: _Exchange) -> None:
        if self._pending_count >= MAX_PENDING:
            oldest = self._pending[next(iter(self._pending))][0]
            self._forget_exchange(oldest)
            self._diag.warn("smb1_state_evicted", f"more than {MAX_PENDING} pending requests")
            self._unanswered(oldest)
        self._pending.setdefault(exchange.key, deque()).append(exchange)
        self._pending_count += 1

    def _forget_exchange(self, exchange: _Exchange) -> None:
        queue = self._pending.get(exchange.key)
        if queue is None or exchange not in queue:
            return
        queue.remove(exchange)
        self._pending_count -= 1
        if not queue:
            del self._pending[exchange.key]

    def _find(self, key: tuple[int, int], command: int) -> _Exchange | None:
        """The oldest pending request under (PID, MID) that this response answers."""
        for exchange in self._pending.get(key, ()):
            if exchange.command == command:
                return exchange
        return None

    def _remember_file(self, file: OpenFile) -> None:
        """Remember an open file; when too many are open, the oldest is forgotten (counted) and
        the calls left on it, if it is a pipe, are reported."""
        pushed_out = remember(self._files, file.key, file, MAX_FILES, self._diag, _STATE_EVICTED)
        if pushed_out is not None:
            self._file_gone(pushed_out)


def _carries_data(header: rec.Header) -> bool:
    """Success, or a named pipe's STATUS_BUFFER_OVERFLOW: the rest of the message follows."""
    return header.status == 0 or (
        bool(header.flags2 & rec.SMB_FLAGS2_NT_STATUS) and header.status == STATUS_BUFFER_OVERFLOW
    )


def _overflow(item: _Item) -> bool:
    return item.trans is not None and (item.trans[0].overflow or item.trans[1].overflow)


def _file_id(fid: int) -> str:
    return f"{fid:04x}"


_REQUESTS: Final[dict[int, RequestHandler]] = {
    rec.SMB_COM_NEGOTIATE: Smb1Decoder._negotiate_request,
    rec.SMB_COM_SESSION_SETUP_ANDX: Smb1Decoder._session_setup_request,
    rec.SMB_COM_LOGOFF_ANDX: Smb1Decoder._logoff_request,
    rec.SMB_COM_TREE_CONNECT_ANDX: Smb1Decoder._tree_connect_request,
    rec.SMB_COM_TREE_DISCONNECT: Smb1Decoder._tree_disconnect_request,
    rec.SMB_COM_NT_CREATE_ANDX: Smb1Decoder._nt_create_request,
    rec.SMB_COM_OPEN_ANDX: Smb1Decoder._open_request,
    rec.SMB_COM_CLOSE: Smb1Decoder._close_request,
    rec.SMB_COM_READ_ANDX: Smb1Decoder._read_request,
    rec.SMB_COM_WRITE_ANDX: Smb1Decoder._write_request,
    rec.SMB_COM_DELETE: Smb1Decoder._delete_request,
    rec.SMB_COM_CREATE_DIRECTORY: Smb1Decoder._create_directory_request,
    rec.SMB_COM_DELETE_DIRECTORY: Smb1Decoder._delete_request,
    rec.SMB_COM_RENAME: Smb1Decoder._rename_request,
    rec.SMB_COM_NT_RENAME: Smb1Decoder._rename_request,
    rec.SMB_COM_TRANSACTION: Smb1Decoder._transaction_request,
    rec.SMB_COM_TRANSACTION2: Smb1Decoder._transaction_request,
    rec.SMB_COM_NT_TRANSACT: Smb1Decoder._transaction_request,
}
_RESPONSES: Final[dict[int, ResponseHandler]] = {
    rec.SMB_COM_NEGOTIATE: Smb1Decoder._negotiate_response,
    rec.SMB_COM_SESSION_SETUP_ANDX: Smb1Decoder._session_setup_response,
    rec.SMB_COM_LOGOFF_ANDX: Smb1Decoder._logoff_response,
    rec.SMB_COM_TREE_CONNECT_ANDX: Smb1Decoder._tree_connect_response,
    rec.SMB_COM_TREE_DISCONNECT: Smb1Decoder._tree_disconnect_response,
    rec.SMB_COM_NT_CREATE_ANDX: Smb1Decoder._nt_create_response,
    rec.SMB_COM_OPEN_ANDX: Smb1Decoder._nt_create_response,
    rec.SMB_COM_CLOSE: Smb1Decoder._close_response,
    rec.SMB_COM_READ_ANDX: Smb1Decoder._read_response,
    rec.SMB_COM_WRITE_ANDX: Smb1Decoder._write_response,
    rec.SMB_COM_DELETE: Smb1Decoder._plain_response,
    rec.SMB_COM_CREATE_DIRECTORY: Smb1Decoder._plain_response,
    rec.SMB_COM_DELETE_DIRECTORY: Smb1Decoder._plain_response,
    rec.SMB_COM_RENAME: Smb1Decoder._plain_response,
    rec.SMB_COM_NT_RENAME: Smb1Decoder._plain_response,
    rec.SMB_COM_TRANSACTION: Smb1Decoder._transaction_response,
    rec.SMB_COM_TRANSACTION2: Smb1Decoder._transaction_response,
    rec.SMB_COM_NT_TRANSACT: Smb1Decoder._transaction_response,
}
# What a response whose request was not seen still tells
_ORPHAN_ACTIONS: Final = {
    rec.SMB_COM_NEGOTIATE: "negotiate",
    rec.SMB_COM_SESSION_SETUP_ANDX: "logon",
    rec.SMB_COM_LOGOFF_ANDX: "logoff",
    rec.SMB_COM_TREE_CONNECT_ANDX: "tree_connect",
    rec.SMB_COM_TREE_DISCONNECT: "tree_disconnect",
    rec.SMB_COM_NT_CREATE_ANDX: "open",
    rec.SMB_COM_OPEN_ANDX: "open",
    rec.SMB_COM_CLOSE: "close",
    rec.SMB_COM_READ_ANDX: "read",
    rec.SMB_COM_WRITE_ANDX: "write",
}
