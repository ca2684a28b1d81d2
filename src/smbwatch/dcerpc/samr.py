"""samr (MS-SAMR) arguments: the names, ids and accounts looked up or created (T1087, T1136).

``net user /domain``, BloodHound and ``net user x /add`` all go through these calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader

Args = dict[str, Any]

MAX_NAMES: Final = 1000  # SamrLookupNamesInDomain accepts at most 1000 names (MS-SAMR 3.1.5.11.2)


def unicode_string_array(r: NdrReader, count: int) -> list[str]:
    """``count`` RPC_UNICODE_STRINGs laid out as an array: inline parts, then the buffers."""
    if count > MAX_NAMES or count * 8 > r.remaining:
        raise NdrError(f"{count} names with {r.remaining} bytes left")
    inline = [r.unicode_string() for _ in range(count)]
    return [r.unicode_string_buffer(length) if referent else "" for length, referent in inline]


def _server(r: NdrReader, handles: HandleNames) -> Args:
    """SamrConnect2/4/5: the server named (PSAMPR_SERVER_NAME)."""
    server = r.unique_wstr()
    return {"server": server} if server is not None else {}


def _lookup_domain(r: NdrReader, handles: HandleNames) -> Args:
    """SamrLookupDomainInSamServer (3.1.5.11.1): the domain name looked up."""
    r.context_handle()
    return {"domain": r.unicode_string_value()}


def _open_domain(r: NdrReader, handles: HandleNames) -> Args:
    """SamrOpenDomain (3.1.5.1.5): the domain SID opened."""
    r.context_handle()
    access = r.u32()
    r.begin_struct()
    return {"access_mask": access, "domain_sid": r.sid()}


def _lookup_names(r: NdrReader, handles: HandleNames) -> Args:
    """SamrLookupNamesInDomain (3.1.5.11.2): the account names looked up."""
    r.context_handle()
    count = r.u32()
    r.count()  # max_count (1000)
    offset = r.count()
    actual = r.count()
    if offset or actual != count:
        raise NdrError(f"names array offset {offset}, {actual} of {count}")
    return {"names": unicode_string_array(r, count)}


def _lookup_ids(r: NdrReader, handles: HandleNames) -> Args:
    """SamrLookupIdsInDomain (3.1.5.11.3): the relative ids looked up."""
    r.context_handle()
    count = r.u32()
    r.count()
    r.count()
    actual = r.count()
    if actual != count or count > MAX_NAMES or 4 * count > r.remaining:
        raise NdrError(f"{actual} of {count} ids")
    return {"rids": [r.u32() for _ in range(count)]}


def _open_account(r: NdrReader, handles: HandleNames) -> Args:
    """SamrOpenUser/OpenGroup/OpenAlias: the relative id opened."""
    r.context_handle()
    access = r.u32()
    return {"access_mask": access, "rid": r.u32()}


def _create_account(r: NdrReader, handles: HandleNames) -> Args:
    """SamrCreateUserInDomain/CreateGroupInDomain/CreateAliasInDomain: the new account's name."""
    r.context_handle()
    return {"account_name": r.unicode_string_value(), "access_mask": r.u32()}


def _create_user2(r: NdrReader, handles: HandleNames) -> Args:
    """SamrCreateUser2InDomain (3.1.5.4.4): the new account's name and type."""
    r.context_handle()
    name = r.unicode_string_value()
    return {"account_name": name, "account_type": r.u32(), "access_mask": r.u32()}


def _add_member_rid(r: NdrReader, handles: HandleNames) -> Args:
    """SamrAddMemberToGroup / RemoveMemberFromGroup: the member's relative id."""
    r.context_handle()
    return {"member_rid": r.u32()}


def _add_member_sid(r: NdrReader, handles: HandleNames) -> Args:
    """SamrAddMemberToAlias / RemoveMemberFromAlias (3.1.5.8.2): the member's SID."""
    r.context_handle()
    r.begin_struct()
    return {"member_sid": r.sid()}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    5: _lookup_domain,
    7: _open_domain,
    10: _create_account,  # SamrCreateGroupInDomain
    12: _create_account,  # SamrCreateUserInDomain
    14: _create_account,  # SamrCreateAliasInDomain
    17: _lookup_names,
    18: _lookup_ids,
    19: _open_account,  # SamrOpenGroup
    22: _add_member_rid,  # SamrAddMemberToGroup
    24: _add_member_rid,  # SamrRemoveMemberFromGroup
    27: _open_account,  # SamrOpenAlias
    31: _add_member_sid,  # SamrAddMemberToAlias
    32: _add_member_sid,  # SamrRemoveMemberFromAlias
    34: _open_account,  # SamrOpenUser
    50: _create_user2,
    57: _server,  # SamrConnect2
    62: _server,  # SamrConnect4
    64: _server,  # SamrConnect5
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
