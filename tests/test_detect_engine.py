"""The rule engine: Sigma semantics, the field mapping on both sources, correlation, and hostile
rules and events. Events are real records (../shared/data/host), changed where a case needs it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from detect_support import FILE_COPY_EVTX, PSEXEC_EVTX, SVCCTL_EVTX, alert_dicts, host_events

from smbwatch.cli import build
from smbwatch.detect.engine import Detector
from smbwatch.detect.sigma import RuleError, RuleSet, load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent

pytestmark = pytest.mark.unit

PSEXEC = host_events(PSEXEC_EVTX)
PSEXESVC_WRITE = next(
    e for e in PSEXEC if e.source_ref == 349325
)  # 5145 PSEXESVC.exe 0x2 on ADMIN$
ADMIN_CONNECT = next(e for e in PSEXEC if e.source_ref == 349323)  # 5140 ADMIN$
SVCCTL = host_events(SVCCTL_EVTX)[0]  # 5145 svcctl on IPC$, 0x12019f


def rules(tmp_path: Path, detection: str, extra: str = "", name: str = "rule.yml") -> RuleSet:
    """Load one rule (and no built-in ones) from a detection block."""
    text = (
        "title: Test rule\nid: 5f2b1a3e-0000-4000-8000-000000000001\nstatus: test\n"
        "logsource:\n  product: windows\n  service: security\ndetection:\n"
        + textwrap.indent(textwrap.dedent(detection).strip(), "  ")
        + "\nlevel: high\n"
        + textwrap.dedent(extra)
    )
    path = tmp_path / name
    path.write_text(text)
    return load_rules([path], builtin=False)


def fires(ruleset: RuleSet, *events: SmbEvent) -> bool:
    return bool(alert_dicts(events, ruleset))


def as_network(event: SmbEvent, action: str = "create") -> SmbEvent:
    """The wire's view of a host 5145: the CREATE that caused the access check."""
    return event.copy(
        source="network",
        source_format="pcap",
        action=action,
        event_code=None,
        share=f"\\\\{event.server}\\{event.share_name}",
        object_type=None,
        dst_ip="10.23.42.10",
        dst_port=445,
    )


@pytest.mark.parametrize(
    ("item", "matches"),
    [
        ("RelativeTargetName: psexesvc.EXE", True),  # case-insensitive
        ("RelativeTargetName|cased: psexesvc.EXE", False),
        ("RelativeTargetName|cased: PSEXESVC.exe", True),
        ("RelativeTargetName: 'PSEXESVC.ex?'", True),
        ("RelativeTargetName: 'PS*SVC.exe'", True),
        ("RelativeTargetName: 'PS*SVC.dll'", False),
        ("RelativeTargetName|contains|all: [EXE, SVC]", True),
        ("RelativeTargetName|contains|all: [EXE, cmd]", False),
        ("RelativeTargetName|re: '^PSE[X]+ESVC\\.exe$'", True),
        ("RelativeTargetName|re: '^psexesvc'", False),  # regexes are case-sensitive
        ("RelativeTargetName|re|i: '^psexesvc'", True),
        ("IpAddress|cidr: 10.23.0.0/16", True),
        ("IpAddress|cidr: 10.24.0.0/16", False),
        ("IpAddress|cidr: 'fe80::/10'", False),
        ("IpPort|gt: 56000", True),
        ("IpPort|lt: 56000", False),
        ("IpPort: '56661'", True),
        ("AccessMask: '0x2'", True),
        ("AccessMask: 0x2", True),
        ("AccessList|contains: WriteData", True),
        ("AccessList|contains: '%%4416'", False),
        ("ServiceName|exists: false", True),
        ("ServiceName: null", True),
        ("SubjectUserName|exists: true", True),
        ("SubjectUserName|fieldref: TargetUserName", True),
        ("RelativeTargetName|fieldref: SubjectUserName", False),
        ("ShareName: 'ADMIN$'", True),  # Windows logs \\*\ADMIN$; either form matches
        ("ShareName: '\\\\\\\\\\*\\\\ADMIN$'", True),
        ("ShareName: '\\\\\\\\SRV\\\\ADMIN$'", False),
        ("Computer|endswith: .offsec.lan", True),
        ("EventID: [5140, 5145]", True),
        ("EventID: '5145'", True),
        ("EventID|gte: 5146", False),
    ],
)
def test_sigma_value_semantics(tmp_path: Path, item: str, matches: bool) -> None:
    ruleset = rules(tmp_path, f"selection:\n  {item}\ncondition: selection")
    assert ruleset.warnings == []
    assert fires(ruleset, PSEXESVC_WRITE) is matches


