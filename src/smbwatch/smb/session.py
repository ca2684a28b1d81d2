"""What SMB1 and SMB2 share above their messages: sessions, trees and open files, and what the
events on them say.

Both decoders keep the same kinds of state — who logged on (``Session``), which share a tree is
(``Tree``), what an open file or named pipe is (``OpenFile``) — in bounded tables (``remember``),
and describe events from them the same way. The rules that must not differ between the dialects
live here once: how a UNC path splits, when a tree is a named pipe's, how a logon names its user
and server, how a pipe's bytes become ``rpc_call`` events, and how a file's close reports what
crossed the wire. These are helpers each decoder calls with its own tables (keyed by SMB2's
SessionId/TreeId/FileId or SMB1's UID/TID/FID), not a state object of their own.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from smbwatch.capture.flows import starts_dcerpc_bind
from smbwatch.dcerpc.events import call_fields
from smbwatch.dcerpc.pipe import RpcCall, RpcPipe
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.transfers import FileData, FileTracker
from smbwatch.smb import fscc, gssapi, ntlmssp

SNIFF_WINDOW: Final = 512  # data bytes kept from a file WRITE/READ: enough to recognise its type
MAX_FILES: Final = 4096
MAX_TREES: Final = 1024
MAX_SESSIONS: Final = 256
IPC_SHARE: Final = "IPC$"
# The event's action by CreateAction: superseded, opened, created, overwritten
ACTION_BY_CREATE_ACTION: Final = ("create", "open", "create", "create")
_MALFORMED: Final = (ValueError, struct.error, IndexError)


def split_unc(unc: str) -> tuple[str | None, str | None]:
    r"""(server, share name) of ``\\SERVER\SHARE``: a bare name is a share on no named server,
    what follows the share's name is not part of it, and a part that is empty is None."""
    if not unc.startswith("\\\\"):
        return None, unc or None
    server, _, rest = unc[2:].partition("\\")
    return server or None, rest.partition("\\")[0] or None


def is_pipe_tree(share_type: str | None, share_name: str | None) -> bool:
    """Whether what is opened on a tree is a named pipe: the server said the share is a pipe
    share, or, when it did not say, the share is ``IPC$``."""
    if share_type is not None:
        return share_type == "pipe"
    return share_name is not None and share_name.upper() == IPC_SHARE


def remember(
    table: dict[Any, Any], key: Any, value: Any, limit: int, diagnostics: Diagnostics, kind: str
) -> Any:
    """Put ``value`` in a bounded table; when it is full, the oldest entry is pushed out
    (a warning of ``kind``) and returned, for the caller to report what it held."""
    pushed_out = None
    if key not in table and len(table) >= limit:
        pushed_out = table.pop(next(iter(table)))
        diagnostics.warn(kind, f"more than {limit} sessions, trees, files or searches")
    table[key] = value
    return pushed_out


class Session:
    """What a logon established, for every event on the session."""

    __slots__ = ("user", "domain", "workstation", "auth", "server", "encrypted", "seen_encrypted")

    def __init__(self) -> None:
        self.user: str | None = None
        self.domain: str | None = None
        self.workstation: str | None = None
        self.auth: str | None = None
        self.server: str | None = None  # as the server names itself (NTLM) or the SPN's host
        self.encrypted = False  # SMB2 SESSION_SETUP said SMB2_SESSION_FLAG_ENCRYPT_DATA
        self.seen_encrypted: set[bool] = set()  # directions whose hidden traffic was reported

    def learn(self, logon: SmbEvent) -> None:
        """The identity a successful logon event carries."""
        self.user, self.domain = logon.user, logon.domain
        self.workstation, self.auth = logon.workstation, logon.auth
        self.server = logon.server

    def describe(self, event: SmbEvent) -> None:
        """The session's identity on an event that has none of its own yet."""
        if event.user is None:
            event.user, event.domain = self.user, self.domain
            event.workstation, event.auth = self.workstation, self.auth
            event.server = event.server or self.server
        if self.encrypted:
            event.encrypted = True


