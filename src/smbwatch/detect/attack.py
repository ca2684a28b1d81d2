"""MITRE ATT&CK technique names, for the techniques the rules people run with smbwatch tag.

Rules carry technique ids (``attack.t1021.002``); ``smbwatch rules list`` shows them with their
names so a reader need not look them up. An id missing here is shown as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

TECHNIQUES: Final = {
    "T1003.001": "LSASS Memory",
    "T1003.002": "Security Account Manager",
    "T1003.003": "NTDS",
    "T1003.004": "LSA Secrets",
    "T1003.006": "DCSync",
    "T1007": "System Service Discovery",
    "T1012": "Query Registry",
    "T1021": "Remote Services",
    "T1021.002": "SMB/Windows Admin Shares",
    "T1021.003": "Distributed Component Object Model",
    "T1036.008": "Masquerade File Type",
    "T1039": "Data from Network Shared Drive",
    "T1047": "Windows Management Instrumentation",
    "T1049": "System Network Connections Discovery",
    "T1053.002": "At",
    "T1053.005": "Scheduled Task",
    "T1069.002": "Domain Groups",
    "T1070": "Indicator Removal",
    "T1087.002": "Domain Account",
    "T1098": "Account Manipulation",
    "T1112": "Modify Registry",
    "T1135": "Network Share Discovery",
    "T1187": "Forced Authentication",
    "T1210": "Exploitation of Remote Services",
    "T1484.001": "Group Policy Modification",
    "T1486": "Data Encrypted for Impact",
    "T1489": "Service Stop",
    "T1543.003": "Windows Service",
    "T1546.012": "Image File Execution Options Injection",
    "T1547": "Boot or Logon Autostart Execution",
    "T1547.001": "Registry Run Keys / Startup Folder",
    "T1547.004": "Winlogon Helper DLL",
    "T1547.009": "Shortcut Modification",
    "T1552.002": "Credentials in Registry",
    "T1557.001": "LLMNR/NBT-NS Poisoning and SMB Relay",
    "T1559.001": "Component Object Model",
    "T1569": "System Services",
    "T1569.002": "Service Execution",
    "T1570": "Lateral Tool Transfer",
    "T1574": "Hijack Execution Flow",
}


def technique_names(ids: Iterable[str]) -> str:
    """``T1021.002 SMB/Windows Admin Shares, T1570 Lateral Tool Transfer``."""
    return ", ".join(f"{i} {TECHNIQUES[i]}" if i in TECHNIQUES else i for i in ids)
