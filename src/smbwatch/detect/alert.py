"""The alert record: what fired, on whose behalf, from where to where, on what, and the evidence.

Every alert carries, as fields, the who/where/what of its events in the event contract's names
(``user``, ``src_ip``, ``dst_ip``, ``share``, ``path``, ``service_name``...), whatever names the
rule's own template or group-by use, so a responder (and a CSV column) finds them in one place.
``command`` is the command line the action runs (a task's command and arguments, a service's
binary path); a PowerShell ``-EncodedCommand`` in it is decoded into ``command_decoded``.
``confirmed_by`` names the sources that saw the action (``network``, ``host``: its own events',
and those linked to them by the case's correlation); ``incident_id`` the incident it is part of
(``detect.incidents``).

Values are kept whole in the record (JSON lines keep everything); messages, which people read,
show at most ``SHOWN_CHARS`` characters of a value, ending in ``…``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final

from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.utf16 import utf16le

SHOWN_CHARS: Final = 200
ELLIPSIS: Final = "…"
MAX_ENCODED_CHARS: Final = 1 << 20  # a longer -EncodedCommand payload is not decoded

# The fields every alert has, in output order; the context fields and the rule's group-by
# fields follow, then "evidence". A group-by field may not take one of these names.
ALERT_FIELDS: Final = (
    "rule_id",
    "title",
    "severity",
    "risk_score",
    "message",
    "attack",
    "first_time",
    "last_time",
    "count",
    "confirmed_by",
    "incident_id",
)
# The who/where/what of an alert, in the contract's names, when its events have them.
CONTEXT_FIELDS: Final = (
    "user",
    "src_ip",
    "src_host",
    "dst_ip",
    "dst_host",
    "share",
    "path",
    "sha256",
    "service_name",
    "image_path",
    "task_name",
    "command",
    "command_decoded",
    "rpc_operation",
)

# PowerShell accepts any prefix of -EncodedCommand from -e on (and -ec); the payload is base64
# of UTF-16LE text.
_ENCODED_COMMAND = re.compile(
    r"(?:^|\s)[-/](?:e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom"
    r"|encodedcomm|encodedcomma|encodedcomman|encodedcommand)\s+['\"]?([A-Za-z0-9+/=]{8,})",
    re.IGNORECASE,
)
_POWERSHELL = re.compile(r"powershell|pwsh", re.IGNORECASE)
# Canonical host names, once the event model has them (read only then: a compiled record
# raises, and getattr catches, for every attribute it lacks).
_HOSTS: Final = tuple(name for name in ("src_host", "dst_host") if name in FIELD_NAMES)


@dataclass(slots=True)
class Alert:
    """One alert. ``group`` holds the rule's group-by values under the rule's own names (Splunk's
    for the faithful port); ``to_dict`` is the JSON object written by the sinks."""

    rule_id: str
    title: str
    severity: str | None
    risk_score: int
    message: str
    attack: list[str]
    first_time: str | None  # None: a time no date can show (the reader warned)
    last_time: str | None
    count: int
    confirmed_by: list[str] = field(default_factory=list)
    incident_id: str | None = None
    user: str | None = None
    src_ip: str | None = None
    src_host: str | None = None
    dst_ip: str | None = None
    dst_host: str | None = None
    share: str | None = None
    path: str | None = None
    sha256: str | None = None
    service_name: str | None = None
    image_path: str | None = None
    task_name: str | None = None
    command: str | None = None
    command_decoded: str | None = None
    rpc_operation: str | None = None
    group: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The alert fields, the context fields that are known, the group-by fields (each one,
        even when null, as a ``stats ... by`` row has it), then the evidence."""
        out: dict[str, Any] = {name: getattr(self, name) for name in ALERT_FIELDS}
        for name in CONTEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name, value in self.group.items():
            if name not in out:
                out[name] = value
        out["evidence"] = self.evidence
        return out


def event_context(event: SmbEvent) -> dict[str, Any]:
    """The context fields one event gives (``src_host``/``dst_host`` when the model has them),
    and the ``server`` named (which host an alert is about, when no ``dst_host`` is known).
    Written out field by field: it runs once per alert, and a hunting rule has many."""
    out: dict[str, Any] = {}
    if event.user is not None:
        out["user"] = event.user
    if event.src_ip is not None:
        out["src_ip"] = event.src_ip
    if event.dst_ip is not None:
        out["dst_ip"] = event.dst_ip
    if event.share is not None:
        out["share"] = event.share
    if event.path is not None:
        out["path"] = event.path
    elif event.pipe is not None:
        out["path"] = event.pipe
    if event.sha256 is not None:
        out["sha256"] = event.sha256
    if event.service_name is not None:
        out["service_name"] = event.service_name
    if event.image_path is not None:
        out["image_path"] = event.image_path
    if event.task_name is not None:
        out["task_name"] = event.task_name
    if event.rpc_operation is not None:
        out["rpc_operation"] = event.rpc_operation
    if event.server is not None:
        out["server"] = event.server
    command = command_line(event)
    if command is not None:
        out["command"] = command
    for name in _HOSTS:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    return out


def command_line(event: SmbEvent) -> str | None:
    """What the action runs: a task's command and arguments, else a service's binary path."""
    if event.task_command is not None:
        if event.task_arguments:
            return f"{event.task_command} {event.task_arguments}"
        return event.task_command
    return event.image_path


@functools.lru_cache(maxsize=64)
def decode_powershell(command: str) -> str | None:
    """The script of a PowerShell ``-EncodedCommand`` (``-enc``, ``-e``...) in ``command``.
    Remembered for the last few commands: a spray runs one command on many hosts, and each
    alert of it asks again (the 593-file stand-in: 2,345 alerts, 4 commands of 2.6 KB on
    average, 44 µs each to search and decode)."""
    if _POWERSHELL.search(command) is None:
        return None
    found = _ENCODED_COMMAND.search(command)
    if found is None or len(found.group(1)) > MAX_ENCODED_CHARS:
        return None
    payload = found.group(1)
    try:
        raw = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) % 2:
        raw = raw[:-1]
    text = utf16le(raw)
    return text or None


def shorten(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text of at most ``limit`` characters, ending in ``…`` when cut."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
