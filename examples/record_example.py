"""Record examples/lateral-movement.pcap: a PsExec-style story played against a real Samba server.

Run as root (``sudo python3 examples/record_example.py``, stdlib only) with the tools of
scripts/install-test-deps.sh. The workstation WKSTN01 (10.45.0.20) works against the file server
FILESRV (10.45.0.10) as LAB\\Administrator, every step a real Samba client (tests/lab.py):

1. a logon with a wrong password (SMB 3.1.1, STATUS_LOGON_FAILURE);
2. a logon (NTLM) and the share list (``smbclient -L``: IPC$, srvsvc NetShareEnumAll);
3. ``\\\\FILESRV\\ADMIN$`` (SMB 3.1.1): ``psexesvc.exe`` (a PE) uploaded, the share listed;
4. svcctl on IPC$: CreateServiceW "PSEXESVC" with binary path ``%SystemRoot%\\PSEXESVC.exe``
   (Samba refuses it, NT_STATUS_RPC_PROCNUM_OUT_OF_RANGE, but the request is on the wire);
5. srvsvc again (rpcclient ``srvinfo``: NetSrvGetInfo) and winreg (OpenHKLM, EnumKey of
   ``HKLM\\Software``);
6. ``\\\\FILESRV\\data`` (SMB 3.0.2): a PE uploaded as ``invoice.txt``, ``report.docx``
   downloaded, ``old.log`` renamed to ``archived.log``, ``notes.tmp`` deleted, a directory
   ``staging`` made and the share listed;
7. ``\\\\FILESRV\\secret`` over an encrypted SMB 3.1.1 session: ``payroll.xlsx`` downloaded (only
   SMB2 transform headers are visible);
8. an SMB1 (NT LM 0.12) session to ``data``: listed and ``report.docx`` downloaded again.

The content is deterministic (file names, sizes and SHA-256, printed at the end); timestamps,
ports, NTLM challenges and GUIDs change with every recording.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from lab import SambaLab, pe_bytes  # noqa: E402

# files on the server before the story starts: share, name, content
PLANTED = [
    ("data", "report.docx", b"Q3 revenue report, draft 2. " * 200),
    ("data", "old.log", b"2024-01-01 00:00:00 service started\n" * 40),
    ("data", "notes.tmp", b"remember to rotate the backup key\n" * 10),
    ("secret", "payroll.xlsx", b"name;iban;salary\n" + b"employee;DE00 0000;4200\n" * 300),
]
# files on the workstation the attacker uploads
TOOLS = {"psexesvc.exe": pe_bytes("PSEXESVC", 8192), "update.exe": pe_bytes("update", 4096)}


def record(out: Path) -> None:
    """Play the story in a fresh lab while capturing it into ``out``."""
    with SambaLab() as lab:
        for share, name, content in PLANTED:
            (lab.share_path(share) / name).write_bytes(content)
        for name, content in TOOLS.items():
            (lab.client_dir / name).write_bytes(content)
        with lab.capture(out) as capture:
            lab.smbclient("data", "ls", password="Winter2024", by_name=True, check=False)
            lab.list_shares()
            lab.smbclient("ADMIN$", ["put psexesvc.exe", "ls"], by_name=True)
            lab.net_rpc(
                ["service", "create", "PSEXESVC", "PSEXESVC", r"%SystemRoot%\PSEXESVC.exe"],
                check=False,
            )
            lab.rpcclient("srvinfo")
            lab.net_rpc(["registry", "enumerate", r"HKLM\Software"])
            data_commands = [
                "put update.exe invoice.txt",
                "get report.docx",
                "rename old.log archived.log",
                "del notes.tmp",
                "mkdir staging",
                "ls",
            ]
            lab.smbclient("data", data_commands, protocol="SMB3_02", by_name=True)
            lab.smbclient("secret", "get payroll.xlsx", encrypt=True, by_name=True)
            lab.smbclient("data", ["ls", "get report.docx report-smb1.docx"], protocol="NT1")
    print(f"{out}: {capture.packets} frames, {out.stat().st_size} bytes")
    for name, content in [*TOOLS.items(), *((name, data) for _, name, data in PLANTED)]:
        print(f"  {name:14} {len(content):6} bytes  sha256 {hashlib.sha256(content).hexdigest()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = REPO / "examples" / "lateral-movement.pcap"
    parser.add_argument("--out", type=Path, default=default, help=f"default {default}")
    record(parser.parse_args().out)


if __name__ == "__main__":
    main()