class Tree:
    """A connected share, for every event on the tree."""

    __slots__ = ("share", "share_name", "server", "share_type", "encrypted")

    def __init__(
        self,
        share: str | None,
        share_name: str | None,
        server: str | None,
        share_type: str | None = None,
    ) -> None:
        self.share = share
        self.share_name = share_name
        self.server = server
        self.share_type = share_type
        self.encrypted = False  # SMB2: the share, or its session, encrypts

    def describe(self, event: SmbEvent) -> None:
        event.share, event.share_name = self.share, self.share_name
        event.share_type = self.share_type
        event.server = self.server or event.server
        if self.encrypted:
            event.encrypted = True


FileKey = int | bytes  # an SMB1 FID, an SMB2 FileId: what the decoders' file tables are keyed by


class OpenFile:
    """An open file or named pipe: where events on it belong, and what it carries (the DCE/RPC
    state of a pipe, what crossed the wire of a file)."""

    __slots__ = ("key", "file_id", "session_id", "tree_id", "path", "pipe", "rpc", "data")

    def __init__(
        self,
        key: FileKey,
        file_id: str,
        session_id: int,
        tree_id: int | None,
        path: str | None,
        pipe: str | None,
    ) -> None:
        self.key = key  # SMB2 FileId or SMB1 FID as on the wire: its key in the decoder's table
        self.file_id = file_id  # ... as events show it
        self.session_id = session_id
        self.tree_id = tree_id
        self.path = path
        self.pipe = pipe  # the pipe's name when this is an open named pipe
        self.rpc: RpcPipe | None = None  # the DCE/RPC reader of an open pipe
        self.data: FileData | None = None  # what crossed the wire of a file (not a pipe)

    def opened(self, diagnostics: Diagnostics, end_of_file: int | None) -> None:
        """The open succeeded: a pipe gets its DCE/RPC reader, a file its data's account."""
        if self.pipe is not None:
            self.rpc = RpcPipe(diagnostics, self.pipe)
        elif self.data is None:
            self.data = FileData(end_of_file)
        else:
            self.data.end_of_file = end_of_file

    def pipe_by_bind(
        self, data: bytes, start: int, tree: Tree | None, diagnostics: Diagnostics
    ) -> str | None:
        """The pipe's name when this open, not known as a named pipe, turns out to be one: the
        first bytes written to it (``data[start:]``) are a DCE/RPC BIND, as when the pipe was
        opened on a tree whose connect the capture missed. It then gets its DCE/RPC reader and
        is named by the name it was opened with. A share the server called a disk or printer
        share has no pipes, and an open that data went to already is a file: None."""
        name = self.path
        if self.pipe is not None or name is None or not starts_dcerpc_bind(data, start):
            return None
        if tree is not None and tree.share_type not in (None, "pipe"):
            return None
        if self.data is not None and self.data.last_seen is not None:
            return None
        self.pipe, self.data = name, None
        self.rpc = RpcPipe(diagnostics, name)
        return name

    def pipe_data(
        self,
        from_client: bool,
        data: bytes,
        length: int,
        time: int,
        frame: int,
        diagnostics: Diagnostics,
        kind: str,
    ) -> list[RpcCall]:
        """Bytes written to or read from the pipe (``length`` announced, ``data`` present): the
        DCE/RPC calls they complete. Bytes missing from the message are a gap in the stream."""
        if self.rpc is None or not length:
            return []
        if len(data) != length:
            diagnostics.warn(kind, f"{self.pipe}: {len(data)} of {length}")
            self.rpc.gap(from_client)
            return []
        return self.rpc.feed(from_client, data, time, frame)


# An event on an open file, of the decoder's making: action, file, time, frame. It carries what
# the connection, session and tree say; the helpers below add what the file says.
FileEvent = Callable[[str, OpenFile, int, int], SmbEvent]


def rpc_events(file: OpenFile, calls: list[RpcCall], new_event: FileEvent) -> list[SmbEvent]:
    """An ``rpc_call`` event per completed call on a pipe, at the time and frame of its request
    (of its response when the request was not captured)."""
    events = []
    for call in calls:
        if call.request_time is not None and call.request_frame is not None:
            time, frame = call.request_time, call.request_frame
        else:
            time, frame = call.response_time or 0, call.response_frame or 0
        event = new_event("rpc_call", file, time, frame)
        event.path, event.file_id, event.pipe = file.path, file.file_id, file.pipe
        event.update(call_fields(call))
        events.append(event)
    return events


