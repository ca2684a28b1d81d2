"""Real SMB traffic on this machine: Samba's smbd and its clients in private network namespaces.

Decoders are tested on real bytes, not hand-built ones. ``SambaLab`` runs Debian's ``smbd`` in one
network namespace (the server FILESRV, 10.45.0.10) and Samba's own clients (``smbclient``,
``rpcclient``, ``net``) in another (the workstation WKSTN01, 10.45.0.20), joined by a veth pair;
``SambaLab.capture`` records that link with ``tcpdump``. Two namespaces rather than one loopback
give the capture distinct client and server addresses, as on a real network.

The link has an MTU of 1500 and segmentation, receive and checksum offloads off, so frames are at
most 1514 bytes and carry valid TCP checksums, like an Ethernet capture (not 64 KiB loopback
super-frames). Server, clients and tcpdump run on one CPU: veth queues packets per sending CPU, so
a sender spread over two CPUs gets its segments reordered, and the capture fills with out-of-order
segments and retransmissions that a real switched network would rarely show.

Everything lives in one work directory (configs, passdb, state, logs, share roots). On exit, also on
failure, smbd and whatever is left in the namespaces is killed by pid and the namespaces deleted.
Needs root and the tools installed by ``scripts/install-test-deps.sh``: a missing tool or a server
that does not come up raises ``LabError`` (never a skip).

Samba wants a Unix account behind every SMB user; the lab maps its one SMB user onto root with
``username map`` so that nothing is added to /etc/passwd. Debian's Samba 4.17 still speaks SMB1
(NT1) when ``server min protocol = NT1``, which the lab sets.

    with SambaLab() as lab, lab.capture(Path("x.pcap")) as cap:
        (lab.client_dir / "psexesvc.exe").write_bytes(pe_bytes("psexesvc"))
        lab.smbclient("ADMIN$", ["put psexesvc.exe"], protocol="SMB3_11")
    print(cap.packets)
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Dialect = Literal["NT1", "SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"]

#: Samba's names of the dialects the lab can force, oldest first.
DIALECTS: tuple[Dialect, ...] = ("NT1", "SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11")

#: The same dialects as the event contract names them (DESIGN.md, field ``dialect``).
EVENT_DIALECT: dict[str, str] = {
    "NT1": "NT LM 0.12",
    "SMB2_02": "2.0.2",
    "SMB2_10": "2.1",
    "SMB3_00": "3.0",
    "SMB3_02": "3.0.2",
    "SMB3_11": "3.1.1",
}

#: DialectRevision in an SMB2 NEGOTIATE response (MS-SMB2 2.2.4), for the SMB2/3 dialects.
DIALECT_REVISION: dict[str, int] = {
    "SMB2_02": 0x0202,
    "SMB2_10": 0x0210,
    "SMB3_00": 0x0300,
    "SMB3_02": 0x0302,
    "SMB3_11": 0x0311,
}

#: What the lab runs (scripts/install-test-deps.sh installs them; taskset is in util-linux).
TOOLS = (
    "ip", "ss", "ethtool", "taskset", "tcpdump",
    "smbd", "smbpasswd", "smbclient", "rpcclient", "net",
)  # fmt: skip
SHARES = ("ADMIN$", "data", "secret")  # and IPC$, which Samba always offers
WORKGROUP = "LAB"
SERVER_NAME = "FILESRV"
CLIENT_NAME = "WKSTN01"
SERVER_IP = "10.45.0.10"
CLIENT_IP = "10.45.0.20"
USER = "Administrator"
PASSWORD = "Passw0rd!"
CAPTURE_FILTER = "tcp port 445 or tcp port 139"
MAX_WORKDIR_LEN = 70  # Samba's unix sockets live below it; sun_path holds 108 bytes

_counter = itertools.count()
_running: set[SambaLab] = set()


class LabError(RuntimeError):
    """The lab could not do what was asked (missing tool, Samba down, client failed)."""


def require_tools(tools: Sequence[str] = TOOLS) -> None:
    """Raise LabError naming every tool that is not installed, and the script that installs it."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing tool(s) {', '.join(missing)}: run scripts/install-test-deps.sh as root"
        )


