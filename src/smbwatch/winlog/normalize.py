"""Windows events → SmbEvents: the share, logon, service, task and account events of the contract.

5140 share connect, 5145 share object access check, 5142/5143/5144 share added/changed/deleted,
4624 network logon (type 3), 7045 and 4697 service installed, 4698/4702/4699 scheduled task
created/updated/deleted (with what the task XML runs), 4742 computer account changed (Zerologon
resets a DC's). Everything else is dropped, and dropped before it is fully parsed: readers ask
``worth_parsing`` on a record's raw text first.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from smbwatch.events import SmbEvent, time_in_range
from smbwatch.task_xml import TaskXmlError, parse_task_xml
from smbwatch.winlog.access import access_names, mask_names
from smbwatch.winlog.numbers import OutOfRange, bounded_int, parse_int
from smbwatch.winlog.record import Source, WinRecord

SHARE_ACCESSED = 5140
SHARE_ADDED, SHARE_CHANGED, SHARE_DELETED = 5142, 5143, 5144
SHARE_ACCESS_CHECK = 5145
LOGON = 4624
SERVICE_INSTALLED_SCM = 7045
SERVICE_INSTALLED_AUDIT = 4697
TASK_CREATED, TASK_DELETED, TASK_UPDATED = 4698, 4699, 4702
COMPUTER_ACCOUNT_CHANGED = 4742
NETWORK_LOGON = 3

WANTED = frozenset(
    {
        SHARE_ACCESSED,
        SHARE_ADDED,
        SHARE_CHANGED,
        SHARE_DELETED,
        SHARE_ACCESS_CHECK,
        LOGON,
        SERVICE_INSTALLED_SCM,
        SERVICE_INSTALLED_AUDIT,
        TASK_CREATED,
        TASK_DELETED,
        TASK_UPDATED,
        COMPUTER_ACCOUNT_CHANGED,
    }
)
# The wanted ids as text, looked for in any format's raw text (JSON, XML, Splunk text): grouped
# by their first two digits and their length, each group found with one scan of the text.
_WANTED_GROUPS: dict[tuple[str, int], dict[str, int]] = {}
for _digits in sorted(map(str, WANTED)):
    _WANTED_GROUPS.setdefault((_digits[:2], len(_digits)), {})[_digits] = int(_digits)
del _digits
# A logon type 3 in any format: "LogonType":3, "LogonType":"3", >3</Data>, Logon Type:\t\t3,
# also inside a JSON string, where the tabs of a message are written \t.
_NETWORK_LOGON_TYPE = re.compile(r"Logon[ _]?Type(?:['\":>\s]|\\[rnt]){1,12}3(?!\d)")
# 4697 logs the start type as a number, 7045 as these words: one vocabulary for both.
_START_TYPES = {
    0: "boot start",
    1: "system start",
    2: "auto start",
    3: "demand start",
    4: "disabled",
}


def worth_parsing(text: str, event_code: int | None = None) -> bool:
    """Cheap test on a record's raw text: can it become an event? Never false for one that can.

    With ``event_code`` known (EVTX, XML, Splunk text) it is a set lookup; otherwise (JSON of
    unknown shape) any wanted id standing as a number of its own keeps the record. A 4624 is
    kept only when a logon type 3 shows: they are most of a Security log.
    """
    if event_code is None:
        codes = wanted_numbers(text)
        if not codes:
            return False
        only_logons = codes == {LOGON}
    elif event_code in WANTED:
        only_logons = event_code == LOGON
    else:
        return False
    return not only_logons or _NETWORK_LOGON_TYPE.search(text) is not None


def wanted_numbers(text: str) -> set[int]:
    r"""The wanted ids that stand in ``text`` as numbers of their own: not inside a longer
    number nor after a decimal point (the regular expression ``(?<![\d.])4624(?!\d)``).

    Said with ``str.find``, which scans a record's text several times faster than one
    expression tries every id at every position (most of reading JSON logs went there): one
    scan for the first two digits of each group of ids (4 scans for the 12 ids, rather than
    one per id), the digits found there then looked up."""
    found = set()
    for (prefix, size), codes in _WANTED_GROUPS.items():
        at = text.find(prefix)
        while at >= 0:
            code = codes.get(text[at : at + size])
            if code is not None and not text[at + size : at + size + 1].isdecimal():
                before = text[at - 1] if at else ""
                if not (before.isdecimal() or before == "."):
                    found.add(code)
            at = text.find(prefix, at + 1)
    return found


def normalize(record: WinRecord, source: Source) -> SmbEvent | None:
    """The contract event for a Windows record, or None for an event smbwatch does not report."""
    build = _BUILDERS.get(record.event_code)
    if build is None:
        return None
    if not time_in_range(record.time):
        source.warn("time_out_of_range", f"record {record.record_id}: its time is no date")
    event = SmbEvent(record.time, "host", "")  # the fields one by one: no keywords by name
    event.source_format = source.format
    event.source_file = source.file
    event.source_ref = record.record_id
    event.event_code = record.event_code
    event.server = _text(record.computer)
    event.time_precision = record.time_precision
    return event if build(event, _numbers_in_range(record, source)) else None


# The EventData fields read as numbers (``_number``): one too large to be a number of Windows
# costs that field, with a warning, not the record.
_NUMBER_FIELDS = (
    "AccessMask",
    "LogonType",
    "IpPort",
    "StartType",
    "ServiceStartType",
    "ServiceType",
    "SubjectLogonId",
    "TargetLogonId",
)
# Text this short is a number below 2**64 whatever it holds (0x and 16 hex digits, 18 decimal
# ones); longer text is parsed to tell (0x and 20 hex digits is 80 bits, and as long as 2**64).
_SURELY_IN_RANGE = 18


def _numbers_in_range(record: WinRecord, source: Source) -> Mapping[str, Any]:
    """The record's EventData without the number fields that no Windows field can hold."""
    data = record.data
    dropped = [name for name in _NUMBER_FIELDS if _out_of_range(data.get(name))]
    if not dropped:
        return data
    source.warn("number_out_of_range", f"record {record.record_id}: {', '.join(dropped)} dropped")
    return {name: value for name, value in data.items() if name not in dropped}


