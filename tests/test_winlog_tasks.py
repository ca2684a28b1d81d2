"""Scheduled task (4698/4702/4699) and computer account (4742) records: what the task XML runs,
read safely, the same in every format; hostile task XML costs the command, never the record."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import shared_dir
from test_winlog_formats import WRITERS, events_of
from winlog_convert import json_lines, to_winlogbeat
from winlog_oracle import OracleEvent, nxlog_records

from smbwatch.task_xml import MAX_ACTIONS, MAX_TASK_XML_CHARS, TaskXmlError, parse_task_xml

pytestmark = pytest.mark.unit

OTRF = shared_dir() / "data" / "otrf"
TASK_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"
# Writers whose format keeps EventData by name. Splunk's classic WinEventLog (its text, the JSON
# export of that text, the fields its add-on extracts) renders a 4698's task XML and a 4742's
# two accounts into Message labels that smbwatch does not read back: not covered.
STRUCTURED = [
    name for name in WRITERS if name not in ("splunk-text", "splunk-json", "splunk-fields")
]


def record(path: Path, event_id: int) -> dict:
    (found,) = [r for r in nxlog_records(path) if r["EventID"] == event_id]
    return found


def as_oracle(found: dict, names: tuple[str, ...], event_id: int | None = None) -> OracleEvent:
    """A JSON record's EventData, as the format writers take it."""
    return OracleEvent(
        event_id=event_id or found["EventID"],
        record_id=found.get("RecordNumber", 1234),
        system_time=found["@timestamp"],
        computer=found["Hostname"],
        provider="Microsoft-Windows-Security-Auditing",
        channel="Security",
        data={name: str(found[name]) for name in names},
        chunk=None,
        parser="json",
    )


TASK_CREATED = record(next(OTRF.glob("schtask_create_*.json.gz")), 4698)
ACCOUNT_CHANGED = record(next(OTRF.glob("mimikatz_CVE-2020-1472_*.json.gz")), 4742)
SUBJECT = ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId")


def task_xml_oracle(xml: str) -> dict[str, str]:
    """What the task runs, as ElementTree reads this benign XML of the corpus."""
    task = ElementTree.fromstring(xml.encode("utf-16"))
    exec_ = task.find(f"{TASK_NS}Actions/{TASK_NS}Exec")
    principal = task.find(f"{TASK_NS}Principals/{TASK_NS}Principal")
    assert exec_ is not None and principal is not None
    return {
        "task_command": exec_.findtext(f"{TASK_NS}Command"),
        "task_arguments": exec_.findtext(f"{TASK_NS}Arguments"),
        "task_author": task.findtext(f"{TASK_NS}RegistrationInfo/{TASK_NS}Author"),
        "task_user": principal.findtext(f"{TASK_NS}UserId"),
        "task_run_level": principal.findtext(f"{TASK_NS}RunLevel"),
    }


@pytest.mark.parametrize("writer", STRUCTURED)
def test_a_task_creation_reads_the_same_in_every_format(writer: str, tmp_path: Path) -> None:
    event = as_oracle(TASK_CREATED, (*SUBJECT, "TaskName", "TaskContent"))
    target = tmp_path / "task"
    target.write_bytes(WRITERS[writer][1]([event]))
    (found,), diagnostics = events_of(target)
    assert not diagnostics.counts
    expected = task_xml_oracle(TASK_CREATED["TaskContent"])
    assert {key: found.get(key) for key in expected} == expected
    assert (found["action"], found["event_code"]) == ("task_create", 4698)
    assert (found["task_name"], found["user"]) == (
        TASK_CREATED["TaskName"],
        TASK_CREATED["SubjectUserName"],
    )
    assert found["session_id"] == TASK_CREATED["SubjectLogonId"]


@pytest.mark.parametrize("event_id, action", [(4702, "task_update"), (4699, "task_delete")])
def test_updates_and_deletions(event_id: int, action: str, tmp_path: Path) -> None:
    """4702 logs the new XML as TaskContentNew; 4699 the deleted task's as TaskContent."""
    content = "TaskContentNew" if event_id == 4702 else "TaskContent"
    event = as_oracle(TASK_CREATED, (*SUBJECT, "TaskName"), event_id)
    event.data[content] = TASK_CREATED["TaskContent"]
    target = tmp_path / "task.json"
    target.write_text(json_lines([to_winlogbeat(event)]))
    (found,), _ = events_of(target)
    assert found["action"] == action
    assert found["task_command"] == task_xml_oracle(TASK_CREATED["TaskContent"])["task_command"]


@pytest.mark.parametrize("writer", STRUCTURED)
def test_a_computer_account_change_reads_the_same_in_every_format(
    writer: str, tmp_path: Path
) -> None:
    names = (*SUBJECT, "TargetUserName", "TargetDomainName", "TargetSid", "PasswordLastSet")
    target = tmp_path / "account"
    target.write_bytes(WRITERS[writer][1]([as_oracle(ACCOUNT_CHANGED, names)]))
    (found,), _ = events_of(target)
    assert (found["action"], found["event_code"]) == ("account_change", 4742)
    assert (found["user"], found["target_user"]) == ("ANONYMOUS LOGON", "MORDORDC$")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Task><Actions><Exec><Command>&lol3;</Command></Exec></Actions></Task>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Task><Actions><Exec><Command>&secret;</Command></Exec></Actions></Task>"""


@pytest.mark.parametrize(
    "xml",
    [
        BILLION_LAUGHS,
        EXTERNAL,
        "<Task><Actions><Exec><Command>cmd.exe</Command>",  # cut short
        "<Task>" + "<Actions>" * 10 + "</Task>",  # mismatched
        "<Task><Actions><Exec><Command>"
        + "A" * MAX_TASK_XML_CHARS
        + "</Command></Exec></Actions></Task>",
    ],
    ids=["entity-expansion", "external-entity", "truncated", "malformed", "too-large"],
)
def test_hostile_task_xml_costs_the_command_not_the_record(xml: str, tmp_path: Path) -> None:
    with pytest.raises(TaskXmlError):
        parse_task_xml(xml)
    event = as_oracle(TASK_CREATED, (*SUBJECT, "TaskName"))
    event.data["TaskContent"] = xml
    target = tmp_path / "hostile.json"
    target.write_text(json_lines([to_winlogbeat(event)]))
    (found,), _ = events_of(target)
    assert found["task_name"] == TASK_CREATED["TaskName"] and "task_command" not in found
    assert "lol" not in json.dumps(found) and "root:" not in json.dumps(found)


def test_only_the_first_actions_are_kept() -> None:
    actions = "".join(
        f"<Exec><Command>c{i}.exe</Command><Arguments>/{i}</Arguments></Exec>"
        for i in range(MAX_ACTIONS + 5)
    )
    task = parse_task_xml(f"<Task><Actions>{actions}</Actions></Task>")
    assert (task["command"], task["arguments"]) == ("c0.exe", "/0")
    assert len(task["exec"]) == MAX_ACTIONS
    assert task["exec"][-1] == {
        "command": f"c{MAX_ACTIONS - 1}.exe",
        "arguments": f"/{MAX_ACTIONS - 1}",
    }
