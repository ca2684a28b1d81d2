"""lsarpc (MS-LSAD, MS-LSAT) arguments: policy opened, names and SIDs translated (T1087)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader
from smbwatch.dcerpc.samr import MAX_NAMES, unicode_string_array

Args = dict[str, Any]

MAX_SIDS: Final = 20480  # MS-LSAT 3.1.4.10: LsarLookupSids accepts at most 20480 SIDs

POLICY_INFORMATION_CLASSES: Final = {
    1: "PolicyAuditLogInformation",
    2: "PolicyAuditEventsInformation",
    3: "PolicyPrimaryDomainInformation",
    4: "PolicyPdAccountInformation",
    5: "PolicyAccountDomainInformation",
    6: "PolicyLsaServerRoleInformation",
    7: "PolicyReplicaSourceInformation",
    9: "PolicyModificationInformation",
    10: "PolicyAuditFullSetInformation",
    11: "PolicyAuditFullQueryInformation",
    12: "PolicyDnsDomainInformation",
    13: "PolicyDnsDomainInformationInt",
    14: "PolicyLocalAccountDomainInformation",
    15: "PolicyMachineAccountInformation",
}


def _open_policy2(r: NdrReader, handles: HandleNames) -> Args:
    """LsarOpenPolicy2 (MS-LSAD 3.1.4.4.1): the system named and the access asked for."""
    system = r.unique_wstr()
    r.begin_struct()  # LSAPR_OBJECT_ATTRIBUTES (MS-LSAD 2.2.9)
    r.u32()  # Length
    root_directory, object_name = r.pointer(), r.pointer()
    r.u32()  # Attributes
    security_descriptor, quality_of_service = r.pointer(), r.pointer()
    if root_directory or object_name or security_descriptor:
        raise NdrError("LsarOpenPolicy2 object attributes that clients leave NULL are set")
    if quality_of_service:  # Length, ImpersonationLevel, ContextTrackingMode, EffectiveOnly
        r.u32()
        r.enum()
        r.u8()
        r.u8()
    args: Args = {"access_mask": r.u32()}
    if system is not None:
        args["system_name"] = system
    return args


def _query_information(r: NdrReader, handles: HandleNames) -> Args:
    """LsarQueryInformationPolicy(2) (3.1.4.4.4): which policy information is read."""
    r.context_handle()
    value = r.enum()
    return {"information_class": POLICY_INFORMATION_CLASSES.get(value, str(value))}


def _names(r: NdrReader) -> Args:
    count = r.u32()
    size = r.count()  # [size_is(Count)] conformance
    if size != count or count > MAX_NAMES:
        raise NdrError(f"names array of {size} for Count {count}")
    return {"names": unicode_string_array(r, count)}


def _lookup_names(r: NdrReader, handles: HandleNames) -> Args:
    """LsarLookupNames(2/3) (MS-LSAT 3.1.4.5...): the names translated to SIDs."""
    r.context_handle()
    return _names(r)


def _lookup_names4(r: NdrReader, handles: HandleNames) -> Args:
    """LsarLookupNames4 (3.1.4.4): no policy handle."""
    return _names(r)


def _sids(r: NdrReader) -> Args:
    r.begin_struct()  # LSAPR_SID_ENUM_BUFFER
    entries = r.u32()
    if not r.pointer():
        return {"sids": []}
    size = r.count()
    if size != entries or entries > MAX_SIDS or 4 * entries > r.remaining:
        raise NdrError(f"SID array of {size} for {entries} entries")
    referents = []
    for _ in range(entries):
        r.begin_struct()
        referents.append(r.pointer())
    sids = []
    for referent in referents:
        if referent:
            r.begin_struct()
            sids.append(r.sid())
    return {"sids": sids}


def _lookup_sids(r: NdrReader, handles: HandleNames) -> Args:
    """LsarLookupSids(2) (3.1.4.11...): the SIDs translated to names (lookupsid)."""
    r.context_handle()
    return _sids(r)


def _lookup_sids3(r: NdrReader, handles: HandleNames) -> Args:
    """LsarLookupSids3 (3.1.4.9): no policy handle."""
    return _sids(r)


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    7: _query_information,
    14: _lookup_names,
    15: _lookup_sids,
    44: _open_policy2,
    46: _query_information,  # LsarQueryInformationPolicy2
    57: _lookup_sids,  # LsarLookupSids2
    58: _lookup_names,  # LsarLookupNames2
    68: _lookup_names,  # LsarLookupNames3
    76: _lookup_sids3,
    77: _lookup_names4,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