def test_keywords_search_every_value(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, "keywords:\n  - 'psexe*.exe'\n  - nomatch\ncondition: keywords")
    assert fires(ruleset, PSEXESVC_WRITE)
    assert not fires(ruleset, SVCCTL)


def test_windash_expansion(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path, "selection:\n  RelativeTargetName|windash: '/stdin'\ncondition: selection"
    )
    assert fires(ruleset, SVCCTL.copy(path="-stdin"))
    assert not fires(ruleset, SVCCTL)


def test_windows_rules_run_on_network_events(tmp_path: Path) -> None:
    """EventID 5145 is a network create/open/write; ShareName the \\\\*\\ form; AccessList from
    the requested mask, generic rights mapped as the server maps them."""
    ruleset = rules(
        tmp_path,
        """
        selection:
          EventID: 5145
          ShareName: '\\\\\\\\\\*\\\\IPC$'
          RelativeTargetName: svcctl
          AccessList|contains: 'WriteData'
          ObjectType: File
        condition: selection
        """,
    )
    wire = as_network(SVCCTL)
    assert fires(ruleset, wire)
    assert fires(ruleset, wire.copy(access_mask=0x40000000))  # GENERIC_WRITE
    assert not fires(ruleset, wire.copy(access_mask=0x80000000))  # GENERIC_READ
    assert not fires(ruleset, wire.copy(action="read"))
    write = wire.copy(action="write", access_mask=None)  # a write is WriteData
    assert fires(ruleset, write)
    directory = wire.copy(create_options=0x1)  # FILE_DIRECTORY_FILE
    assert not fires(ruleset, directory)


def test_tree_connect_is_the_wires_5140(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path, "selection:\n  EventID: 5140\n  ShareName: Admin$\ncondition: selection"
    )
    assert fires(ruleset, ADMIN_CONNECT)
    assert fires(ruleset, as_network(ADMIN_CONNECT, "tree_connect"))
    assert not fires(ruleset, as_network(ADMIN_CONNECT, "create"))


def test_zeek_vocabulary(tmp_path: Path) -> None:
    zeek = """title: Zeek test
id: 5f2b1a3e-0000-4000-8000-000000000002
logsource:
  product: zeek
  service: smb_files
detection:
  selection:
    path|endswith: '\\ADMIN$'
    name: PSEXESVC.exe
    action: SMB::FILE_WRITE
  condition: selection
level: low
"""
    path = tmp_path / "zeek.yml"
    path.write_text(zeek)
    ruleset = load_rules([path], builtin=False)
    wire = as_network(PSEXESVC_WRITE, "write")
    assert fires(ruleset, wire)
    assert not fires(ruleset, as_network(PSEXESVC_WRITE, "read"))
    assert fires(ruleset, wire.copy(share="\\\\WEC01\\ADMIN$"))  # the share as seen


def test_unknown_fields_and_placeholders_warn_and_match_nothing(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path,
        """
        selection:
          EventID: 5145
        odd:
          NoSuchField: x
        admins:
          IpAddress|expand: '%Admins%'
        condition: selection and not odd and not admins
        """,
    )
    assert len(ruleset.warnings) == 2
    assert all("'Test rule'" in w for w in ruleset.warnings)
    assert any("NoSuchField" in w for w in ruleset.warnings)
    assert any("%Admins%" in w for w in ruleset.warnings)
    assert fires(ruleset, PSEXESVC_WRITE)


def test_aggregation_and_template(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path,
        "selection:\n  EventID: 5145\n  ShareName: 'C$'\ncondition: selection",
        """
        smbwatch:
          risk_score: 42
          message: "$SubjectUserName$ touched C$ $count_of_nothing$ from $IpAddress$ ($NoField$)"
          group_by: [IpAddress, SubjectUserName]
        """,
    )
    events = host_events(FILE_COPY_EVTX)
    (alert,) = alert_dicts(events, ruleset)
    assert alert["count"] == len(events)
    assert alert["risk_score"] == 42
    assert (
        alert["message"] == "Administrator touched C$ $count_of_nothing$ from 10.0.2.15 ($NoField$)"
    )
    assert (alert["IpAddress"], alert["SubjectUserName"]) == ("10.0.2.15", "Administrator")
    assert alert["first_time"] < alert["last_time"]
    assert len(alert["evidence"]) == len(events)
    assert any("count_of_nothing" in w for w in ruleset.warnings)


