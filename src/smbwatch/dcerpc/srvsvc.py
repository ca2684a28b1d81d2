"""srvsvc (MS-SRVS) arguments: shares added, queried and enumerated; sessions listed (T1135).

SHARE_INFO_x structures carry their strings as embedded pointers: in an array, the fixed parts of
all elements come first and the strings of each element follow in order (NDR deferral).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader

Args = dict[str, Any]

MAX_SHARES: Final = 1024

_STRINGS: Final = frozenset(("share_name", "remark", "path", "password", "server_name"))
_INFO_1: Final = ("share_name", "share_type", "remark")
_INFO_2: Final = (*_INFO_1, "permissions", "max_uses", "current_uses", "path", "password")
_LEVEL_FIELDS: dict[int, tuple[str, ...]] = {
    0: ("share_name",),
    1: _INFO_1,
    2: _INFO_2,
    501: (*_INFO_1, "flags"),
    502: (*_INFO_2, "reserved", "security_descriptor"),
    503: (*_INFO_2, "server_name", "reserved", "security_descriptor"),
}
SHARE_TYPES: Final = {0: "STYPE_DISKTREE", 1: "STYPE_PRINTQ", 2: "STYPE_DEVICE", 3: "STYPE_IPC"}
STYPE_SPECIAL: Final = 0x80000000
STYPE_TEMPORARY: Final = 0x40000000


def share_type_name(value: int) -> str:
    """``STYPE_DISKTREE``, ``STYPE_IPC|STYPE_SPECIAL`` (MS-SRVS 2.2.2.4)."""
    names = [SHARE_TYPES.get(value & 0x0FFFFFFF, f"0x{value & 0x0FFFFFFF:X}")]
    if value & STYPE_SPECIAL:
        names.append("STYPE_SPECIAL")
    if value & STYPE_TEMPORARY:
        names.append("STYPE_TEMPORARY")
    return "|".join(names)


def _fixed(r: NdrReader, level: int) -> dict[str, int]:
    """The fixed part of one SHARE_INFO_<level>: DWORDs, and referent ids for its pointers."""
    r.begin_struct()
    return {
        name: r.pointer() if name in _STRINGS or name == "security_descriptor" else r.u32()
        for name in _LEVEL_FIELDS[level]
    }


def _deferred(r: NdrReader, fixed: dict[str, int]) -> Args:
    """The strings (and security descriptor) of one SHARE_INFO, completing its fixed part."""
    info: Args = {}
    for name, value in fixed.items():
        if name in _STRINGS:
            if value:
                info[name] = r.wstr()
        elif name == "security_descriptor":
            if value:
                r.conformant_bytes(0)
        elif name == "share_type":
            info[name] = share_type_name(value)
        elif name != "reserved":
            info[name] = value
    info.pop("password", None)  # share-level passwords are not worth repeating
    return info


def _share_info(r: NdrReader) -> Args:
    """A SHARE_INFO union (switch_is Level) pointing at one SHARE_INFO_x of a known level."""
    level = r.union_discriminant()
    args: Args = {"level": level}
    if r.pointer() and level in _LEVEL_FIELDS:
        args.update(_deferred(r, _fixed(r, level)))
    return args


def _server(r: NdrReader) -> Args:
    server = r.unique_wstr()
    return {"server": server} if server is not None else {}


def _share_enum(r: NdrReader, handles: HandleNames) -> Args:
    """NetrShareEnum (3.1.4.8): the server and the information level asked for."""
    args = _server(r)
    r.begin_struct()
    args["level"] = r.u32()
    return args


def _share_get_info(r: NdrReader, handles: HandleNames) -> Args:
    """NetrShareGetInfo (3.1.4.10): the share named and the level asked for."""
    args = _server(r)
    args["share_name"] = r.wstr()
    args["level"] = r.u32()
    return args


def _share_add(r: NdrReader, handles: HandleNames) -> Args:
    """NetrShareAdd (3.1.4.7): the new share's name, path, type and remark."""
    args = _server(r)
    r.u32()  # Level, repeated as the union discriminant
    args.update(_share_info(r))
    return args


def _share_set_info(r: NdrReader, handles: HandleNames) -> Args:
    """NetrShareSetInfo (3.1.4.11): the share changed and its new settings."""
    args = _server(r)
    name = r.wstr()
    r.u32()  # Level
    args.update(_share_info(r))
    args["share_name"] = name
    return args


def _share_del(r: NdrReader, handles: HandleNames) -> Args:
    """NetrShareDel (3.1.4.12), NetrShareDelSticky, NetrShareCheck: the share named."""
    args = _server(r)
    args["share_name"] = r.wstr()
    return args


def _session_enum(r: NdrReader, handles: HandleNames) -> Args:
    """NetrSessionEnum (3.1.4.5): whose sessions are listed (recon: who is logged on where)."""
    args = _server(r)
    for key in ("client_name", "user_name"):
        value = r.unique_wstr()
        if value is not None:
            args[key] = value
    return args


def _server_only(r: NdrReader, handles: HandleNames) -> Args:
    """Calls whose only interesting parameter is the server name."""
    return _server(r)


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    8: _server_only,  # NetrConnectionEnum
    9: _server_only,  # NetrFileEnum
    12: _session_enum,
    14: _share_add,
    15: _share_enum,
    16: _share_get_info,
    17: _share_set_info,
    18: _share_del,
    19: _share_del,  # NetrShareDelSticky
    20: _share_del,  # NetrShareCheck
    21: _server_only,  # NetrServerGetInfo
    28: _server_only,  # NetrRemoteTOD
    36: _share_enum,  # NetrShareEnumSticky
}


def _shares_enumerated(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """NetrShareEnum response: the names of the shares returned (at most ``MAX_SHARES``)."""
    r.begin_struct()
    level = r.u32()
    if r.union_discriminant() != level or level not in _LEVEL_FIELDS or not r.pointer():
        return
    r.begin_struct()  # SHARE_INFO_x_CONTAINER
    entries = r.u32()
    if not r.pointer():
        return
    count = r.count()
    if count != entries or count > r.remaining:
        raise NdrError(f"share container of {entries} entries holds {count}")
    fixed = [_fixed(r, level) for _ in range(count)]
    shares = [_deferred(r, element).get("share_name") for element in fixed]
    if args is not None:
        args["shares"] = [name for name in shares[:MAX_SHARES] if name is not None]


def _share_got(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """NetrShareGetInfo response: the share's path, type and remark, as the server answered."""
    info = _share_info(r)
    if args is not None:
        info.pop("level", None)
        info.pop("share_name", None)
        args.update(info)


RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {
    15: _shares_enumerated,
    16: _share_got,
    36: _shares_enumerated,
}
