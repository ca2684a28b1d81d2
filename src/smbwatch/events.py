"""The event contract: one record type for every SMB event, from captures and from Windows logs.

Field names are the stable interface that users, their pipelines, the Sigma field mapping and the
tests rely on (DESIGN.md, "Event contract"). Add fields freely; never rename or drop one, and
document each new one in the README's field table.

``time`` is held as integer microseconds since the Unix epoch (UTC) so that events from every
source sort and subtract exactly; it is rendered as ISO 8601 with a ``Z`` only when serialised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SmbEvent:
    """One SMB event. A field that does not apply stays ``None`` and is left out of the output.

    A plain class with every field declared and defaulted here, so that compiled (setup.py) it is
    a native record whose unset fields cost nothing to create and whose fields are read directly.
    """

    time: int  # microseconds since the Unix epoch, UTC
    source: str  # "network" or "host"
    action: str
    source_format: str | None = None
    source_file: str | None = None
    source_ref: int | None = None  # frame number (network) or event record id (host)
    seen_by: list[str] | None = None  # the case: every source file that saw this message
    event_code: int | None = None  # host: Windows event id
    src_ip: str | None = None  # the client, always
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    src_host: str | None = None  # the case: canonical machine names
    dst_host: str | None = None
    conn_id: str | None = None  # one per TCP connection, the same from every sensor
    server: str | None = None
    user: str | None = None
    domain: str | None = None
    principal: str | None = None  # the case: DOMAIN\user in one form
    workstation: str | None = None
    client_version: str | None = (
        None  # logon: the client OS NTLMSSP names ("10.0 build 19041 rev 15")
    )
    session_id: int | str | None = None  # SMB SessionId (network) / logon id (host, legacy)
    logon_id: str | None = None  # host: the Windows logon id
    tree_id: int | None = None
    file_id: str | None = None  # hex of the SMB2 FileId (persistent+volatile) or SMB1 FID
    file_key: str | None = None  # one per opened file instance
    dialect: str | None = None
    command: str | None = None  # protocol command name (MS-SMB2 "CREATE", MS-CIFS "NT_CREATE_ANDX")
    message_id: int | None = None
    share: str | None = None  # UNC of the share as seen: \\SERVER\C$
    share_name: str | None = None  # C$
    share_type: str | None = None  # disk, pipe, print
    path: str | None = None  # relative to the share, backslashes
    new_path: str | None = None  # rename target
    access_mask: int | None = None
    access_list: list[str] | None = None  # names of the access rights (WriteData, ...)
    share_access: int | None = None
    disposition: str | None = None  # FILE_OPEN, FILE_OVERWRITE_IF, ...
    create_options: int | None = None
    create_action: str | None = None  # FILE_OPENED, FILE_CREATED, ...
    delete_on_close: bool | None = None
    info_class: str | None = None  # set_info / query: FileRenameInformation, ...
    fsctl: str | None = None  # ioctl: FSCTL_PIPE_TRANSCEIVE, ...
    pattern: str | None = None  # query_directory search pattern
    status: str | None = None  # NT status name of the matching response
    bytes: int | None = None  # read/write length
    offset: int | None = None
    file_size: int | None = None
    bytes_seen: int | None = None  # how many distinct bytes of the file crossed the wire
    direction: str | None = None  # files: "upload" (client→server) or "download"
    pipe: str | None = None
    rpc_interface: str | None = None
    rpc_operation: str | None = None
    rpc_opnum: int | None = None
    rpc_status: str | None = None
    rpc_args: dict[str, Any] | None = None
    magic: str | None = None  # PE, ELF, script, ...
    sha256: str | None = None
    sha1: str | None = None
    md5: str | None = None
    encrypted: bool | None = None
    auth: str | None = None  # ntlmssp, kerberos, anonymous, guest, plaintext
    realm: str | None = None  # Kerberos realm
    spn: str | None = None  # Kerberos service principal name
    object_type: str | None = None  # host 5145: File, Directory, ...
    logon_type: int | None = None  # host 4624
    auth_package: str | None = None  # host 4624
    share_path: str | None = None  # host 5142-5144: local path of the share
    service_name: str | None = None  # host 7045/4697
    image_path: str | None = None
    start_type: str | None = None
    service_type: str | None = None
    account: str | None = None
    task_name: str | None = None  # scheduled task: host 4698/4699/4702, wire SchRpc*/NetrJobAdd
    task_command: str | None = None  # what the task runs (its first Exec action)
    task_arguments: str | None = None
    task_author: str | None = None
    task_user: str | None = None  # the principal it runs as (UserId: S-1-5-18 is SYSTEM)
    task_run_level: str | None = None  # HighestAvailable, LeastPrivilege
    target_user: str | None = None  # host 4742: the account changed
    time_precision: str | None = None  # "s" or "ms" when the source's clock had no more
    links: list[dict[str, Any]] | None = None  # the case: the other side's records of it
    filled_from: dict[str, Any] | None = None  # the case: fields filled from the other side
    missing_from_log: bool | None = None  # the case: the server's log lacks this action

    def __init__(self, time: int = 0, source: str = "", action: str = "", **fields: Any) -> None:
        self.time = time
        self.source = source
        self.action = action
        self.session_id = None  # compiled, the class default of this int | str field is not applied
        if fields:
            self.update(fields)

    def update(self, fields: dict[str, Any]) -> None:
        """Set the fields named (a name that is no field is a ``TypeError``). By name, so
        slower than setting each: for fields chosen at run time."""
        for name, value in fields.items():
            if name not in _FIELD_SET:
                raise TypeError(f"SmbEvent has no field {name!r}")
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object the contract describes (ISO time, no null fields)."""
        out = self.fields()
        text = format_time(self.time, self.time_precision)
        if text is None:
            del out["time"]  # a time no date can show (the reader warned): left out
        else:
            out["time"] = text
        return out

    def fields(self) -> dict[str, Any]:
        """The fields that are set, in the contract's order, as held (``time`` in µs).

        Field by field: compiled, this is a few nanoseconds a field, where a loop over the
        names would look each one up by name (``tests/test_events.py`` checks none is missed).
        """
        out: dict[str, Any] = {"time": self.time, "source": self.source, "action": self.action}
        if self.source_format is not None:
            out["source_format"] = self.source_format
        if self.source_file is not None:
            out["source_file"] = self.source_file
        if self.source_ref is not None:
            out["source_ref"] = self.source_ref
        if self.seen_by is not None:
            out["seen_by"] = self.seen_by
        if self.event_code is not None:
            out["event_code"] = self.event_code
        if self.src_ip is not None:
            out["src_ip"] = self.src_ip
        if self.src_port is not None:
            out["src_port"] = self.src_port
        if self.dst_ip is not None:
            out["dst_ip"] = self.dst_ip
        if self.dst_port is not None:
            out["dst_port"] = self.dst_port
        if self.src_host is not None:
            out["src_host"] = self.src_host
        if self.dst_host is not None:
            out["dst_host"] = self.dst_host
        if self.conn_id is not None:
            out["conn_id"] = self.conn_id
        if self.server is not None:
            out["server"] = self.server
        if self.user is not None:
            out["user"] = self.user
        if self.domain is not None:
            out["domain"] = self.domain
        if self.principal is not None:
            out["principal"] = self.principal
        if self.workstation is not None:
            out["workstation"] = self.workstation
        if self.client_version is not None:
            out["client_version"] = self.client_version
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.logon_id is not None:
            out["logon_id"] = self.logon_id
        if self.tree_id is not None:
            out["tree_id"] = self.tree_id
        if self.file_id is not None:
            out["file_id"] = self.file_id
        if self.file_key is not None:
            out["file_key"] = self.file_key
        if self.dialect is not None:
            out["dialect"] = self.dialect
        if self.command is not None:
            out["command"] = self.command
        if self.message_id is not None:
            out["message_id"] = self.message_id
        if self.share is not None:
            out["share"] = self.share
        if self.share_name is not None:
            out["share_name"] = self.share_name
        if self.share_type is not None:
            out["share_type"] = self.share_type
        if self.path is not None:
            out["path"] = self.path
        if self.new_path is not None:
            out["new_path"] = self.new_path
        if self.access_mask is not None:
            out["access_mask"] = self.access_mask
        if self.access_list is not None:
            out["access_list"] = self.access_list
        if self.share_access is not None:
            out["share_access"] = self.share_access
        if self.disposition is not None:
            out["disposition"] = self.disposition
        if self.create_options is not None:
            out["create_options"] = self.create_options
        if self.create_action is not None:
            out["create_action"] = self.create_action
        if self.delete_on_close is not None:
            out["delete_on_close"] = self.delete_on_close
        if self.info_class is not None:
            out["info_class"] = self.info_class
        if self.fsctl is not None:
            out["fsctl"] = self.fsctl
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.status is not None:
            out["status"] = self.status
        if self.bytes is not None:
            out["bytes"] = self.bytes
        if self.offset is not None:
            out["offset"] = self.offset
        if self.file_size is not None:
            out["file_size"] = self.file_size
        if self.bytes_seen is not None:
            out["bytes_seen"] = self.bytes_seen
        if self.direction is not None:
            out["direction"] = self.direction
        if self.pipe is not None:
            out["pipe"] = self.pipe
        if self.rpc_interface is not None:
            out["rpc_interface"] = self.rpc_interface
        if self.rpc_operation is not None:
            out["rpc_operation"] = self.rpc_operation
        if self.rpc_opnum is not None:
            out["rpc_opnum"] = self.rpc_opnum
        if self.rpc_status is not None:
            out["rpc_status"] = self.rpc_status
        if self.rpc_args is not None:
            out["rpc_args"] = self.rpc_args
        if self.magic is not None:
            out["magic"] = self.magic
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.sha1 is not None:
            out["sha1"] = self.sha1
        if self.md5 is not None:
            out["md5"] = self.md5
        if self.encrypted is not None:
            out["encrypted"] = self.encrypted
        if self.auth is not None:
            out["auth"] = self.auth
        if self.realm is not None:
            out["realm"] = self.realm
        if self.spn is not None:
            out["spn"] = self.spn
        if self.object_type is not None:
            out["object_type"] = self.object_type
        if self.logon_type is not None:
            out["logon_type"] = self.logon_type
        if self.auth_package is not None:
            out["auth_package"] = self.auth_package
        if self.share_path is not None:
            out["share_path"] = self.share_path
        if self.service_name is not None:
            out["service_name"] = self.service_name
        if self.image_path is not None:
            out["image_path"] = self.image_path
        if self.start_type is not None:
            out["start_type"] = self.start_type
        if self.service_type is not None:
            out["service_type"] = self.service_type
        if self.account is not None:
            out["account"] = self.account
        if self.task_name is not None:
            out["task_name"] = self.task_name
        if self.task_command is not None:
            out["task_command"] = self.task_command
        if self.task_arguments is not None:
            out["task_arguments"] = self.task_arguments
        if self.task_author is not None:
            out["task_author"] = self.task_author
        if self.task_user is not None:
            out["task_user"] = self.task_user
        if self.task_run_level is not None:
            out["task_run_level"] = self.task_run_level
        if self.target_user is not None:
            out["target_user"] = self.target_user
        if self.time_precision is not None:
            out["time_precision"] = self.time_precision
        if self.links is not None:
            out["links"] = self.links
        if self.filled_from is not None:
            out["filled_from"] = self.filled_from
        if self.missing_from_log is not None:
            out["missing_from_log"] = self.missing_from_log
        return out

    def store_in(self, columns: list[list[Any]], row: int) -> None:
        """Put every field at ``row`` of ``columns`` (one list per field, in the contract's
        order; None where unset), for columnar stores. Field by field, as ``fields()``."""
        columns[0][row] = self.time
        columns[1][row] = self.source
        columns[2][row] = self.action
        columns[3][row] = self.source_format
        columns[4][row] = self.source_file
        columns[5][row] = self.source_ref
        columns[6][row] = self.seen_by
        columns[7][row] = self.event_code
        columns[8][row] = self.src_ip
        columns[9][row] = self.src_port
        columns[10][row] = self.dst_ip
        columns[11][row] = self.dst_port
        columns[12][row] = self.src_host
        columns[13][row] = self.dst_host
        columns[14][row] = self.conn_id
        columns[15][row] = self.server
        columns[16][row] = self.user
        columns[17][row] = self.domain
        columns[18][row] = self.principal
        columns[19][row] = self.workstation
        columns[20][row] = self.client_version
        columns[21][row] = self.session_id
        columns[22][row] = self.logon_id
        columns[23][row] = self.tree_id
        columns[24][row] = self.file_id
        columns[25][row] = self.file_key
        columns[26][row] = self.dialect
        columns[27][row] = self.command
        columns[28][row] = self.message_id
        columns[29][row] = self.share
        columns[30][row] = self.share_name
        columns[31][row] = self.share_type
        columns[32][row] = self.path
        columns[33][row] = self.new_path
        columns[34][row] = self.access_mask
        columns[35][row] = self.access_list
        columns[36][row] = self.share_access
        columns[37][row] = self.disposition
        columns[38][row] = self.create_options
        columns[39][row] = self.create_action
        columns[40][row] = self.delete_on_close
        columns[41][row] = self.info_class
        columns[42][row] = self.fsctl
        columns[43][row] = self.pattern
        columns[44][row] = self.status
        columns[45][row] = self.bytes
        columns[46][row] = self.offset
        columns[47][row] = self.file_size
        columns[48][row] = self.bytes_seen
        columns[49][row] = self.direction
        columns[50][row] = self.pipe
        columns[51][row] = self.rpc_interface
        columns[52][row] = self.rpc_operation
        columns[53][row] = self.rpc_opnum
        columns[54][row] = self.rpc_status
        columns[55][row] = self.rpc_args
        columns[56][row] = self.magic
        columns[57][row] = self.sha256
        columns[58][row] = self.sha1
        columns[59][row] = self.md5
        columns[60][row] = self.encrypted
        columns[61][row] = self.auth
        columns[62][row] = self.realm
        columns[63][row] = self.spn
        columns[64][row] = self.object_type
        columns[65][row] = self.logon_type
        columns[66][row] = self.auth_package
        columns[67][row] = self.share_path
        columns[68][row] = self.service_name
        columns[69][row] = self.image_path
        columns[70][row] = self.start_type
        columns[71][row] = self.service_type
        columns[72][row] = self.account
        columns[73][row] = self.task_name
        columns[74][row] = self.task_command
        columns[75][row] = self.task_arguments
        columns[76][row] = self.task_author
        columns[77][row] = self.task_user
        columns[78][row] = self.task_run_level
        columns[79][row] = self.target_user
        columns[80][row] = self.time_precision
        columns[81][row] = self.links
        columns[82][row] = self.filled_from
        columns[83][row] = self.missing_from_log

    def load_from(self, columns: list[list[Any]], row: int) -> None:
        """Set every field from ``row`` of ``columns`` (as ``store_in`` put them): the way back,
        for events handed between processes as columns. Field by field, as ``store_in``."""
        self.time = columns[0][row]
        self.source = columns[1][row]
        self.action = columns[2][row]
        self.source_format = columns[3][row]
        self.source_file = columns[4][row]
        self.source_ref = columns[5][row]
        self.seen_by = columns[6][row]
        self.event_code = columns[7][row]
        self.src_ip = columns[8][row]
        self.src_port = columns[9][row]
        self.dst_ip = columns[10][row]
        self.dst_port = columns[11][row]
        self.src_host = columns[12][row]
        self.dst_host = columns[13][row]
        self.conn_id = columns[14][row]
        self.server = columns[15][row]
        self.user = columns[16][row]
        self.domain = columns[17][row]
        self.principal = columns[18][row]
        self.workstation = columns[19][row]
        self.client_version = columns[20][row]
        self.session_id = columns[21][row]
        self.logon_id = columns[22][row]
        self.tree_id = columns[23][row]
        self.file_id = columns[24][row]
        self.file_key = columns[25][row]
        self.dialect = columns[26][row]
        self.command = columns[27][row]
        self.message_id = columns[28][row]
        self.share = columns[29][row]
        self.share_name = columns[30][row]
        self.share_type = columns[31][row]
        self.path = columns[32][row]
        self.new_path = columns[33][row]
        self.access_mask = columns[34][row]
        self.access_list = columns[35][row]
        self.share_access = columns[36][row]
        self.disposition = columns[37][row]
        self.create_options = columns[38][row]
        self.create_action = columns[39][row]
        self.delete_on_close = columns[40][row]
        self.info_class = columns[41][row]
        self.fsctl = columns[42][row]
        self.pattern = columns[43][row]
        self.status = columns[44][row]
        self.bytes = columns[45][row]
        self.offset = columns[46][row]
        self.file_size = columns[47][row]
        self.bytes_seen = columns[48][row]
        self.direction = columns[49][row]
        self.pipe = columns[50][row]
        self.rpc_interface = columns[51][row]
        self.rpc_operation = columns[52][row]
        self.rpc_opnum = columns[53][row]
        self.rpc_status = columns[54][row]
        self.rpc_args = columns[55][row]
        self.magic = columns[56][row]
        self.sha256 = columns[57][row]
        self.sha1 = columns[58][row]
        self.md5 = columns[59][row]
        self.encrypted = columns[60][row]
        self.auth = columns[61][row]
        self.realm = columns[62][row]
        self.spn = columns[63][row]
        self.object_type = columns[64][row]
        self.logon_type = columns[65][row]
        self.auth_package = columns[66][row]
        self.share_path = columns[67][row]
        self.service_name = columns[68][row]
        self.image_path = columns[69][row]
        self.start_type = columns[70][row]
        self.service_type = columns[71][row]
        self.account = columns[72][row]
        self.task_name = columns[73][row]
        self.task_command = columns[74][row]
        self.task_arguments = columns[75][row]
        self.task_author = columns[76][row]
        self.task_user = columns[77][row]
        self.task_run_level = columns[78][row]
        self.target_user = columns[79][row]
        self.time_precision = columns[80][row]
        self.links = columns[81][row]
        self.filled_from = columns[82][row]
        self.missing_from_log = columns[83][row]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SmbEvent):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in FIELD_NAMES)

    def __repr__(self) -> str:
        return f"SmbEvent({self.to_dict()!r})"

    def copy(self, **changes: Any) -> SmbEvent:
        """A shallow copy with ``changes`` made (a delete-on-close create is also reported as the
        delete it is; a close that moved data both ways, once per direction)."""
        row = _COPIED  # every field, through one row (no dicts, no names looked up)
        self.store_in(row, 0)
        twin = SmbEvent()
        twin.load_from(row, 0)
        if changes:
            twin.update(changes)
        return twin