def _out_of_range(value: Any) -> bool:
    if type(value) is str and len(value) <= _SURELY_IN_RANGE:
        return False  # the common case, decided without parsing
    try:
        parse_int(value)
    except OutOfRange:
        return True
    return False


def _share_event(event: SmbEvent, data: Mapping[str, Any]) -> None:
    """The fields 5140 and 5142-5145 share: the share, its local path, who and from where."""
    share = _text(data.get("ShareName"))
    event.share = share
    event.share_name = _share_name(share)
    event.share_path = _text(data.get("ShareLocalPath"))
    event.object_type = _text(data.get("ObjectType"))
    _subject(event, data)
    event.src_ip = _address(data.get("IpAddress"))
    event.src_port = _port(data.get("IpPort"))


def _access(event: SmbEvent, data: Mapping[str, Any]) -> None:
    """AccessMask as an integer and AccessList as names (from the mask when not logged)."""
    event.access_mask = _number(data.get("AccessMask"))
    names = access_names(data.get("AccessList"))
    if names is None and event.access_mask is not None:
        names = mask_names(event.access_mask)
    event.access_list = names


def _tree_connect(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    event.action = "tree_connect"
    _share_event(event, data)
    _access(event, data)
    return True


def _access_check(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    event.action = "access_check"
    _share_event(event, data)
    _access(event, data)
    event.path = _text(data.get("RelativeTargetName"))
    return True


def _share_change(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    event.action = "share_change"
    _share_event(event, data)
    return True


def _logon(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    if _number(data.get("LogonType")) != NETWORK_LOGON:
        return False
    event.action = "logon"
    event.logon_type = NETWORK_LOGON
    event.user = _text(data.get("TargetUserName"))
    event.domain = _text(data.get("TargetDomainName"))
    event.session_id = event.logon_id = _logon_id(data.get("TargetLogonId"))
    event.workstation = _text(data.get("WorkstationName"))
    event.src_ip = _address(data.get("IpAddress"))
    event.src_port = _port(data.get("IpPort"))
    event.auth_package = _text(data.get("AuthenticationPackageName"))
    return True


def _service_install(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    """7045 (Service Control Manager) and 4697 (Security) name the same facts differently."""
    event.action = "service_install"
    _subject(event, data)
    event.service_name = _text(data.get("ServiceName"))
    event.image_path = _text(_first(data, "ImagePath", "ServiceFileName"))
    event.service_type = _hex_or_text(data.get("ServiceType"))
    start = _first(data, "StartType", "ServiceStartType")
    number = _number(start)
    event.start_type = (_START_TYPES.get(number) if number is not None else None) or _text(start)
    event.account = _text(_first(data, "AccountName", "ServiceAccount"))
    return True


def _task(action: str, content: str) -> Callable[[SmbEvent, Mapping[str, Any]], bool]:
    """4698/4699 (``TaskContent``) and 4702 (``TaskContentNew``): the task and what it runs.

    The XML is parsed with ``task_xml`` (no entity expansion, bounded); a task whose XML is
    malformed or hostile keeps its name and who registered it.
    """

    def build(event: SmbEvent, data: Mapping[str, Any]) -> bool:
        event.action = action
        _subject(event, data)
        event.task_name = _text(data.get("TaskName"))
        xml = data.get(content)
        if type(xml) is not str:
            return True
        try:
            task = parse_task_xml(xml)
        except TaskXmlError:
            return True
        event.task_command = _text(task.get("command"))
        event.task_arguments = _text(task.get("arguments"))
        event.task_author = _text(task.get("author"))
        event.task_user = _text(task.get("user_id"))
        event.task_run_level = _text(task.get("run_level"))
        return True

    return build


def _account_change(event: SmbEvent, data: Mapping[str, Any]) -> bool:
    """4742: who (``ANONYMOUS LOGON`` for Zerologon) changed which computer account."""
    event.action = "account_change"
    _subject(event, data)
    event.target_user = _text(data.get("TargetUserName"))
    return True


_BUILDERS: dict[int, Callable[[SmbEvent, Mapping[str, Any]], bool]] = {
    SHARE_ACCESSED: _tree_connect,
    SHARE_ACCESS_CHECK: _access_check,
    SHARE_ADDED: _share_change,
    SHARE_CHANGED: _share_change,
    SHARE_DELETED: _share_change,
    LOGON: _logon,
    SERVICE_INSTALLED_SCM: _service_install,
    SERVICE_INSTALLED_AUDIT: _service_install,
    TASK_CREATED: _task("task_create", "TaskContent"),
    TASK_UPDATED: _task("task_update", "TaskContentNew"),
    TASK_DELETED: _task("task_delete", "TaskContent"),
    COMPUTER_ACCOUNT_CHANGED: _account_change,
}


def _subject(event: SmbEvent, data: Mapping[str, Any]) -> None:
    event.user = _text(data.get("SubjectUserName"))
    event.domain = _text(data.get("SubjectDomainName"))
    event.session_id = event.logon_id = _logon_id(data.get("SubjectLogonId"))


def _first(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    """A logged string; Windows writes ``-`` for "none"."""
    if type(value) is not str:
        if value is None or isinstance(value, dict | list):
            return None
        value = str(value)
    text = value.strip()
    return text if text and text != "-" else None


def _number(value: Any) -> int | None:
    """An integer logged as a number, decimal text or ``0x`` hex text (AccessMask, LogonType);
    out of range it is none (``_numbers_in_range`` has said so)."""
    return bounded_int(value)


def _logon_id(value: Any) -> str | None:
    """A logon id as lower-case hex, however padded or cased the format wrote it."""
    if type(value) is str:
        return _hex_logon_id(value)
    number = _number(value)
    return None if number is None else f"{number:#x}"


@functools.lru_cache(maxsize=4096)  # a session logs many events under one logon id
def _hex_logon_id(text: str) -> str | None:
    number = _number(text)
    return None if number is None else f"{number:#x}"


def _hex_or_text(value: Any) -> str | None:
    """A flag word as unpadded lower-case hex (4697 ``0x10``), words as logged (7045)."""
    text = _text(value)
    if text is None or text[:2] not in ("0x", "0X"):
        return text
    number = _number(text)
    return text if number is None else f"{number:#x}"


def _address(value: Any) -> str | None:
    """An IP address in its canonical form; IPv4-mapped IPv6 (``::ffff:10.0.0.5``) as IPv4."""
    text = _text(value)
    return None if text is None else _canonical_address(text)


@functools.lru_cache(maxsize=4096)  # a log names few addresses, many times
def _canonical_address(text: str) -> str | None:
    if _canonical_ipv4(text):  # most: as ipaddress would write it, without its objects
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def _canonical_ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address written as ``ipaddress`` writes one: four decimal
    numbers up to 255, without leading zeros."""
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()):
            return False
        if (part[0] == "0" and len(part) > 1) or int(part) > 255:
            return False
    return True


def _port(value: Any) -> int | None:
    number = _number(value)
    return number if number is not None and 0 < number < 65536 else None


@functools.lru_cache(maxsize=4096)
def _share_name(share: str | None) -> str | None:
    r"""``C$`` from ``\\*\C$``; a name logged without a server part is kept whole."""
    if share is None:
        return None
    _server, separator, name = share.lstrip("\\").partition("\\")
    return name if separator else share
