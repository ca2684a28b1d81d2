"""Writers that turn independently parsed Windows events into the other formats responders get.

Written for the tests from the outside description of each format (what wevtutil, Winlogbeat,
evtx_dump and Splunk's WinEventLog produce), from ``winlog_oracle.OracleEvent``s, never with
smbwatch. The Splunk text renders each Message the way Windows does for that event id.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from winlog_oracle import OracleEvent

EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"

# How Windows renders the msobjs.dll access ids in a Message (Accesses:).
RENDERED_ACCESS = {
    "%%1537": "DELETE",
    "%%1538": "READ_CONTROL",
    "%%1539": "WRITE_DAC",
    "%%1540": "WRITE_OWNER",
    "%%1541": "SYNCHRONIZE",
    "%%1542": "ACCESS_SYS_SEC",
    "%%4416": "ReadData (or ListDirectory)",
    "%%4417": "WriteData (or AddFile)",
    "%%4418": "AppendData (or AddSubdirectory or CreatePipeInstance)",
    "%%4419": "ReadEA",
    "%%4420": "WriteEA",
    "%%4421": "Execute/Traverse",
    "%%4422": "DeleteChild",
    "%%4423": "ReadAttributes",
    "%%4424": "WriteAttributes",
}

_SUBJECT = """Subject:
\tSecurity ID:\t\t{SubjectUserSid}
\tAccount Name:\t\t{SubjectUserName}
\tAccount Domain:\t\t{SubjectDomainName}
\tLogon ID:\t\t{SubjectLogonId}
"""
_SHARE_NETWORK = """Network Information:\t
\tObject Type:\t\t{ObjectType}
\tSource Address:\t\t{IpAddress}
\tSource Port:\t\t{IpPort}
\t
"""
MESSAGES = {
    5140: "A network share object was accessed.\n\n"
    + _SUBJECT
    + "\n"
    + _SHARE_NETWORK
    + """Share Information:
\tShare Name:\t\t{ShareName}
\tShare Path:\t\t{ShareLocalPath}

Access Request Information:
\tAccess Mask:\t\t{AccessMask}
\tAccesses:\t\t{Accesses}
""",
    5145: "A network share object was checked to see whether client can be granted desired "
    "access.\n\n"
    + _SUBJECT
    + "\n"
    + _SHARE_NETWORK
    + """Share Information:
\tShare Name:\t\t{ShareName}
\tShare Path:\t\t{ShareLocalPath}
\tRelative Target Name:\t{RelativeTargetName}

Access Request Information:
\tAccess Mask:\t\t{AccessMask}
\tAccesses:\t\t{Accesses}
\t\t\t\t
Access Check Results:
\t-
""",
    4624: "An account was successfully logged on.\n\n"
    + _SUBJECT
    + """
Logon Information:
\tLogon Type:\t\t{LogonType}
\tRestricted Admin Mode:\t{RestrictedAdminMode}
\tVirtual Account:\t\tNo
\tElevated Token:\t\tYes

Impersonation Level:\t\tImpersonation

New Logon:
\tSecurity ID:\t\t{TargetUserSid}
\tAccount Name:\t\t{TargetUserName}
\tAccount Domain:\t\t{TargetDomainName}
\tLogon ID:\t\t{TargetLogonId}
\tLinked Logon ID:\t\t0x0
\tNetwork Account Name:\t-
\tNetwork Account Domain:\t-
\tLogon GUID:\t\t{LogonGuid}

Process Information:
\tProcess ID:\t\t{ProcessId}
\tProcess Name:\t\t{ProcessName}

Network Information:
\tWorkstation Name:\t{WorkstationName}
\tSource Network Address:\t{IpAddress}
\tSource Port:\t\t{IpPort}

Detailed Authentication Information:
\tLogon Process:\t\t{LogonProcessName}
\tAuthentication Package:\t{AuthenticationPackageName}
\tTransited Services:\t{TransmittedServices}
\tPackage Name (NTLM only):\t{LmPackageName}
\tKey Length:\t\t{KeyLength}

This event is generated when a logon session is created. It is generated on the computer that
was accessed.
""",
    4697: "A service was installed in the system.\n\n"
    + _SUBJECT
    + """
Service Information:
\tService Name:\t\t{ServiceName}
\tService File Name:\t{ServiceFileName}
\tService Type:\t\t{ServiceType}
\tService Start Type:\t{ServiceStartType}
\tService Account:\t\t{ServiceAccount}
""",
    5142: "A network share object was added.\n\n"
    + _SUBJECT
    + """
