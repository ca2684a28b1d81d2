"""drsuapi (MS-DRSR) arguments: directory replication, as DCSync abuses it (T1003.006).

DCSync (mimikatz ``lsadump::dcsync``, secretsdump) asks a domain controller for the secrets of
an account with IDL_DRSGetNCChanges, usually as a single-object extended operation
(``EXOP_REPL_OBJ``) naming that account's distinguished name. A tool that is not a DC binds with
the well-known ``NTDSAPI_CLIENT_GUID`` where a DC gives its own DSA GUID. Most clients seal
these calls (packet privacy); the operation alone is then what the wire shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader
from smbwatch.utf16 import utf16le

Args = dict[str, Any]

NTDSAPI_CLIENT_GUID: Final = "e24d201a-4fd6-11d1-a3da-0000f875ae0d"
EXTENDED_OPERATIONS: Final = {  # EXOP_REQ (MS-DRSR 4.1.10.2.22)
    0: "EXOP_NONE",
    1: "EXOP_FSMO_REQ_ROLE",
    2: "EXOP_FSMO_REQ_RID_ALLOC",
    3: "EXOP_FSMO_RID_REQ_ROLE",
    4: "EXOP_FSMO_REQ_PDC",
    5: "EXOP_FSMO_ABANDON_ROLE",
    6: "EXOP_REPL_OBJ",
    7: "EXOP_REPL_SECRETS",
}
MAX_NAME_CHARS: Final = 4096  # a DSNAME's StringName; longer names are cut
_NT4SID_SIZE: Final = 28


def _bind(r: NdrReader, handles: HandleNames) -> Args:
    """IDL_DRSBind (4.1.3): the client's DSA GUID (NTDSAPI_CLIENT_GUID for a non-DC tool)."""
    if not r.pointer():
        return {}
    client = r.guid()
    name = "NTDSAPI_CLIENT_GUID" if client == NTDSAPI_CLIENT_GUID else None
    return {"client_dsa": client, **({"client_dsa_name": name} if name else {})}


def _dsname(r: NdrReader, args: Args, prefix: str) -> None:
    """A DSNAME (5.50) referent: a conformant structure (its count first), GUID and DN."""
    r.count()  # conformance of StringName
    r.u32()  # structLen
    r.u32()  # SidLen
    guid = r.guid()
    r.raw(_NT4SID_SIZE)
    name_length = r.u32()
    if name_length > MAX_NAME_CHARS or (name_length + 1) * 2 > r.remaining:
        raise NdrError(f"DSNAME of {name_length} characters with {r.remaining} bytes left")
    text = utf16le(r.raw((name_length + 1) * 2)).rstrip("\x00")
    if guid != "00000000-0000-0000-0000-000000000000":
        args[f"{prefix}_guid"] = guid
    if text:
        args[prefix] = text


def _get_nc_changes(r: NdrReader, handles: HandleNames) -> Args:
    """IDL_DRSGetNCChanges (4.1.10): which naming context or object, for which DSA, how.

    Requests V5, V8 and V10 (V8 is what DCSync tools send; V10 adds ulMoreFlags) are read up to
    the naming context (the first deferred pointer); other versions are named only.
    """
    r.context_handle()
    version = r.u32()
    args: Args = {"version": version}
    if version not in (5, 8, 10) or r.u32() != version:  # the union's discriminant
        return args
    r.align(8)
    args["destination_dsa"] = r.guid()
    args["source_invocation_id"] = r.guid()
    naming_context = r.pointer()
    r.align(8)
    r.raw(24)  # usnvecFrom: three USNs
    r.pointer()  # pUpToDateVecDest
    args["flags"] = f"0x{r.u32():08x}"
    r.u32()  # cMaxObjects
    r.u32()  # cMaxBytes
    operation = r.u32()
    args["extended_operation"] = EXTENDED_OPERATIONS.get(operation, f"0x{operation:X}")
    r.u64()  # liFsmoInfo
    if version >= 8:
        r.pointer()  # pPartialAttrSet
        r.pointer()  # pPartialAttrSetEx
        r.u32()  # PrefixTableDest.PrefixCount
        r.pointer()  # PrefixTableDest.pPrefixEntry
        if version == 10:
            r.u32()  # ulMoreFlags
    if naming_context:
        _dsname(r, args, "naming_context")
    return args


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    0: _bind,
    3: _get_nc_changes,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