def pe_bytes(tag: str = "smbwatch", size: int = 2048) -> bytes:
    """A minimal valid PE32 console executable of ``size`` bytes, deterministic in ``tag``.

    DOS header with ``MZ`` and e_lfanew, ``PE\\0\\0``, a COFF header, a PE32 optional header and one
    ``.text`` section whose code is ``ret``, padded with ``tag`` so that different tags hash apart.
    """
    file_align, section_align, headers = 0x200, 0x1000, 0x200
    if size < 2 * file_align or size % file_align:
        raise ValueError(f"size must be a multiple of {file_align} and at least {2 * file_align}")
    raw_size = size - headers
    virtual_size = -(-raw_size // section_align) * section_align
    dos = struct.pack("<2s58xI", b"MZ", 0x40)
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", 0x14C, 1, 0x5F5E1000, 0, 0, 0xE0, 0x0102)
    optional = struct.pack(
        "<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII",
        0x10B,  # PE32
        14, 0,  # linker version
        raw_size, 0, 0,  # size of code, initialized, uninitialized data
        section_align,  # AddressOfEntryPoint: first byte of .text
        section_align, 0,  # BaseOfCode, BaseOfData
        0x400000, section_align, file_align,  # ImageBase, SectionAlignment, FileAlignment
        6, 0, 0, 0, 6, 0,  # OS, image, subsystem versions
        0,  # Win32VersionValue
        section_align + virtual_size, headers,  # SizeOfImage, SizeOfHeaders
        0, 3, 0x8140,  # CheckSum, Subsystem console, DllCharacteristics
        0x100000, 0x1000, 0x100000, 0x1000,  # stack and heap reserve/commit
        0, 16,  # LoaderFlags, NumberOfRvaAndSizes
    )  # fmt: skip
    directories = bytes(16 * 8)
    section = struct.pack(
        "<8sIIIIIIHHI", b".text", virtual_size, section_align, raw_size, headers, 0, 0, 0, 0,
        0x60000020,  # code, execute, read
    )  # fmt: skip
    header = dos + coff + optional + directories + section
    padding = (tag.encode() + b"\0") * (raw_size // (len(tag) + 1) + 1)
    return header.ljust(headers, b"\0") + (b"\xc3" + padding)[:raw_size]


@dataclass
class Capture:
    """A capture made by ``SambaLab.capture``; the counts are tcpdump's, filled in when it stops."""

    path: Path
    packets: int | None = None
    dropped: int | None = None


class SambaLab:
    """smbd and Samba's clients in two network namespaces, with their traffic capturable.

    ``workdir`` holds everything and must be short (Samba's unix sockets live below it); by default
    a fresh directory under /tmp is made and removed on stop. ``mtu=None`` and ``offloads=True``
    leave the veth link as the kernel made it (MTU 1500, offloads on: frames up to 64 KiB).
    ``cpu`` is the one CPU everything runs on (by default one of ours, chosen by pid so parallel
    labs spread out); ``cpu=None`` lets the scheduler choose, at the price of reordered segments.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        mtu: int | None = 1500,
        offloads: bool = False,
        user: str = USER,
        password: str = PASSWORD,
        cpu: int | None | Literal["auto"] = "auto",
    ) -> None:
        if cpu == "auto":
            allowed = sorted(os.sched_getaffinity(0))
            cpu = allowed[os.getpid() % len(allowed)]
        self.cpu = cpu
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="smblab-")).resolve()
        if len(str(self.workdir)) > MAX_WORKDIR_LEN:
            raise LabError(f"workdir {self.workdir} is too long for Samba's unix sockets")
        self.mtu = mtu
        self.offloads = offloads
        self.user = user
        self.password = password
        self.server_ip = SERVER_IP
        self.client_ip = CLIENT_IP
        self.interface = "eth0"  # the name of the veth end in both namespaces
        tag = f"smbwatch-lab-{os.getpid()}-{next(_counter)}"
        self.server_ns = f"{tag}-srv"
        self.client_ns = f"{tag}-cli"
        self.client_dir = self.workdir / "client"  # local side of smbclient's put/get
        self.server_conf = self.workdir / "smb.conf"
        self.client_conf = self.workdir / "client.conf"
        self._smbd: subprocess.Popen[bytes] | None = None
        self._namespaces: list[str] = []

    def share_path(self, share: str) -> Path:
        """The directory behind a share on the server (``ADMIN$``, ``data``, ``secret``)."""
        if share not in SHARES:
            raise ValueError(f"no share {share!r}; the lab has {', '.join(SHARES)}")
        return self.workdir / "shares" / share

    def __enter__(self) -> SambaLab:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(raise_errors=exc_info[0] is None)

    def start(self) -> None:
        """Make the namespaces and the link, write the configs, add the user, start smbd."""
        require_tools()
        if os.geteuid() != 0:
            raise LabError("the SMB lab needs root (network namespaces, smbd, tcpdump)")
        _running.add(self)
        try:
            self._write_configs()
            self._make_network()
            self._add_user()
            self._start_smbd()
        except BaseException:
            self.stop(raise_errors=False)
            raise

    def stop(self, raise_errors: bool = True) -> None:
        """Kill smbd and everything left in the namespaces, delete them; safe to call twice."""
        errors: list[str] = []
        if self._smbd is not None:
            errors += _end_process_group(self._smbd)
            self._smbd = None
        for ns in self._namespaces:
            errors += _end_namespace(ns)
        self._namespaces = []
        _running.discard(self)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors and raise_errors:
            raise LabError("lab teardown: " + "; ".join(errors))

    # --- clients -------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run any command on the workstation (the client namespace), from ``client_dir``.

        With ``check`` a non-zero exit raises LabError carrying the command's output.
        """
        return _run(
            self._in(self.client_ns, argv),
            check=check,
            timeout=timeout,
            cwd=cwd or self.client_dir,
        )

    def smbclient(
        self,
        share: str,
        commands: str | Sequence[str],
        *,
        protocol: Dialect = "SMB3_11",
        user: str | None = None,
        password: str | None = None,
        encrypt: bool = False,
        port: int = 445,
        by_name: bool = False,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """One smbclient session to ``//SERVER_IP/share`` running ``commands`` (``-c``).

        ``protocol`` is both the min and max dialect, so exactly that one is negotiated; ``encrypt``
        asks for SMB3 encryption of the session; ``port=139`` goes through a NetBIOS session
        request; ``by_name`` connects to ``//FILESRV/share`` (the UNC a user types) at the same
        address. Local file names are relative to ``client_dir``.
        """
        if encrypt and not protocol.startswith("SMB3"):
            raise ValueError(f"SMB encryption needs SMB3, not {protocol}")
        if not isinstance(commands, str):
            commands = "; ".join(commands)
        argv = [
            "smbclient",
            f"//{SERVER_NAME if by_name else self.server_ip}/{share}",
            f"--ip-address={self.server_ip}",
            *self._client_options(protocol, user, password),
            f"--port={port}",
            "-c",
            commands,
        ]
        if encrypt:
            argv.append("--client-protection=encrypt")
        return self.run(argv, check=check, timeout=timeout)

    def list_shares(
        self, *, protocol: Dialect = "SMB3_11", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``smbclient -L``: a logon, IPC$ and srvsvc NetShareEnumAll, as ``net view`` does."""
        argv = ["smbclient", "-L", f"//{self.server_ip}", *self._client_options(protocol)]
        return self.run(argv, check=check)

    def rpcclient(
        self,
        commands: str | Sequence[str],
        *,
        protocol: Dialect = "SMB3_11",
        user: str | None = None,
        password: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """rpcclient over IPC$ pipes (``netshareenumall``, ``srvinfo``, ``winreg_enumkey``)."""
        if not isinstance(commands, str):
            commands = "; ".join(commands)
        argv = ["rpcclient", *self._client_options(protocol, user, password), "-c", commands]
        return self.run([*argv, self.server_ip], check=check)

    def net_rpc(
        self,
        args: Sequence[str],
        *,
        protocol: Dialect = "SMB3_11",
        user: str | None = None,
        password: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``net rpc ARGS`` against the server: ``service list``/``create`` (svcctl), ``registry
        enumerate`` (winreg), ``share`` (srvsvc). Samba refuses CreateServiceW
        (NT_STATUS_RPC_PROCNUM_OUT_OF_RANGE) but the request is on the wire: use ``check=False``.
        """
        options = self._client_options(protocol, user, password)
        return self.run(["net", "rpc", *args, "-S", self.server_ip, *options], check=check)

    def _client_options(
        self, protocol: Dialect, user: str | None = None, password: str | None = None
    ) -> list[str]:
        if protocol not in DIALECTS:
            raise ValueError(f"unknown dialect {protocol!r}; choose from {', '.join(DIALECTS)}")
        user = self.user if user is None else user
        password = self.password if password is None else password
        return [
            f"--configfile={self.client_conf}",
            f"--option=client min protocol={protocol}",
            f"--option=client max protocol={protocol}",
            f"--user={user}%{password}",
        ]

    # --- capture -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self, argv: Sequence[str], ready: str = "listening") -> Iterator[None]:
        """Run a server of the test's own (``argv``) in the server namespace for the ``with``
        block: it has started when it prints ``ready`` on stdout; on exit it is ended by pid."""
        process = subprocess.Popen(
            self._in(self.server_ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            said = b""
            deadline = time.monotonic() + 20
            while ready.encode() not in said:
                left = deadline - time.monotonic()
                readable, _, _ = select.select([process.stdout], [], [], max(left, 0))
                chunk = os.read(process.stdout.fileno(), 4096) if readable else b""
                if not chunk:
                    raise LabError(
                        f"{' '.join(argv)} did not start: {said.decode(errors='replace')}"
                    )
                said += chunk
            yield
        finally:
            errors = _end_process_group(process)
            if process.stdout is not None:
                process.stdout.close()
        if errors:
            raise LabError("; ".join(errors))

    @contextlib.contextmanager
    def capture(
        self, path: Path | str, *, snaplen: int = 0, bpf: str = CAPTURE_FILTER
    ) -> Iterator[Capture]:
        """Record SMB traffic (ports 445 and 139; ``bpf`` for others) on the link into a pcap for
        the ``with`` block.

        Traffic starts only once tcpdump is listening; on exit the lab waits until the file stops
        growing, then stops tcpdump with SIGINT so it flushes. Packets dropped raise LabError.
        """
        capture = Capture(Path(path).resolve())
        capture.path.parent.mkdir(parents=True, exist_ok=True)
        argv = self._in(self.server_ns, ["tcpdump", "-i", self.interface, "-n"])
        argv += ["-U", "--immediate-mode", "-B", "32768", "-s", str(snaplen), "-Z", "root"]
        argv += ["-w", str(capture.path), bpf]
        tcpdump = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_listening(tcpdump, timeout=10)
            yield capture
            _wait_quiet(capture.path)
        finally:
            messages = _stop_tcpdump(tcpdump)
        capture.packets = _count(messages, "packets captured")
        capture.dropped = _count(messages, "packets dropped by kernel")
        if capture.packets is None or capture.dropped:
            raise LabError(f"tcpdump capture {capture.path} incomplete: {messages.strip()}")

    # --- setup ---------------------------------------------------------------------------------

    def _write_configs(self) -> None:
        state = ("private", "lock", "state", "cache", "pid", "ncalrpc", "client-state")
        for sub in (*state, "client"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for share in SHARES:
            self.share_path(share).mkdir(parents=True, exist_ok=True)
        d = self.workdir
        (d / "usermap").write_text(f"root = {self.user}\n")
        self.server_conf.write_text(f"""[global]
workgroup = {WORKGROUP}
netbios name = {SERVER_NAME}
server string = smbwatch lab
security = user
passdb backend = tdbsam:{d}/private/passdb.tdb
username map = {d}/usermap
map to guest = never
private dir = {d}/private
lock directory = {d}/lock
state directory = {d}/state
cache directory = {d}/cache
pid directory = {d}/pid
ncalrpc dir = {d}/ncalrpc
log file = {d}/samba.log
max log size = 0
smb ports = 445 139
disable netbios = yes
server min protocol = NT1
server max protocol = SMB3_11
load printers = no
printing = bsd
printcap name = /dev/null
disable spoolss = yes
store dos attributes = no
ea support = no

[ADMIN$]
path = {self.share_path("ADMIN$")}
comment = Remote Admin
read only = no

[data]
path = {self.share_path("data")}
read only = no

[secret]
path = {self.share_path("secret")}
read only = no
smb encrypt = required
""")
        self.client_conf.write_text(f"""[global]
workgroup = {WORKGROUP}
netbios name = {CLIENT_NAME}
private dir = {d}/client-state
lock directory = {d}/client-state
state directory = {d}/client-state
cache directory = {d}/client-state
log file = {d}/client.log
name resolve order = host
client use kerberos = off
""")

    def _make_network(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            _run(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        peer = ["peer", "name", self.interface, "netns", self.client_ns]
        _run(["ip", "-n", self.server_ns, "link", "add", self.interface, "type", "veth", *peer])
        for ns, ip in ((self.server_ns, self.server_ip), (self.client_ns, self.client_ip)):
            _run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", self.interface])
            if self.mtu is not None:
                _run(["ip", "-n", ns, "link", "set", self.interface, "mtu", str(self.mtu)])
            if not self.offloads:
                features = ["tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]
                _run(["ip", "netns", "exec", ns, "ethtool", "-K", self.interface, *features])
            _run(["ip", "-n", ns, "link", "set", self.interface, "up"])

    def _add_user(self) -> None:
        secret = f"{self.password}\n{self.password}\n"
        _run(["smbpasswd", "-c", str(self.server_conf), "-a", "-s", "root"], input=secret)

    def _start_smbd(self) -> None:
        log = (self.workdir / "smbd.out").open("wb")
        argv = ["smbd", "--foreground", "--no-process-group", "--debug-stdout", "--debuglevel=1"]
        with log:
            self._smbd = subprocess.Popen(
                self._in(self.server_ns, [*argv, f"--configfile={self.server_conf}"]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all its children
            )
        deadline = time.monotonic() + 20
        while not self._listening(445, 139):
            if self._smbd.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"smbd did not start:\n{self._logs()}")
            time.sleep(0.05)

    def _in(self, ns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside namespace ``ns``, on the lab's CPU."""
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        return ["ip", "netns", "exec", ns, *pin, *argv]

    def _listening(self, *ports: int) -> bool:
        out = _run(["ss", "-N", self.server_ns, "-Hltn"]).stdout
        return all(re.search(rf":{port}\s", out) for port in ports)

    def _logs(self) -> str:
        logs = [self.workdir / "smbd.out", self.workdir / "samba.log"]
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs if p.exists())


def _run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``check`` a failure raises LabError with the command and its output."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)} timed out after {timeout}s") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
    return done


def _wait_listening(tcpdump: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until tcpdump says "listening on" (the filter is set); fail if it exits first."""
    assert tcpdump.stderr is not None
    said = b""
    deadline = time.monotonic() + timeout
    while b"listening on" not in said:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([tcpdump.stderr], [], [], max(left, 0))
        chunk = os.read(tcpdump.stderr.fileno(), 4096) if ready else b""
        if not chunk:
            tcpdump.kill()
            tcpdump.wait()
            raise LabError(f"tcpdump did not start: {said.decode(errors='replace').strip()}")
        said += chunk


def _wait_quiet(path: Path, quiet: float = 0.2, timeout: float = 10) -> None:
    """Wait until tcpdump has written nothing for ``quiet`` seconds (the last FIN/ACKs are in)."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = path.stat().st_size if path.exists() else 0
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _stop_tcpdump(tcpdump: subprocess.Popen[bytes]) -> str:
    """SIGINT (tcpdump flushes and prints its counts), then its stderr; SIGKILL if it hangs."""
    if tcpdump.poll() is None:
        tcpdump.send_signal(signal.SIGINT)
    try:
        _, err = tcpdump.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        tcpdump.kill()
        _, err = tcpdump.communicate()
    return err.decode(errors="replace")


def _count(messages: str, what: str) -> int | None:
    found = re.search(rf"(\d+) {what}", messages)
    return int(found.group(1)) if found else None


def _end_process_group(process: subprocess.Popen[bytes]) -> list[str]:
    """SIGTERM the process group led by ``process``, SIGKILL it if still there after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return []
    return [f"process group {process.pid} did not end"]


def _end_namespace(ns: str) -> list[str]:
    """Kill what still runs in namespace ``ns`` (by pid), then delete it."""
    pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
        time.sleep(0.05)
    done = _run(["ip", "netns", "delete", ns], check=False)
    return [f"ip netns delete {ns}: {done.stderr.strip()}"] if done.returncode else []


@atexit.register
def _stop_all() -> None:
    """A lab left running by an interrupted run is still torn down when Python exits."""
    for lab in list(_running):
        lab.stop(raise_errors=False)