Share Information:\t
\tShare Name:\t\t{ShareName}
\tShare Path:\t\t{ShareLocalPath}
""",
    5143: "A network share object was modified.\n\n"
    + _SUBJECT
    + """
Share Information:
\tObject Type:\t\t{ObjectType}
\tShare Name:\t\t{ShareName}
\tShare Path:\t\t{ShareLocalPath}

Change Information:
\tOld Remark:\t\t{OldRemark}
\tNew Remark:\t\t{NewRemark}
\tOld MaxUsers:\t\t{OldMaxUsers}
\tNew Maxusers:\t\t{NewMaxUsers}
\tOld ShareFlags:\t\t{OldShareFlags}
\tNew ShareFlags:\t\t{NewShareFlags}
\tOld SD:\t\t{OldSD}
\tNew SD:\t\t{NewSD}
""",
    5144: "A network share object was deleted.\n\n"
    + _SUBJECT
    + """
Share Information:\t
\tShare Name:\t\t{ShareName}
\tShare Path:\t\t{ShareLocalPath}
""",
    7045: """A service was installed in the system.

Service Name:  {ServiceName}
Service File Name:  {ImagePath}
Service Type:  {ServiceType}
Service Start Type:  {StartType}
Service Account:  {AccountName}""",
}
_TASKS = {5140: "File Share", 5145: "Detailed File Share", 4624: "Logon", 4697: "Other"}


def moment(event: OracleEvent) -> datetime:
    """The event's SystemTime, in any rendering python-evtx or Windows uses (to the µs)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", event.system_time.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text).astimezone(UTC)


def windows_time(event: OracleEvent) -> str:
    """SystemTime as Windows writes it: seven fraction digits and Z."""
    return moment(event).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def to_xml(event: OracleEvent, quote: str = '"') -> str:
    """The event as ``Get-WinEvent ... ToXml()`` / wevtutil write it (Splunk uses ' quotes)."""

    def attribute(value: str) -> str:
        text = quoteattr(value)
        return text if quote == '"' else "'" + text[1:-1].replace("'", "&apos;") + "'"

    data = "".join(
        f"<Data Name={attribute(name)}>{escape(value)}</Data>" for name, value in event.data.items()
    )
    # Service Control Manager events carry qualifiers, as Windows writes them.
    qualifiers = f" Qualifiers={attribute('16384')}" if event.event_id == 7045 else ""
    return (
        f"<Event xmlns={attribute(EVENT_NS)}><System>"
        f"<Provider Name={attribute(event.provider)}/>"
        f"<EventID{qualifiers}>{event.event_id}</EventID><Version>0</Version><Level>0</Level>"
        f"<TimeCreated SystemTime={attribute(windows_time(event))}/>"
        f"<EventRecordID>{event.record_id}</EventRecordID>"
        f"<Channel>{escape(event.channel)}</Channel><Computer>{escape(event.computer)}</Computer>"
        f"</System><EventData>{data}</EventData></Event>"
    )


def to_xml_document(events: list[OracleEvent]) -> str:
    """Event Viewer's "Save as XML" / ``wevtutil qe /e:Events``: one document, pretty lines."""
    body = "\n".join(to_xml(event) for event in events)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n{body}\n</Events>\n'


def to_winlogbeat(event: OracleEvent) -> dict:
    """A Winlogbeat 8 document as its file output or an Elasticsearch export holds it."""
    return {
        "@timestamp": moment(event).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "event": {"code": str(event.event_id), "kind": "event", "provider": event.provider},
        "host": {"name": event.computer.split(".")[0]},
        "winlog": {
            "channel": event.channel,
            "computer_name": event.computer,
            "event_id": str(event.event_id),
            "record_id": str(event.record_id),
            "provider_name": event.provider,
            "event_data": {name: value for name, value in event.data.items() if value != ""},
        },
    }


def to_evtx_dump(event: OracleEvent) -> dict:
    """evtx_dump / Chainsaw JSON, with EventID carrying its attributes (``#text``)."""
    return {
        "Event": {
            "#attributes": {"xmlns": EVENT_NS},
            "System": {
                "Provider": {"#attributes": {"Name": event.provider}},
                "EventID": {"#attributes": {"Qualifiers": ""}, "#text": event.event_id},
                "TimeCreated": {"#attributes": {"SystemTime": windows_time(event)}},
                "EventRecordID": event.record_id,
                "Channel": event.channel,
                "Computer": event.computer,
            },
            "EventData": dict(event.data),
        }
    }


