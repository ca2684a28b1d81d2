"""The event record's schema: each field's name, type and meaning, in one place.

``SmbEvent`` (events.py) declares the same fields by hand, in the same order, because compiled it
must be a plain native class (CONTRIBUTING.md, "The compiled build"); ``tests/test_schema.py``
checks that the two agree, and that the README's field table is ``readme_table()``. The column
types of the case's store (case/store.py) and of Parquet (arrow.py) come from ``kind``.

Kinds, as the README names them:
  time       microseconds since the epoch, UTC (written ISO 8601 with ``Z``)
  text       a string
  integer    a signed 64-bit integer
  unsigned   an unsigned 64-bit integer (64-bit protocol fields: MessageId, offsets, sizes)
  boolean    true or false
  text list  a list of strings
  object     a JSON object
  object list  a list of JSON objects
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TIME: Final = "time"
TEXT: Final = "text"
INTEGER: Final = "integer"
UNSIGNED: Final = "unsigned"
BOOLEAN: Final = "boolean"
TEXT_LIST: Final = "text list"
OBJECT: Final = "object"
OBJECT_LIST: Final = "object list"

# The Python annotation each kind is declared with in SmbEvent (None: the field may be unset).
ANNOTATIONS: Final = {
    TIME: "int | None",
    TEXT: "str | None",
    INTEGER: "int | None",
    UNSIGNED: "int | None",
    BOOLEAN: "bool | None",
    TEXT_LIST: "list[str] | None",
    OBJECT: "dict[str, Any] | None",
    OBJECT_LIST: "list[dict[str, Any]] | None",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the event record."""

    name: str
    kind: str
    meaning: str
    annotation: str = ""  # when SmbEvent declares it otherwise than its kind says
    required: bool = False  # every event has it (time, source, action)

    @property
    def python(self) -> str:
        """The annotation SmbEvent declares the field with."""
        if self.annotation:
            return self.annotation
        declared = ANNOTATIONS[self.kind]
        return declared.removesuffix(" | None") if self.required else declared


