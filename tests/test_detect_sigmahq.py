"""The public SigmaHQ rules (../shared/sigma): all load, the constructs smbwatch cannot evaluate
are named, and each Windows 5140/5145 rule fires on a positive event and not on a negative one,
both built from real records (changed only where the rule needs a value the corpus lacks).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml
from detect_support import (
    ATEXEC_EVTX,
    FILE_COPY_EVTX,
    PSEXEC_EVTX,
    SIGMA,
    SPOOLSS_EVTX,
    SVCCTL_EVTX,
    alert_dicts,
    host_events,
)

from smbwatch.detect.sigma import _LOADER, _builtin_sources, _user_sources, load_rules
from smbwatch.events import SmbEvent

pytestmark = pytest.mark.unit

WINDOWS_RULES = sorted((SIGMA / "windows-security").glob("*.yml"))


@cache
def real(path: Path, record: int) -> SmbEvent:
    """The SmbEvent of one real record."""
    return next(e for e in host_events(path) if e.source_ref == record)


def svcctl() -> SmbEvent:
    return real(SVCCTL_EVTX, 568342)


def spoolss() -> SmbEvent:
    return real(SPOOLSS_EVTX, 160445)


def malwr() -> SmbEvent:  # malwr.exe written to C$ with 0x17019f
    return real(FILE_COPY_EVTX, 438297)


def admin_connect() -> SmbEvent:  # 5140 to ADMIN$ by admmig
    return real(PSEXEC_EVTX, 349323)


def psexec_stdin() -> SmbEvent:
    return real(PSEXEC_EVTX, 349352)


def sysvol(path: str, mask: int) -> SmbEvent:
    return malwr().copy(share="\\\\*\\SYSVOL", share_name="SYSVOL", path=path, access_mask=mask)


# rule file stem → (positive, negative)
CASES = {
    "win_security_admin_share_access": (
        admin_connect,
        lambda: admin_connect().copy(user="WEC01$"),
    ),
    "win_security_atsvc_task": (
        lambda: real(ATEXEC_EVTX, 2004847),
        lambda: real(ATEXEC_EVTX, 2004847).copy(access_mask=0x1),
    ),
    "win_security_dce_rpc_smb_spoolss_named_pipe": (
        spoolss,
        lambda: spoolss().copy(path="srvsvc"),
    ),
    "win_security_dcom_iertutil_dll_hijack": (
        lambda: malwr().copy(path="Program Files\\Internet Explorer\\iertutil.dll"),
        lambda: malwr().copy(path="Program Files\\Internet Explorer\\iertutil.dll", user="PC$"),
    ),
    "win_security_exploit_cve_2021_1675_printspooler_security": (
        lambda: spoolss().copy(access_mask=0x3),
        spoolss,
    ),
    "win_security_exploit_cve_2023_36884_office_windows_html_rce_share_access_pattern": (
        lambda: admin_connect().copy(share_path="\\\\104.234.239.26\\MSHTML_C7\\5\\"),
        lambda: admin_connect().copy(share_path="C:\\Windows\\MSHTML_C7\\5\\"),
    ),
    "win_security_gpo_scheduledtasks": (
        lambda: sysvol(
            "corp\\Policies\\Machine\\Preferences\\ScheduledTasks\\ScheduledTasks.xml", 2
        ),
        lambda: sysvol(
            "corp\\Policies\\Machine\\Preferences\\ScheduledTasks\\ScheduledTasks.xml", 1
        ),
    ),
    "win_security_impacket_psexec": (
        lambda: psexec_stdin().copy(path="RemCom_stdin"),
        psexec_stdin,
    ),
    "win_security_impacket_secretdump": (
        lambda: real(PSEXEC_EVTX, 349324).copy(path="SYSTEM32\\xHgLrPbo.tmp"),
        lambda: real(ATEXEC_EVTX, 2004857),  # Temp\bouWFQYO.tmp on ADMIN$
    ),
    "win_security_lm_namedpipe": (
        lambda: real(PSEXEC_EVTX, 349347),  # the PSEXESVC pipe
        svcctl,
    ),
    "win_security_malware_bluesky_ransomware_files_indicators": (
        lambda: malwr().copy(path="Users\\Public\\# DECRYPT FILES BLUESKY #.txt"),
        malwr,
    ),
    "win_security_net_share_obj_susp_desktop_ini": (
        lambda: malwr().copy(path="Users\\Public\\desktop.ini"),
        lambda: malwr().copy(path="Users\\Public\\desktop.ini", access_mask=0x120089),
    ),
    "win_security_petitpotam_network_share": (
        lambda: spoolss().copy(path="lsarpc", user="ANONYMOUS LOGON"),
        lambda: spoolss().copy(path="lsarpc"),
    ),
    "win_security_protected_storage_service_access": (
        lambda: svcctl().copy(path="protected_storage"),
        svcctl,
    ),
    "win_security_remote_registry_management_via_reg": (
        lambda: svcctl().copy(path="\\winreg"),
        svcctl,
    ),
    "win_security_smb_file_creation_admin_shares": (
        lambda: malwr().copy(access_mask=0x2),
        malwr,  # 0x17019f: the rule's exact 0x2 misses it
    ),
    "win_security_susp_group_policy_startup_script_added_to_gpo": (
        lambda: sysvol("corp\\Policies\\Machine\\Scripts\\scripts.ini", 0x2),
        lambda: sysvol("corp\\Policies\\Machine\\Scripts\\scripts.ini", 0x1),
    ),
    "win_security_susp_psexec": (
        lambda: psexec_stdin().copy(path="PAExec-4242-WS01-stdin"),
        psexec_stdin,  # PSEXESVC-...-stdin is filtered out
    ),
    "win_security_susp_raccess_sensitive_fext": (
        lambda: malwr().copy(path="Users\\a\\Outlook\\archive.pst"),
        malwr,
    ),
    "win_security_svcctl_remote_service": (
        svcctl,
        lambda: svcctl().copy(access_mask=0x1),
    ),
    "win_security_transf_files_with_cred_data_via_network_shares": (
        lambda: malwr().copy(path="Windows\\System32\\config\\SAM"),
        malwr,
    ),
    "win_security_wmiprvse_wbemcomn_dll_hijack": (
        lambda: malwr().copy(path="Windows\\System32\\wbem\\wbemcomn.dll"),
        lambda: malwr().copy(path="Windows\\System32\\wbem\\wbemcomn.dll", user="PC01$"),
    ),
}


def test_every_windows_rule_has_a_case() -> None:
    assert sorted(CASES) == [p.stem for p in WINDOWS_RULES]


@pytest.mark.parametrize("rule_file", WINDOWS_RULES, ids=lambda p: p.stem)
def test_windows_rule_positive_and_negative(rule_file: Path) -> None:
    ruleset = load_rules([rule_file], builtin=False)
    (rule,) = ruleset.rules
    positive, negative = (make() for make in CASES[rule_file.stem])
    fired = alert_dicts([positive], ruleset)
    assert [a["rule_id"] for a in fired] == [rule.rule_id]
    assert fired[0]["evidence"] == [
        {"source_file": positive.source_file, "source_ref": positive.source_ref}
    ]
    assert alert_dicts([negative], ruleset) == []


def test_all_shared_rules_load_and_name_what_they_cannot_evaluate() -> None:
    files = sorted(SIGMA.rglob("*.yml"))
    ruleset = load_rules([SIGMA], builtin=False)
    assert {rule.origin for rule in ruleset.rules} == {str(f) for f in files}
    assert len(ruleset.rules) == len(files)
    by_title = {rule.title: rule for rule in ruleset.rules}
    remote_registry = by_title["Remote Registry Management Using Reg Utility"]
    assert any("%Admins_Workstations%" in w for w in remote_registry.warnings)
    gpo = by_title["Persistence and Execution at Scale via GPO Scheduled Task"]
    assert any("AttributeLDAPDisplayName" in w for w in gpo.warnings)
    for line in ruleset.warnings:  # one line each, naming the rule
        assert "\n" not in line
        assert any(f"'{rule.title}'" in line for rule in ruleset.rules if rule.warnings)
    silent = [r for r in ruleset.rules if not r.warnings]
    assert by_title["Impacket PsExec Execution"] in silent


def test_rules_are_read_as_pysigma_reads_them() -> None:
    """The rule files are parsed by libyaml (``sigma._LOADER``): every built-in and shared
    rule gives the documents PyYAML's own safe loader, the one pySigma uses, gives."""
    sources = [*_builtin_sources(), *_user_sources(SIGMA)]
    assert _LOADER is yaml.CSafeLoader and len(sources) > 40
    for origin, text in sources:
        assert list(yaml.load_all(text, Loader=_LOADER)) == list(yaml.safe_load_all(text)), origin


def test_zeek_smb_files_rules_run_on_host_share_access() -> None:
    """Zeek's smb_files names map onto 5145 events too: ``path`` is the share, ``name`` the file."""
    ruleset = load_rules([SIGMA / "zeek"], builtin=False)
    titles = {a["title"] for a in alert_dicts([spoolss()], ruleset)}
    assert titles == {"SMB Spoolss Name Piped Usage"}
    titles = {a["title"] for a in alert_dicts([malwr().copy(path="a\\b.kirbi")], ruleset)}
    assert titles == {"Suspicious Access to Sensitive File Extensions - Zeek"}
    assert alert_dicts([svcctl()], ruleset) == []  # svcctl is among the known pipes
