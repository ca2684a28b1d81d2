"""Splunk's classic ``WinEventLog`` text: a time line, ``key=value`` lines, then the Message.

The Message is Windows' rendering of the event: labelled lines (``Share Name:``) grouped under
section lines (``Subject:``, ``New Logon:``). Labels are mapped back to the EventData names
they render, which is also how Splunk's own extracted fields (``Share_Name``) are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from smbwatch.events import SmbEvent
from smbwatch.winlog.inputs import bounded_lines
from smbwatch.winlog.normalize import normalize, worth_parsing
from smbwatch.winlog.numbers import event_code, filter_code, record_number
from smbwatch.winlog.record import RECORD_ERRORS, Source, WinRecord
from smbwatch.winlog.timestamps import splunk_time

# One event's text: a real one is a few KB (a 4698's task XML tens of KB). An event is held
# whole before it is parsed, as lines, so this bound is what an endless one costs in memory.
MAX_EVENT_CHARS = 1 << 20
_TIME_LINE = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2}(?: [AP]M)?\s*$")
_EVENT_CODE = re.compile(r"(?m)^EventCode=(\d+)\s*$")
_LABELLED = re.compile(r"([ \t]*)([^:\n]+?):[ \t]*(.*)")
# Message labels → the EventData field they render (5140-5145, 4624, 7045, 4697).
_FIELDS = {
    "Account Name": "SubjectUserName",
    "Account Domain": "SubjectDomainName",
    "Logon ID": "SubjectLogonId",
    "Object Type": "ObjectType",
    "Source Address": "IpAddress",
    "Source Port": "IpPort",
    "Share Name": "ShareName",
    "Share Path": "ShareLocalPath",
    "Relative Target Name": "RelativeTargetName",
    "Access Mask": "AccessMask",
    "Accesses": "AccessList",
    "Logon Type": "LogonType",
    "Workstation Name": "WorkstationName",
    "Source Network Address": "IpAddress",
    "Authentication Package": "AuthenticationPackageName",
    "Service Name": "ServiceName",
    "Service File Name": "ImagePath",
    "Service Type": "ServiceType",
    "Service Start Type": "StartType",
    "Service Account": "AccountName",
}
_NEW_LOGON = "New Logon"  # 4624's section for the account that logged on
_NEW_LOGON_FIELDS = {
    "Account Name": "TargetUserName",
    "Account Domain": "TargetDomainName",
    "Logon ID": "TargetLogonId",
}


def read_splunk(text: TextIO, source: Source) -> Iterator[SmbEvent]:
    """The events of a WinEventLog text export."""
    for block in _blocks(bounded_lines(text, source), source):
        match = _EVENT_CODE.search(block)
        if match is None or not worth_parsing(block, filter_code(match.group(1), source)):
            continue
        if "\ufffd" in block:
            source.warn("undecodable_bytes", "bytes that are not UTF-8 replaced in an event")
        try:
            record = record_from_splunk_text(block, source)
        except RECORD_ERRORS as error:
            source.warn("bad_record", f"WinEventLog event skipped: {error!r}")
            continue
        if event := normalize(record, source):
            yield event


def record_from_splunk_text(
    block: str, source: Source, time: int | None = None, time_precision: str | None = None
) -> WinRecord:
    """One WinEventLog event; ``time`` (with its ``time_precision``) replaces its zone-less
    time line when known (``_time``). The time line itself has whole seconds."""
    head, _, message = block.partition("\nMessage=")
    lines = head.strip().splitlines()
    pairs = (line.partition("=") for line in lines)
    header = {key.strip(): value.strip() for key, _, value in pairs}
    if time is None:
        time, time_precision = splunk_time(lines[0]), "s"
        source.warn_once("time_zone_unknown", "WinEventLog times carry no zone: read as UTC")
    return WinRecord(
        event_code=event_code(header["EventCode"]),
        time=time,
        record_id=record_number(header.get("RecordNumber"), source),
        computer=header.get("ComputerName"),
        data=message_fields(message),
        time_precision=time_precision,
    )


def message_fields(message: str) -> dict[str, str]:
    """EventData fields from a rendered Message; continuation lines extend the last field."""
    fields: dict[str, str] = {}
    section, last = "", None
    for line in message.splitlines():
        if not line.strip():
            last = None
            continue
        labelled = _LABELLED.fullmatch(line)
        if labelled is None:
            if last is not None:
                fields[last] += "\n" + line.strip()
            continue
        indent, label, value = labelled.groups()
        if not indent and not value:
            section, last = label.strip(), None
            continue
        last = _field_name(section, label.strip())
        if last is not None:
            fields.setdefault(last, value.strip())
    return fields


def data_from_splunk_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """EventData fields from Splunk's extractions (``Share_Name``, ``Account_Name``...).

    Splunk extracts 4624's two accounts into one multi-valued field: subject, then new logon.
    """
    data: dict[str, Any] = {}
    for key, value in row.items():
        label = key.replace("_", " ")
        if label in _NEW_LOGON_FIELDS and isinstance(value, list) and len(value) > 1:
            data[_FIELDS[label]] = value[0]
            data[_NEW_LOGON_FIELDS[label]] = value[-1]
        elif name := _FIELDS.get(label):
            data[name] = value if name == "AccessList" or not isinstance(value, list) else value[0]
    return data


def _field_name(section: str, label: str) -> str | None:
    if section == _NEW_LOGON and label in _NEW_LOGON_FIELDS:
        return _NEW_LOGON_FIELDS[label]
    return _FIELDS.get(label)


def _blocks(lines: Iterable[str], source: Source) -> Iterator[str]:
    """The text of each event: one starts at a time line, or at a second ``LogName=`` line."""
    block: list[str] = []
    size, has_log_name, oversized = 0, False, False
    for line in lines:
        log_name = line.startswith("LogName=")
        if (_TIME_LINE.match(line) or (log_name and has_log_name)) and (block or oversized):
            if block:
                yield "".join(block)
            block, size, has_log_name, oversized = [], 0, False, False
        has_log_name = has_log_name or log_name
        if oversized:
            continue
        size += len(line)
        if size > MAX_EVENT_CHARS:
            source.warn("splunk_event_too_large", f"an event over {MAX_EVENT_CHARS} chars skipped")
            block, oversized = [], True
            continue
        block.append(line)
    if block:
        yield "".join(block)
