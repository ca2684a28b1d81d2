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
8. an SMB1 (NT LM 0.12) session to ``data``: listed and ``report.docx`` downloaded again;
9. the second hop: from FILESRV, as the same account, ``psexesvc.exe`` copied on to
   ``\\\\BACKUP01\\ADMIN$`` (BACKUP01, 10.45.0.30: a second smbd, on the workstation's side of
   the link) and the service created there the same way (WKSTN01 → FILESRV → BACKUP01).

The content is deterministic (file names, sizes and SHA-256, printed at the end); timestamps,
ports, NTLM challenges and GUIDs change with every recording.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from lab import (  # noqa: E402
    CLIENT_NAME,
    SERVER_NAME,
    SHARES,
    LabError,
    SambaLab,
    _end_process_group,
    _run,
    pe_bytes,
)

THIRD_IP = "10.45.0.30"
THIRD_NAME = "BACKUP01"

# files on the server before the story starts: share, name, content
PLANTED = [
    ("data", "report.docx", b"Q3 revenue report, draft 2. " * 200),
    ("data", "old.log", b"2024-01-01 00:00:00 service started\n" * 40),
    ("data", "notes.tmp", b"remember to rotate the backup key\n" * 10),
    ("secret", "payroll.xlsx", b"name;iban;salary\n" + b"employee;DE00 0000;4200\n" * 300),
]
# files on the workstation the attacker uploads
TOOLS = {"psexesvc.exe": pe_bytes("PSEXESVC", 8192), "update.exe": pe_bytes("update", 4096)}


class ThreeHosts(SambaLab):
    """The lab with a third machine: BACKUP01, a second smbd at 10.45.0.30 on the workstation's
    side of the link, which the file server reaches as a client (its smbclient and net run in
    the server's namespace and name themselves FILESRV). The capture on the link sees both hops.
    """

    def start(self) -> None:
        super().start()
        try:
            self._start_third()
        except BaseException:
            self.stop(raise_errors=False)
            raise

    def _start_third(self) -> None:
        home = self.workdir / "third"
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        for share in SHARES:
            (home / "shares" / share).mkdir(parents=True, exist_ok=True)
        (home / "usermap").write_text((self.workdir / "usermap").read_text())
        self.third_conf = home / "smb.conf"
        self.third_conf.write_text(
            self.server_conf.read_text()
            .replace(f"netbios name = {SERVER_NAME}", f"netbios name = {THIRD_NAME}")
            .replace(str(self.workdir) + "/", str(home) + "/")
            .replace(
                "smb ports = 445 139",
                f"smb ports = 445\ninterfaces = {THIRD_IP}/24\nbind interfaces only = yes",
            )
        )
        self.hop_conf = home / "hop.conf"
        self.hop_conf.write_text(
            self.client_conf.read_text().replace(
                f"netbios name = {CLIENT_NAME}", f"netbios name = {SERVER_NAME}"
            )
        )
        _run(["ip", "-n", self.client_ns, "addr", "add", f"{THIRD_IP}/24", "dev", self.interface])
        secret = f"{self.password}\n{self.password}\n"
        _run(["smbpasswd", "-c", str(self.third_conf), "-a", "-s", "root"], input=secret)
        smbd = "smbd --foreground --no-process-group --debug-stdout --debuglevel=1"
        # a host name of its own (its own UTS namespace): Samba names itself by it in NTLMSSP
        named = f"hostname {THIRD_NAME.lower()} && exec {smbd} --configfile={self.third_conf}"
        with (home / "smbd.out").open("wb") as log:
            self._third = subprocess.Popen(
                self._in(self.client_ns, ["unshare", "--uts", "sh", "-c", named]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while f"{THIRD_IP}:445" not in _run(["ss", "-N", self.client_ns, "-Hltn"]).stdout:
            if self._third.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the third smbd did not start: {(home / 'smbd.out').read_text()}")
            time.sleep(0.05)

    def stop(self, raise_errors: bool = True) -> None:
        third = getattr(self, "_third", None)
        if third is not None:
            _end_process_group(third)
            self._third = None
        super().stop(raise_errors)

    def hop(self, argv: list[str], *, check: bool = True) -> None:
        """Run a Samba client on the file server against BACKUP01, from FILESRV's ADMIN$."""
        options = [
            f"--configfile={self.hop_conf}",
            "--option=client min protocol=SMB3_11",
            "--option=client max protocol=SMB3_11",
            f"--user={self.user}%{self.password}",
        ]
        _run(
            self._in(self.server_ns, [*argv, *options]), check=check, cwd=self.share_path("ADMIN$")
        )


def record(out: Path) -> None:
    """Play the story in a fresh lab while capturing it into ``out``."""
    with ThreeHosts() as lab:
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
            time.sleep(1)  # the second hop begins after the first
            unc = f"//{THIRD_NAME}/ADMIN$"
            lab.hop(["smbclient", unc, f"--ip-address={THIRD_IP}", "-c", "put psexesvc.exe; ls"])
            service = ["PSEXESVC", "PSEXESVC", r"%SystemRoot%\PSEXESVC.exe"]
            lab.hop(["net", "rpc", "service", "create", *service, "-S", THIRD_IP], check=False)
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