def to_splunk_text(event: OracleEvent) -> str:
    """Splunk's classic WinEventLog event: local time line, key=value header, Message."""
    fields = {name: value or "-" for name, value in event.data.items()}
    for name in ("SubjectLogonId", "TargetLogonId"):
        if name in fields:  # Windows renders logon ids without padding, in upper case
            fields[name] = f"0x{int(fields[name], 16):X}"
    if "AccessList" in fields:
        names = [RENDERED_ACCESS[code] for code in fields["AccessList"].split()]
        fields["Accesses"] = "\n\t\t\t\t".join(names)
    template = MESSAGES.get(event.event_id, "An event smbwatch does not report:\n\tData:\t{Data}\n")
    message = template.format_map(_Missing(fields))
    return (
        moment(event).strftime("%m/%d/%Y %I:%M:%S %p")
        + "\nLogName="
        + event.channel
        + f"\nEventCode={event.event_id}\nEventType=0\nComputerName={event.computer}"
        + "\nSourceName=Microsoft Windows security auditing.\nType=Information"
        + f"\nRecordNumber={event.record_id}\nKeywords=Audit Success"
        + f"\nTaskCategory={_TASKS.get(event.event_id, 'None')}\nOpCode=Info"
        + "\nMessage="
        + message
        + "\n"
    )


def to_splunk_json(event: OracleEvent) -> dict:
    """A line of Splunk's JSON export: ``_raw`` is the WinEventLog text, ``_time`` is exact."""
    return {
        "preview": False,
        "result": {
            "_time": moment(event).isoformat(timespec="microseconds"),
            "_raw": to_splunk_text(event),
            "EventCode": str(event.event_id),
            "ComputerName": event.computer,
        },
    }


def to_splunk_xml_json(event: OracleEvent) -> dict:
    """A Splunk JSON export row of an XmlWinEventLog source: ``_raw`` is the event's XML."""
    return {
        "preview": False,
        "result": {"_raw": to_xml(event, quote="'"), "EventCode": str(event.event_id)},
    }


# Splunk's Windows add-on extracts Message labels as fields named after them (Share_Name).
_SPLUNK_FIELDS = {
    "ShareName": "Share_Name",
    "ShareLocalPath": "Share_Path",
    "RelativeTargetName": "Relative_Target_Name",
    "IpAddress": "Source_Address",
    "IpPort": "Source_Port",
    "ObjectType": "Object_Type",
    "AccessMask": "Access_Mask",
    "LogonType": "Logon_Type",
    "WorkstationName": "Workstation_Name",
    "AuthenticationPackageName": "Authentication_Package",
    "ServiceName": "Service_Name",
    "ServiceFileName": "Service_File_Name",
    "ImagePath": "Service_File_Name",
    "ServiceType": "Service_Type",
    "ServiceStartType": "Service_Start_Type",
    "StartType": "Service_Start_Type",
    "ServiceAccount": "Service_Account",
    "AccountName": "Service_Account",
}


def to_splunk_fields(event: OracleEvent) -> dict:
    """A Splunk search result without ``_raw``: only the extracted fields, as a JSON export
    of ``| table *`` gives them; 4624's two accounts share multi-valued fields."""
    data = event.data
    row: dict = {
        "_time": moment(event).isoformat(timespec="microseconds"),
        "EventCode": str(event.event_id),
        "ComputerName": event.computer,
        "RecordNumber": str(event.record_id),
    }
    for name, field in _SPLUNK_FIELDS.items():
        if data.get(name):
            row[field] = data[name]
    if "AccessList" in data:
        row["Accesses"] = [RENDERED_ACCESS[code] for code in data["AccessList"].split()]
    subject = [data.get(f"Subject{part}", "-") for part in ("UserName", "DomainName", "LogonId")]
    if event.event_id == 4624:
        target = [data[f"Target{part}"] for part in ("UserName", "DomainName", "LogonId")]
        pairs = zip(subject, target, strict=True)
        row["Account_Name"], row["Account_Domain"], row["Logon_ID"] = map(list, pairs)
    else:
        row["Account_Name"], row["Account_Domain"], row["Logon_ID"] = subject
    return {"preview": False, "result": row}


def to_elastic_hit(event: OracleEvent) -> dict:
    """A hit of an Elasticsearch query over Winlogbeat indices, as exported line by line."""
    return {"_index": "winlogbeat-8", "_id": str(event.record_id), "_source": to_winlogbeat(event)}


def json_lines(documents: list[dict]) -> str:
    return "".join(json.dumps(document) + "\n" for document in documents)


class _Missing(dict):
    """format_map fields: an absent EventData field renders as Windows' ``-``."""

    def __missing__(self, key: str) -> str:
        return "-"