def test_require_group_fields_drops_incomplete_events(tmp_path: Path) -> None:
    extra = "smbwatch:\n  group_by: [IpAddress, ServiceName]\n  require_group_fields: {}\n"
    detection = "selection:\n  EventID: 5145\ncondition: selection"
    assert alert_dicts([PSEXESVC_WRITE], rules(tmp_path, detection, extra.format("false")))
    assert not alert_dicts([PSEXESVC_WRITE], rules(tmp_path, detection, extra.format("true")))


CORRELATION = """title: Many accesses
id: 5f2b1a3e-0000-4000-8000-000000000003
correlation:
  type: {type}
  rules: [{rules}]
  group-by: [IpAddress]
  timespan: {span}
{condition}level: high
---
title: Share access
id: 5f2b1a3e-0000-4000-8000-000000000004
name: share_access
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 5145
  condition: selection
level: low
---
title: Share connect
id: 5f2b1a3e-0000-4000-8000-000000000005
name: share_connect
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 5140
  condition: selection
level: low
"""


COUNT = "  condition:\n    {}\n"


def correlation(tmp_path: Path, **parts: str) -> RuleSet:
    path = tmp_path / "correlation.yml"
    path.write_text(CORRELATION.format(**parts))
    return load_rules([path], builtin=False)


def test_event_count_correlation(tmp_path: Path) -> None:
    events = host_events(FILE_COPY_EVTX)  # 869 accesses in about 50 s from 10.0.2.15
    common = {"type": "event_count", "rules": "share_access", "span": "10m"}
    (alert,) = alert_dicts(
        events, correlation(tmp_path, **common, condition=COUNT.format("gte: 800"))
    )
    assert alert["IpAddress"] == "10.0.2.15"
    assert alert["count"] >= 800
    many = correlation(tmp_path, **common, condition=COUNT.format("gte: 2000"))
    assert alert_dicts(events, many) == []
    with pytest.raises(RuleError, match="without condition"):
        correlation(tmp_path, **common, condition="")


def test_value_count_correlation(tmp_path: Path) -> None:
    events = host_events(FILE_COPY_EVTX)
    condition = COUNT.format("field: RelativeTargetName\n    gte: {}")
    distinct = len({e.path.lower() for e in events})
    common = {"type": "value_count", "rules": "share_access", "span": "1h"}
    assert alert_dicts(
        events, correlation(tmp_path, **common, condition=condition.format(distinct))
    )
    too_many = correlation(tmp_path, **common, condition=condition.format(distinct + 1))
    assert alert_dicts(events, too_many) == []


def test_temporal_ordered_correlation(tmp_path: Path) -> None:
    common = {"type": "temporal_ordered", "span": "1m", "condition": ""}
    in_order = correlation(tmp_path, rules="share_connect, share_access", **common)
    pairs = [[e["source_ref"] for e in a["evidence"]] for a in alert_dicts(PSEXEC, in_order)]
    assert sorted(pairs) == [
        [349323, 349324],
        [349346, 349347],
    ]  # ADMIN$ then PSEXESVC.exe; IPC$ then its pipe
    reversed_order = correlation(tmp_path, rules="share_access, share_connect", **common)
    (alert,) = alert_dicts(PSEXEC, reversed_order)  # the last access before the IPC$ connect
    assert [e["source_ref"] for e in alert["evidence"]] == [349325, 349346]
    assert alert_dicts([ADMIN_CONNECT], in_order) == []


def test_unsupported_correlation_type_warns(tmp_path: Path) -> None:
    ruleset = correlation(
        tmp_path,
        type="value_sum",
        rules="share_access",
        span="1m",
        condition=COUNT.format("field: IpPort\n    gt: 1"),
    )
    assert any("value_sum" in w for w in ruleset.warnings)
    assert [a["title"] for a in alert_dicts(PSEXEC, ruleset)] == ["Share connect"] * 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("title: [unclosed", "not a valid Sigma rule"),
        ("just a string", "not a valid Sigma rule"),
        ("title: x\nlogsource: {product: windows}\ndetection: {condition: sel}\n", "not a valid"),
        (
            "title: x\nlogsource: {product: windows}\ndetection:\n  s: {EventID: 1}\n"
            "  condition: s\nsmbwatch: {risk_score: 101}\n",
            "risk_score",
        ),
        (
            "title: x\nlogsource: {product: windows}\ndetection:\n  s: {EventID: 1}\n"
            "  condition: s\nsmbwatch: {colour: red}\n",
            "unknown key",
        ),
        (
            "title: x\nlogsource: {product: windows}\ndetection:\n  s: {EventID: 1}\n"
            "  condition: s\nsmbwatch: {group_by: [count]}\n",
            "alert field",
        ),
        ("\x00\xff\xfe" * 100, "not a valid Sigma rule"),
    ],
)
def test_bad_rules_are_user_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(RuleError, match=problem) as caught:
        load_rules([path], builtin=False)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_rule_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such rule file"):
        load_rules([tmp_path / "nope.yml"])