FIELDS: Final[tuple[Field, ...]] = (
    Field(
        "time",
        TIME,
        "ISO 8601 UTC with `Z`, with microseconds (the request's time for request/response "
        "pairs); with fewer digits where the source's clock had fewer (see `time_precision`)",
        required=True,
    ),
    Field("source", TEXT, "`network` or `host`", required=True),
    Field(
        "action",
        TEXT,
        "`negotiate`, `logon`, `logoff`, `tree_connect`, `tree_disconnect`, `open`, `create`, "
        "`read`, `write`, `close`, `delete`, `rename`, `set_info`, `query_info` (SMB2 "
        "QUERY_INFO, SMB1 TRANS2_QUERY_PATH/FILE/FS_INFORMATION), `query_directory`, `ioctl`, "
        "`rpc_call`, `encrypted`, `access_check` (host 5145), `share_change` (5142-5144), "
        "`service_install` (host 7045/4697), `task_create`/`task_update`/`task_delete` (host "
        "4698/4702/4699), `account_change` (host 4742)",
        required=True,
    ),
    Field("source_format", TEXT, "`pcap`, `pcapng`, `live`, `evtx`, `xml`, `json`, `splunk`"),
    Field("source_file", TEXT, "the input file the event was read from"),
    Field(
        "source_ref",
        UNSIGNED,
        "network: the frame number where the request began; host: the event record id",
    ),
    Field(
        "seen_by",
        TEXT_LIST,
        "case and `timeline`: every source file that saw this SMB message or host record "
        "(two sensors on one connection, two exports of one log); it is shown and counted once",
    ),
    Field("event_code", INTEGER, "host events: the Windows event id (5140, 5145, ...)"),
    Field("src_ip", TEXT, "the client's address (the client is always `src`)"),
    Field("src_port", INTEGER, "the client's TCP port"),
    Field("dst_ip", TEXT, "the server's address"),
    Field("dst_port", INTEGER, "the server's TCP port"),
    Field(
        "src_host",
        TEXT,
        "case and `timeline`: the client machine's one name, resolved from what the inputs say "
        "(see the `hosts` table); the address when no name is known",
    ),
    Field(
        "dst_host",
        TEXT,
        "case and `timeline`: the server machine's one name (host records: the logging "
        "computer), as `src_host`",
    ),
    Field(
        "conn_id",
        TEXT,
        "network: one id per TCP connection, the same from every sensor that saw it: `C` and a "
        "hash of the 4-tuple and the client's initial sequence number (from the SYN; for DCE/RPC"
        " over TCP, from its BIND); `T` and a hash of the 4-tuple alone when the capture missed "
        "the SYN (two such connections on one 4-tuple share it)",
    ),
    Field(
        "server",
        TEXT,
        "server name when known (from the UNC path, or the logging computer)",
    ),
    Field("user", TEXT, "the user as the source names it (NTLMSSP, Kerberos, or the log)"),
    Field("domain", TEXT, "the user's domain as the source names it"),
    Field(
        "principal",
        TEXT,
        "case and `timeline`: the user in one form, `DOMAIN\\user` with the NetBIOS domain "
        "(`THESHIRE\\pgustavo` whether the log said `THESHIRE.LOCAL` or `pgustavo@theshire.local`;"
        " see the `users` table)",
    ),
    Field("workstation", TEXT, "the client's name as NTLMSSP or the log (4624) states it"),
    Field(
        "client_version",
        TEXT,
        "logon: the client's OS version as NTLMSSP states it (`10.0 build 19041 rev 15`)",
    ),
    Field(
        "session_id",
        UNSIGNED,
        "network: the SMB SessionId (SMB1: UID); host: the logon id as text, as `logon_id` "
        "(kept for older readers; in the case's store the host's is in `logon_id` only)",
        annotation="int | str | None",
    ),
    Field(
        "logon_id",
        TEXT,
        "host: the Windows logon id (`0x3e7`; 4624 TargetLogonId, else SubjectLogonId)",
    ),
    Field("tree_id", INTEGER, "SMB TreeId (SMB1: TID)"),
    Field("file_id", TEXT, "hex of the SMB2 FileId (persistent and volatile) or the SMB1 FID"),
    Field(
        "file_key",
        TEXT,
        "network: one id per opened file instance (from its open to its close), the same from "
        "every sensor: a hash of `conn_id`, the file id and the open's message id",
    ),
    Field("dialect", TEXT, "`NT LM 0.12`, `2.0.2`, `2.1`, `3.0`, `3.0.2`, `3.1.1`"),
    Field(
        "command",
        TEXT,
        "protocol command (MS-SMB2 `CREATE`, MS-CIFS `SMB_COM_NT_CREATE_ANDX`)",
    ),
    Field("message_id", UNSIGNED, "SMB2 MessageId / SMB1 MID of the request"),
    Field(
        "share", TEXT, "UNC of the share as seen (`\\\\WORKSTATION6\\C$`; host logs `\\\\*\\C$`)"
    ),
    Field("share_name", TEXT, "`C$`"),
    Field("share_type", TEXT, "`disk`, `pipe`, `print`"),
    Field("path", TEXT, "path relative to the share, backslashes (`ProgramData\\GruntHTTP.exe`)"),
    Field("new_path", TEXT, "rename target"),
    Field("access_mask", INTEGER, "requested access"),
    Field("access_list", TEXT_LIST, "the names of the access rights requested (`WriteData`, ...)"),
    Field("share_access", INTEGER, "CREATE ShareAccess"),
    Field("disposition", TEXT, "CREATE disposition (`FILE_OVERWRITE_IF`...)"),
    Field("create_options", INTEGER, "CREATE options"),
    Field(
        "create_action",
        TEXT,
        "what the server did: `FILE_OPENED`, `FILE_CREATED`, `FILE_OVERWRITTEN`, `FILE_SUPERSEDED`",
    ),
    Field("delete_on_close", BOOLEAN, "the open deletes the file when closed"),
    Field(
        "info_class",
        TEXT,
        "SET_INFO / QUERY_INFO class: MS-FSCC's names (`FileRenameInformation`, "
        "`FileFsSizeInformation`...), MS-SMB2's InfoType for security and quota "
        "(`SMB2_0_INFO_SECURITY`), MS-CIFS's for SMB1 levels (`SMB_QUERY_FILE_ALL_INFO`)",
    ),
    Field(
        "fsctl",
        TEXT,
        "IOCTL control code name (`FSCTL_PIPE_TRANSCEIVE`...), from the response when the "
        "request was not captured",
    ),
    Field("pattern", TEXT, "QUERY_DIRECTORY search pattern"),
    Field(
        "status",
        TEXT,
        "NT status name of the matching response (`STATUS_SUCCESS`, `STATUS_ACCESS_DENIED`)",
    ),
    Field("bytes", INTEGER, "read/write length"),
    Field("offset", UNSIGNED, "read/write offset"),
    Field(
        "file_size",
        UNSIGNED,
        "file size when known (CREATE response EndOfFile, or the highest byte seen)",
    ),
    Field(
        "bytes_seen", UNSIGNED, "on a `close`: how many distinct bytes of the file crossed the wire"
    ),
    Field("direction", TEXT, "on a `close`: `upload` (written) or `download` (read)"),
    Field(
        "pipe",
        TEXT,
        "named pipe (also one opened on a tree whose connect was not captured: the DCE/RPC BIND "
        "written to it says it is a pipe)",
    ),
    Field("rpc_interface", TEXT, "DCE/RPC interface (`svcctl`)"),
    Field("rpc_operation", TEXT, "DCE/RPC operation (`CreateServiceW`)"),
    Field("rpc_opnum", INTEGER, "DCE/RPC operation number"),
    Field("rpc_status", TEXT, "the call's status (Win32/NT status/HRESULT name, or the fault)"),
    Field(
        "rpc_args",
        OBJECT,
        "the call's decoded arguments (svcctl, atsvc, ITaskSchedulerService, winreg, srvsvc, "
        "samr, lsarpc, efsrpc, netlogon, drsuapi, DCOM activation, IWbemServices, spoolss, "
        "netdfs)",
    ),
    Field("magic", TEXT, "what the written bytes are (`PE`, `ELF`, `script`, ...)"),
    Field("sha256", TEXT, "hash of a completely seen file"),
    Field(
        "sha1",
        TEXT,
        "hash of a completely seen file (with `--hash` naming sha1; no longer by default)",
    ),
    Field(
        "md5",
        TEXT,
        "hash of a completely seen file (with `--hash` naming md5; no longer by default)",
    ),
    Field("encrypted", BOOLEAN, "true where SMB3 encryption hid the content"),
    Field(
        "auth",
        TEXT,
        "how the session authenticated: `ntlmssp`, `kerberos`, `anonymous`, `guest`; SMB1 "
        "without extended security: `ntlm` (challenge/response) or `plaintext`",
    ),
    Field("realm", TEXT, "Kerberos realm, where visible"),
    Field("spn", TEXT, "Kerberos service principal name, where visible"),
    Field("object_type", TEXT, "host: 5145 ObjectType"),
    Field("logon_type", INTEGER, "host: 4624 LogonType"),
    Field("auth_package", TEXT, "host: 4624 authentication package"),
    Field("share_path", TEXT, "host 5142-5144: the share's local path"),
    Field(
        "service_name",
        TEXT,
        "the installed service: host 7045/4697, and network svcctl "
        "CreateService*/ChangeServiceConfig* calls (also the svcctl calls on a service handle: "
        "start, control, delete)",
    ),
    Field("image_path", TEXT, "the service's binary path (command line)"),
    Field("start_type", TEXT, "the service's start type"),
    Field("service_type", TEXT, "the service's type"),
    Field("account", TEXT, "the account the service runs as"),
    Field(
        "task_name",
        TEXT,
        "a scheduled task's path: host 4698/4702/4699, network SchRpcRegisterTask (and "
        "SchRpcRun/Delete/EnableTask/RetrieveTask), atsvc NetrJobAdd",
    ),
    Field("task_command", TEXT, "what the task's first Exec action runs (atsvc: the command)"),
    Field("task_arguments", TEXT, "the arguments of the task's first Exec action"),
    Field("task_author", TEXT, "the task's author"),
    Field("task_user", TEXT, "the principal the task runs as (`S-1-5-18` is SYSTEM)"),
    Field("task_run_level", TEXT, "the task's run level (`HighestAvailable`, `LeastPrivilege`)"),
    Field("target_user", TEXT, "host 4742: the computer account changed"),
    Field(
        "time_precision",
        TEXT,
        "`s` or `ms` when the source's clock had only that precision (NXLog's and Splunk's "
        "times: whole seconds), and `time` is written with no digit it did not have",
    ),
    Field(
        "links",
        OBJECT_LIST,
        "case and `timeline`: the records of the same action on the other side (a network "
        "event's host records, a host record's network events), each with the other side's "
        "`source_file`, `source_ref`, `event_code` (host) or `action` (network), `time_delta` "
        "(seconds from this event to it, as both read) and `clock_offset` (seconds, the offset "
        "estimated between the two sources and taken out before matching)",
    ),
    Field(
        "filled_from",
        OBJECT,
        "case and `timeline`: the fields filled from the other side, each with the side it "
        'came from (`{"user": "host", "logon_id": "host"}` on a Kerberos session\'s events, '
        '`{"sha256": "network"}` on a 5145)',
    ),
    Field(
        "missing_from_log",
        BOOLEAN,
        "case and `timeline`, network: true where the server's own log covers this moment "
        "(records before and after) but holds no record of this action (a write to an admin "
        "share without its 5145, a service created without its 4697/7045)",
    ),
)

NAMES: Final[tuple[str, ...]] = tuple(field.name for field in FIELDS)
BY_NAME: Final[dict[str, Field]] = {field.name: field for field in FIELDS}


def is_json_of(kind: str, value: object) -> bool:
    """Whether a decoded JSON value is of an object kind: an object, or a list of objects."""
    if kind == OBJECT_LIST:
        return type(value) is list and all(type(item) is dict for item in value)
    return type(value) is dict


def readme_table() -> str:
    """The README's table of event fields (``tests/test_schema.py`` checks that it is there)."""
    lines = ["| field | type | meaning |", "|---|---|---|"]
    lines.extend(f"| `{f.name}` | {f.kind} | {f.meaning} |" for f in FIELDS)
    return "\n".join(lines) + "\n"