# The declared fields in order: the class annotations as written, or, compiled, the attribute
# list mypyc keeps for pickling (a compiled class has no annotations at run time).
_declared: dict[str, Any] = getattr(SmbEvent, "__annotations__", None) or {}
FIELD_NAMES: tuple[str, ...] = tuple(_declared) or getattr(SmbEvent, "__mypyc_attrs__", ())
_FIELD_SET: Final = frozenset(FIELD_NAMES)
FIELD_COUNT: Final = len(FIELD_NAMES)
# The row ``SmbEvent.copy`` passes the fields through: filled and read back with nothing
# between that could let another thread run.
_COPIED: Final = [[None] for _ in range(FIELD_COUNT)]


def columns(events: list[SmbEvent]) -> list[list[Any]]:
    """The events field by field, for columnar stores (Arrow, the case): one list per field in
    the contract's order, None where an event does not set it. Compiled, an event costs a
    few nanoseconds a field."""
    count = len(events)
    out: list[list[Any]] = [[None] * count for _ in range(FIELD_COUNT)]
    for row in range(count):
        events[row].store_in(out, row)
    return out


def from_stored(stored: list[list[Any]], count: int) -> list[SmbEvent]:
    """``count`` events from every field's column, as ``columns`` gives them (between
    processes, columns cost a fraction of pickling each event, and load back as fast)."""
    events = []
    for row in range(count):
        event = SmbEvent()
        event.load_from(stored, row)
        events.append(event)
    return events