def close_events(
    file: OpenFile | None, event: SmbEvent, tracker: FileTracker, end_of_file: int | None = None
) -> list[SmbEvent]:
    """The close event of ``file``, with what crossed the wire since it was opened or last
    reported (one event per direction); ``end_of_file`` is the size the close gave, if any."""
    if file is None or file.data is None:
        return [event]
    return tracker.report(file.data, event, end_of_file)


def file_gone(file: OpenFile, new_event: FileEvent, tracker: FileTracker) -> list[SmbEvent]:
    """A file closed, pushed out of its table, or still open at the end: the calls left on a
    pipe, and the data not yet reported on a close, on a close event of its own at the time of
    that data."""
    events = []
    if file.rpc is not None:
        events = rpc_events(file, file.rpc.finish(), new_event)
        file.rpc = None
    seen = file.data.last_seen if file.data is not None else None
    if seen is not None:
        event = new_event("close", file, *seen)
        event.path, event.file_id = file.path, file.file_id
        events.extend(close_events(file, event, tracker))
    return events


def describe_create(
    event: SmbEvent,
    desired_access: int,
    share_access: int | None,
    disposition: int,
    create_options: int | None,
) -> None:
    """What a CREATE / NT_CREATE_ANDX asks for, on its event (whose path and tree are known);
    an open on a pipe share names the pipe."""
    event.access_mask = desired_access
    event.share_access = share_access
    event.create_options = create_options
    if disposition < len(fscc.CREATE_DISPOSITIONS):
        event.disposition = fscc.CREATE_DISPOSITIONS[disposition]
    if create_options is not None and create_options & fscc.FILE_DELETE_ON_CLOSE:
        event.delete_on_close = True
    if is_pipe_tree(event.share_type, event.share_name):
        event.pipe = event.path


def describe_create_action(event: SmbEvent, create_action: int) -> None:
    """What the server did with an open: FILE_CREATED is a ``create`` event, FILE_OPENED an
    ``open``."""
    if create_action < len(fscc.CREATE_ACTIONS):
        event.create_action = fscc.CREATE_ACTIONS[create_action]
        event.action = ACTION_BY_CREATE_ACTION[create_action]


def logon_identity(
    event: SmbEvent, blob: bytes, diagnostics: Diagnostics, kind: str, frame: int
) -> bool:
    """Who logs on, from the NTLMSSP AUTHENTICATE or the Kerberos ticket in a SESSION_SETUP's
    security blob (whose SPN names the server); False when the blob names no one (an earlier
    NTLMSSP round) or is malformed, which costs the identity (a warning), not the logon."""
    try:
        named = gssapi.fill_identity(event, blob)
    except _MALFORMED as error:
        diagnostics.warn(kind, f"frame {frame}: {error}")
        return False
    if event.spn is not None:
        event.server = _spn_host(event.spn) or event.server
    return named


def challenge_server(blob: bytes, diagnostics: Diagnostics, kind: str, frame: int) -> str | None:
    """The server's own name, from the NTLM CHALLENGE in a SESSION_SETUP response; None when
    there is none, or when the blob is malformed (a warning: it costs only the name)."""
    try:
        token = gssapi.parse_security_buffer(blob)
        if token.ntlmssp is None or (
            ntlmssp.message_type(token.ntlmssp) != ntlmssp.CHALLENGE_MESSAGE
        ):
            return None
        challenge = ntlmssp.parse_challenge(token.ntlmssp)
    except _MALFORMED as error:
        diagnostics.warn(kind, f"frame {frame}: {error}")
        return None
    return challenge.dns_computer_name or challenge.nb_computer_name


def _spn_host(spn: str) -> str | None:
    """``server.domain`` of ``cifs/server.domain``."""
    if "/" not in spn:
        return None
    return spn.split("/")[1] or None