def test_rule_values_cannot_inject_code(tmp_path: Path) -> None:
    hostile = "x') or __import__('os').system('touch " + str(tmp_path / "pwned") + "') or ('"
    ruleset = rules(
        tmp_path,
        f'selection:\n  RelativeTargetName:\n    - {hostile!r}\n    - "a\\nb"\n'
        "condition: selection",
    )
    assert not fires(ruleset, PSEXESVC_WRITE)
    assert fires(ruleset, PSEXESVC_WRITE.copy(path=hostile))
    assert not (tmp_path / "pwned").exists()


def test_events_that_break_the_contract_cost_only_themselves(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path, "selection:\n  RelativeTargetName|endswith: .exe\ncondition: selection"
    )
    diagnostics = Diagnostics()
    detector = Detector(ruleset, diagnostics)
    broken = [breaking(path=12345), breaking(rpc_args=["not", "a", "dict"])]
    for event in [*broken, PSEXESVC_WRITE]:
        if event is not None:
            detector.feed(event)
    if build() == "compiled":  # the compiled record refuses both: only the good event is left
        assert broken == [None, None] and not diagnostics.counts
        assert [len(a.evidence) for a in detector.alerts()] == [1]
    else:  # the detector copes with what the source-level record lets through
        assert diagnostics.counts["detect_bad_event"] == 1
        assert [len(a.evidence) for a in detector.alerts()] == [2]


def breaking(**changes: object) -> SmbEvent | None:
    """PSEXESVC_WRITE with fields of the wrong type; None where SmbEvent refuses them (compiled,
    a field's annotation is enforced on assignment)."""
    try:
        return PSEXESVC_WRITE.copy(**changes)
    except TypeError:
        return None


def test_rules_are_compiled_once_per_event_kind(tmp_path: Path) -> None:
    ruleset = rules(
        tmp_path, "selection:\n  EventID: 5145\n  RelativeTargetName: x\ncondition: selection"
    )
    detector = Detector(ruleset)
    assert "hits.append(0)" in detector.generated_source(("host", "access_check"))
    assert "hits.append" not in detector.generated_source(("host", "logon"))  # not admitted
    assert "hits.append(0)" in detector.generated_source(("network", "write"))
    detector.feed_all(PSEXEC)
    assert set(detector._matchers) == {(e.source, e.action) for e in PSEXEC}


def test_improved_rule_on_the_wire(tmp_path: Path) -> None:
    """The improved rule sees a CREATE with write access, a WRITE, a rename to an executable
    name and a PE written under any name (real records turned into their wire equivalents)."""
    improved = load_rules()
    malwr = next(e for e in host_events(FILE_COPY_EVTX) if e.source_ref == 438297)  # C$, 0x17019f

    def titles(event: SmbEvent) -> set[str]:
        return {a["title"] for a in alert_dicts([event], improved)}

    name = "Executable Written to an Administrative Share"
    assert name in titles(as_network(malwr, "create"))
    assert name in titles(as_network(malwr.copy(access_mask=0x40000000), "create"))
    assert name not in titles(as_network(malwr.copy(access_mask=0x120089), "open"))
    write = as_network(malwr, "write").copy(access_mask=None, bytes=4096, offset=0)
    assert name in titles(write)
    text_pe = write.copy(path="notes.txt", magic="PE")
    assert name in titles(text_pe)
    assert name not in titles(text_pe.copy(magic=None))
    assert name not in titles(text_pe.copy(share_name="DATA", share="\\\\PC01\\DATA"))
    renamed = as_network(malwr, "rename").copy(path="x.tmp", new_path="Windows\\x.scr")
    assert name in titles(renamed)
