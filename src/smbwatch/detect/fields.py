"""The field vocabulary of rules: Windows 5140/5145 (and 4624, 7045/4697, 4698/4702/4699, 4742),
Zeek and Splunk names mapped onto the event contract, the same way for host and network events.

A network ``create``/``open``/``write`` is the wire's equivalent of a 5145 access check and a
``tree_connect`` that of a 5140, so a rule written for Windows logs runs on captures too:
``EventID`` is 5145 or 5140 for them, ``ShareName`` is ``\\\\*\\`` + the share name (as Windows
logs it), ``AccessMask`` the hex string and ``AccessList`` the rights derived from the mask.

Each field is described by Python expressions over an event ``e`` (resolved once, when rules are
compiled into code by :mod:`smbwatch.detect.compiler`) and by a getter built from the same
expression (for group-by fields and message templates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from smbwatch.events import FIELD_NAMES, SmbEvent, share_class

# Windows event id equivalent of network actions (the wire's 5145 and 5140).
NETWORK_EVENT_IDS: dict[str, int] = {
    "create": 5145,
    "open": 5145,
    "write": 5145,
    "tree_connect": 5140,
}

# The action a host event of each Windows event id carries (event contract, "action").
HOST_ACTIONS: dict[int, str] = {
    5140: "tree_connect",
    5145: "access_check",
    5142: "share_change",
    5143: "share_change",
    5144: "share_change",
    4624: "logon",
    4634: "logoff",
    4647: "logoff",
    7045: "service_install",
    4697: "service_install",
    4698: "task_create",
    4702: "task_update",
    4699: "task_delete",
    4742: "account_change",
}

# Zeek smb_files actions → contract actions.
ZEEK_ACTIONS: dict[str, tuple[str, ...]] = {
    "smb::file_open": ("open", "create"),
    "smb::file_read": ("read",),
    "smb::file_write": ("write",),
    "smb::file_delete": ("delete",),
    "smb::file_rename": ("rename",),
    "smb::file_close": ("close",),
    "smb::file_set_attribute": ("set_info",),
}

# File access rights as Windows renders them in AccessList: (bit, %% message id, name).
ACCESS_RIGHTS: tuple[tuple[int, int, str], ...] = (
    (0x00001, 4416, "ReadData (or ListDirectory)"),
    (0x00002, 4417, "WriteData (or AddFile)"),
    (0x00004, 4418, "AppendData (or AddSubdirectory or CreatePipeInstance)"),
    (0x00008, 4419, "ReadEA"),
    (0x00010, 4420, "WriteEA"),
    (0x00020, 4421, "Execute/Traverse"),
    (0x00040, 4422, "DeleteChild"),
    (0x00080, 4423, "ReadAttributes"),
    (0x00100, 4424, "WriteAttributes"),
    (0x10000, 1537, "DELETE"),
    (0x20000, 1538, "READ_CONTROL"),
    (0x40000, 1539, "WRITE_DAC"),
    (0x80000, 1540, "WRITE_OWNER"),
    (0x100000, 1541, "SYNCHRONIZE"),
    (0x1000000, 1542, "ACCESS_SYS_SEC"),
)

# Generic rights a client may request on the wire, as the server maps them for files before the
# access check that 5145 logs (MS-SMB2 3.3.5.9, FILE_GENERIC_* in winnt.h).
GENERIC_MAPPING: tuple[tuple[int, int], ...] = (
    (0x80000000, 0x120089),  # GENERIC_READ
    (0x40000000, 0x120116),  # GENERIC_WRITE
    (0x20000000, 0x1200A0),  # GENERIC_EXECUTE
    (0x10000000, 0x1F01FF),  # GENERIC_ALL
)
FILE_WRITE_DATA = 0x2
FILE_DIRECTORY_FILE = 0x1


@dataclass(frozen=True, slots=True)
class Field:
    """How one rule field is read from an event.

    ``exprs`` are Python expressions over ``e``; a field with two expressions matches when either
    value does (Zeek's ``path`` is both the share as seen and its ``\\\\*\\`` form). ``kind`` says
    how values compare: ``int`` numerically, ``str`` case-insensitively on a ``str`` value,
    ``text`` likewise after ``str()`` of a value of another type.
    """

    exprs: tuple[str, ...]
    kind: str  # "int", "str", "text"
    costly: bool = False  # computed where used, not once per event


def _f(expr: str, kind: str = "str", costly: bool = False) -> Field:
    return Field((expr,), kind, costly)


_CONTRACT_KINDS: dict[str, str] = {
    name: "int"
    for name in (
        "time",
        "source_ref",
        "event_code",
        "src_port",
        "dst_port",
        "tree_id",
        "message_id",
        "access_mask",
        "share_access",
        "create_options",
        "bytes",
        "offset",
        "file_size",
        "bytes_seen",
        "logon_type",
    )
}
_TEXT_FIELDS = {
    "session_id",
    "seen_by",
    "access_list",
    "delete_on_close",
    "encrypted",
    "rpc_args",
    "links",
    "filled_from",
    "missing_from_log",
}

_EVENT_ID = _f("(e.event_code if e.source == 'host' else _NETWORK_EVENT_IDS.get(e.action))", "int")
_SHARE_NAME = _f("_share_unc(e)")
_TARGET = _f("(e.path if e.path is not None else e.pipe)")
_ACCESS_MASK = _f("_hex(e.access_mask)")
_ACCESS_LIST = _f("_access_list(_effective_access(e))", costly=True)
_OBJECT_TYPE = _f("_object_type(e)")
_USER = _f("e.user")
_SRC_IP = _f("e.src_ip")
_SRC_PORT = _f("e.src_port", "int")

# Names used by Windows event logs (Security 5140/5145/4624/4697, System 7045).
WINDOWS_FIELDS: dict[str, Field] = {
    "EventID": _EVENT_ID,
    "ShareName": _f("_share_unc(e)"),  # a bare 'ADMIN$' in a rule: share_name (compiler)
    "ShareLocalPath": _f("e.share_path"),
    "RelativeTargetName": _TARGET,
    "AccessMask": _ACCESS_MASK,
    "AccessList": _ACCESS_LIST,
    "ObjectType": _OBJECT_TYPE,
    "IpAddress": _SRC_IP,
    "IpPort": _SRC_PORT,
    "SubjectUserName": _USER,
    "TargetUserName": _f("(e.target_user if e.target_user is not None else e.user)"),
    "SubjectDomainName": _f("e.domain"),
    "TargetDomainName": _f("e.domain"),
    "SubjectLogonId": _f("e.session_id", "text"),
    "TargetLogonId": _f("e.session_id", "text"),
    "LogonType": _f("e.logon_type", "int"),
    "AuthenticationPackageName": _f("e.auth_package"),
    "WorkstationName": _f("e.workstation"),
    "Computer": _f("e.server"),
    "ServiceName": _f("e.service_name"),
    "ImagePath": _f("e.image_path"),
    "ServiceFileName": _f("e.image_path"),
    "ServiceType": _f("e.service_type"),
    "StartType": _f("e.start_type"),
    "ServiceStartType": _f("e.start_type"),
    "AccountName": _f("e.account"),
    "ServiceAccount": _f("e.account"),
    "TaskName": _f("e.task_name"),
    "TaskContent": _f("_task_command_line(e)"),  # 4698/4699: what the task XML runs
    "TaskContentNew": _f("_task_command_line(e)"),  # 4702
}

# Names used by Splunk's Windows add-on (the "Write Executable in SMB Share" search).
SPLUNK_FIELDS: dict[str, Field] = {
    "EventCode": _EVENT_ID,
    "Share_Name": _SHARE_NAME,
    "Relative_Target_Name": _TARGET,
    "Object_Type": _OBJECT_TYPE,
    "Access_Mask": _ACCESS_MASK,
    "Source_Address": _SRC_IP,
    "Source_Port": _SRC_PORT,
}

# Names used by Zeek's smb_files, smb_mapping, dce_rpc and ntlm logs.
ZEEK_FIELDS: dict[str, Field] = {
    "path": Field(("e.share", "_share_unc(e)"), "str"),
    "name": _TARGET,
    "size": _f("e.file_size", "int"),
    "named_pipe": _f("e.pipe"),
    "endpoint": _f("e.rpc_interface"),
    "operation": _f("e.rpc_operation"),
    "id.orig_h": _SRC_IP,
    "id.orig_p": _SRC_PORT,
    "id.resp_h": _f("e.dst_ip"),
    "id.resp_p": _f("e.dst_port", "int"),
    "username": _USER,
    "domainname": _f("e.domain"),
    "hostname": _f("e.workstation"),
}

# The contract's own names, and what smbwatch derives from them.
CONTRACT_FIELDS: dict[str, Field] = {
    name: _f(f"e.{name}", "text" if name in _TEXT_FIELDS else _CONTRACT_KINDS.get(name, "str"))
    for name in FIELD_NAMES
}
CONTRACT_FIELDS["share_class"] = _f("_share_class(e.share_name)")

# Two vocabularies share one name: ``path`` is the share (``\\SERVER\IPC$``) in Zeek's logs and
# the path inside the share in the contract. Zeek-flavoured rules (logsource product ``zeek``) get
# Zeek's meaning; every other rule the contract's.
VOCABULARY: dict[str, Field] = {**ZEEK_FIELDS, **WINDOWS_FIELDS, **SPLUNK_FIELDS, **CONTRACT_FIELDS}
ZEEK_VOCABULARY: dict[str, Field] = {**VOCABULARY, **ZEEK_FIELDS}
_BY_LOWER = {name.lower(): spec for name, spec in VOCABULARY.items()}
_ZEEK_BY_LOWER = {name.lower(): spec for name, spec in ZEEK_VOCABULARY.items()}
RPC_ARG_PREFIX = "rpc_args."


def lookup(name: str, zeek: bool = False) -> Field | None:
    """The field a rule's name refers to (exact name first, then case-insensitively), or None.

    ``rpc_args.NAME`` reads one decoded DCE/RPC argument (``rpc_args.binary_path``).
    """
    exact, lower = (ZEEK_VOCABULARY, _ZEEK_BY_LOWER) if zeek else (VOCABULARY, _BY_LOWER)
    spec = exact.get(name) or lower.get(name.lower())
    if spec is None and name.startswith(RPC_ARG_PREFIX) and len(name) > len(RPC_ARG_PREFIX):
        key = name[len(RPC_ARG_PREFIX) :]
        spec = _f(f"_rpc_arg(e.rpc_args, {key!r})", "text")
    return spec


# Helpers the field expressions call; the compiled rules and the getters share this namespace.
def _share_unc(e: SmbEvent) -> str | None:
    """The share as Windows logs it: as seen on host events, ``\\\\*\\NAME`` for the wire's."""
    if e.share_name and (e.source != "host" or e.share is None):
        return "\\\\*\\" + e.share_name
    return e.share


def _hex(mask: int | None) -> str | None:
    return None if mask is None else f"0x{mask:x}"


def _effective_access(e: SmbEvent) -> int | None:
    """The specific rights behind an event: generic bits mapped, WriteData for a wire write."""
    mask = e.access_mask
    if mask is None:
        return FILE_WRITE_DATA if e.action == "write" and e.source == "network" else None
    return _map_generic(mask)


def _map_generic(mask: int) -> int:
    for generic, specific in GENERIC_MAPPING:
        if mask & generic:
            mask |= specific
    return mask


@lru_cache(maxsize=4096)  # masks come from the wire: bounded
def _access_list(mask: int | None) -> str | None:
    """AccessList as Windows writes it (``%%4417``) followed by the rendered names."""
    if mask is None:
        return None
    rights = [(code, name) for bit, code, name in ACCESS_RIGHTS if mask & bit]
    return " ".join([f"%%{code}" for code, _ in rights] + [name for _, name in rights])


def _object_type(e: SmbEvent) -> str | None:
    if e.object_type is not None or e.source == "host":
        return e.object_type
    if e.action not in NETWORK_EVENT_IDS or e.action == "tree_connect":
        return None
    options = e.create_options or 0
    return "Directory" if options & FILE_DIRECTORY_FILE else "File"


def _share_class(share_name: str | None) -> str | None:
    return share_class(share_name)


def _rpc_arg(args: Any, key: str) -> Any:
    return args.get(key) if isinstance(args, dict) else None


def _task_command_line(e: SmbEvent) -> str | None:
    """A task's command and arguments: what rules look for in its XML (``TaskContent``)."""
    if e.task_command is None:
        return None
    return f"{e.task_command} {e.task_arguments}" if e.task_arguments else e.task_command


NAMESPACE: dict[str, Any] = {
    "_NETWORK_EVENT_IDS": NETWORK_EVENT_IDS,
    "_share_unc": _share_unc,
    "_hex": _hex,
    "_effective_access": _effective_access,
    "_access_list": _access_list,
    "_object_type": _object_type,
    "_share_class": _share_class,
    "_rpc_arg": _rpc_arg,
    "_task_command_line": _task_command_line,
}


@cache
def getter(name: str, zeek: bool = False) -> Callable[[SmbEvent], Any] | None:
    """A function returning the value of field ``name`` for an event (first non-null candidate)."""
    spec = lookup(name, zeek)
    if spec is None:
        return None
    body = "".join(f"v if (v := {expr}) is not None else " for expr in spec.exprs[:-1])
    code = compile(f"lambda e: {body}{spec.exprs[-1]}", f"<field {name}>", "eval")
    return eval(code, dict(NAMESPACE))  # noqa: S307 - expressions come from the tables above