def from_columns(values: dict[str, list[Any]], count: int) -> list[SmbEvent]:
    """``count`` events from lists of field values (None: unset), as ``columns`` gives them:
    the way back from a columnar store. The names must be fields and the values of their
    types (compiled, a wrong type raises ``TypeError``)."""
    events = [SmbEvent() for _ in range(count)]
    for name, column in values.items():
        for index in range(count):
            value = column[index]
            if value is not None:
                setattr(events[index], name, value)
    return events


# The times a date can show (years 1 to 9999, as ``datetime``): a reader that meets another (a
# hostile capture or log) counts a warning, and the time is left out of what is written.
MIN_TIME: Final = -62_135_596_800 * 1_000_000
MAX_TIME: Final = 253_402_300_800 * 1_000_000 - 1


def time_in_range(micros: int) -> bool:
    """Whether ``format_time`` can write this time."""
    return MIN_TIME <= micros <= MAX_TIME


def format_time(micros: int, precision: str | None = None) -> str | None:
    """ISO 8601 UTC with microseconds and ``Z``, exact (no float rounding); None for a time out
    of ``time_in_range``. Every event is written with one: the text up to the second is cached,
    the microseconds are appended.

    ``precision`` ``"s"`` or ``"ms"`` (``SmbEvent.time_precision``): a clock that had only
    whole seconds or milliseconds is written with the digits it had, and no invented ones.
    """
    seconds, fraction = divmod(micros, 1_000_000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if not MIN_TIME <= micros <= MAX_TIME:
            return None
        if len(_SECONDS) >= MAX_SECONDS_CACHED:
            _SECONDS.clear()
        moment = _EPOCH + timedelta(seconds=seconds)
        prefix = _SECONDS[seconds] = moment.strftime("%Y-%m-%dT%H:%M:%S.")
    if precision == "s":
        return prefix[:-1] + "Z"
    if precision == "ms":
        return prefix + str(1_000 + fraction // 1000)[1:] + "Z"
    return prefix + str(1_000_000 + fraction)[1:] + "Z"


MAX_SECONDS_CACHED: Final = 4096
_SECONDS: dict[int, str] = {}


MAX_DATETIMES_CACHED: Final = 4096
_DATETIMES: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" → seconds since the epoch (UTC)


def parse_time(text: str) -> int:
    """Microseconds since the epoch from an ISO 8601 time (any offset; naive means UTC).

    Windows logs carry 100 ns precision (7 digits); the extra digit is truncated. The forms
    logs write for every record (``2026-12-06 16:54:59``, ``2026-12-06T16:54:59.454Z``) take a
    fast path: the date and time of day are read once per second of the log (records come
    many to a second), the fraction on its own.
    """
    text = text.strip()
    if len(text) >= 19 and text[4] == "-" and text[13] == ":" and text[16] == ":":
        micros = _usual_time(text)
        if micros is not None:
            return micros
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    moment = datetime.fromisoformat(text)
    return _micros(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def _usual_time(text: str) -> int | None:
    """``parse_time`` of ``YYYY-MM-DD?HH:MM:SS``, then nothing, ``Z``, or a fraction and
    maybe ``Z`` (UTC either way); None for any other form (or a date that is none)."""
    tail = text[19:]
    fraction = 0
    if tail and tail != "Z":
        digits = tail[1:-1] if tail[-1] == "Z" else tail[1:]
        if tail[0] != "." or not (digits.isascii() and digits.isdigit()):
            return None
        fraction = int((digits + "000000")[:6])
    head = text[:19]
    seconds = _DATETIMES.get(head)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(head)
        except ValueError:
            return None  # the general parser says what is wrong
        if moment.tzinfo is not None:
            return None
        seconds = _micros(moment.replace(tzinfo=UTC)) // 1_000_000  # whole: no fraction
        if len(_DATETIMES) >= MAX_DATETIMES_CACHED:
            _DATETIMES.clear()
        _DATETIMES[head] = seconds
    return seconds * 1_000_000 + fraction


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware time."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def share_class(share_name: str | None) -> str | None:
    """``admin`` for ADMIN$ and drive shares (C$, D$...), ``ipc`` for IPC$, else ``disk``."""
    if not share_name:
        return None
    name = share_name.upper()
    if name == "IPC$":
        return "ipc"
    if name == "ADMIN$" or (len(name) == 2 and name[1] == "$" and name[0].isalpha()):
        return "admin"
    return "disk"
