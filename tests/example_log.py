"""The Security logs the example's servers would have written, for tests that join them with the
capture: what tshark sees of each SMB2 session, tree connect and create, as the 4624, 5140 and
5145 records Windows logs for them, in Winlogbeat's JSON shape (``winlog_convert``).

Written from tshark's reading of the capture and the example's documented machines
(examples/README.md), never with smbwatch. The encrypted session and the SMB1 one are left out
(a Windows server logs them too, but tshark cannot read what the encrypted one asked for).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from oracle import tshark_fields
from winlog_convert import to_winlogbeat
from winlog_oracle import OracleEvent

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"
SERVERS = {"10.45.0.10": "FILESRV", "10.45.0.30": "BACKUP01"}  # examples/README.md
DOMAIN = "LAB"
SECURITY = "Microsoft-Windows-Security-Auditing"


def _time(epoch: str) -> str:
    seconds = float(epoch)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def records(capture: Path = EXAMPLE) -> list[OracleEvent]:
    """The servers' records of the capture's SMB2 traffic, in time order."""
    streams: dict[str, dict[str, str]] = {}
    fields = ["tcp.stream", "ip.src", "tcp.srcport", "ip.dst", "ntlmssp.auth.username"]
    authenticate = "smb2.cmd == 1 && smb2.flags.response == 0 && ntlmssp.messagetype == 3"
    for stream, client, port, server, user in tshark_fields(capture, authenticate, fields):
        streams[stream] = {"client": client, "port": port, "server": server, "user": user}
    found: list[tuple[str, int, dict[str, str], str]] = []
    accepted = "smb2.cmd == 1 && smb2.flags.response == 1 && smb2.nt_status == 0"
    for stream, epoch, session in tshark_fields(
        capture, accepted, ["tcp.stream", "frame.time_epoch", "smb2.sesid"]
    ):
        if stream in streams:
            streams[stream]["logon"] = hex(int(session, 16) & 0xFFFFFFFF)
            found.append((epoch, 4624, streams[stream], ""))
    connects = "smb2.cmd == 3 && smb2.flags.response == 0"
    for stream, epoch, tree in tshark_fields(
        capture, connects, ["tcp.stream", "frame.time_epoch", "smb2.tree"]
    ):
        if "logon" in streams.get(stream, {}):
            found.append((epoch, 5140, streams[stream], tree))
    creates = "smb2.cmd == 5 && smb2.flags.response == 0"
    for stream, epoch, tree, name, mask in tshark_fields(
        capture,
        creates,
        ["tcp.stream", "frame.time_epoch", "smb2.tree", "smb2.filename", "smb.access_mask"],
    ):
        if "logon" in streams.get(stream, {}) and name:
            found.append((epoch, 5145, streams[stream], f"{tree}|{name}|{mask}"))
    found.sort(key=lambda item: (float(item[0]), item[1]))
    return [
        _record(number, epoch, code, stream, detail)
        for number, (epoch, code, stream, detail) in enumerate(found, start=1000)
    ]


def _record(number: int, epoch: str, code: int, stream: dict[str, str], detail: str) -> OracleEvent:
    computer = SERVERS[stream["server"]]
    data = {
        "SubjectUserSid": "S-1-5-21-1-2-3-500",
        "SubjectUserName": stream["user"],
        "SubjectDomainName": DOMAIN,
        "SubjectLogonId": stream["logon"],
        "IpAddress": stream["client"],
        "IpPort": stream["port"],
    }
    if code == 4624:
        data = {
            "SubjectUserSid": "S-1-0-0",
            "TargetUserName": stream["user"],
            "TargetDomainName": DOMAIN,
            "TargetLogonId": stream["logon"],
            "LogonType": "3",
            "AuthenticationPackageName": "NTLM",
            "WorkstationName": "-",
            "IpAddress": stream["client"],
            "IpPort": stream["port"],
        }
    elif code == 5140:
        data |= {"ObjectType": "File", "ShareName": "\\\\*\\" + detail.rsplit("\\", 1)[-1]}
        data |= {"AccessMask": "0x1", "AccessList": "%%4416"}
    else:
        tree, name, mask = detail.split("|")
        share = tree.rsplit("\\", 1)[-1]
        data |= {"ObjectType": "File", "ShareName": "\\\\*\\" + share, "RelativeTargetName": name}
        data |= {
            "AccessMask": mask,
            "AccessList": "%%4416 %%4417" if int(mask, 16) & 2 else "%%4416",
        }
    return OracleEvent(
        event_id=code,
        record_id=number,
        system_time=_time(epoch),
        computer=computer,
        provider=SECURITY,
        channel="Security",
        data=data,
        chunk=None,
        parser="example_log",
    )


def write(path: Path, capture: Path = EXAMPLE) -> Path:
    """The servers' Security logs as Winlogbeat JSON lines."""
    path.write_text("".join(json.dumps(to_winlogbeat(e)) + "\n" for e in records(capture)))
    return path
