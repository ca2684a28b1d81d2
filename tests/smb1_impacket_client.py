"""An SMB1 session by impacket, run by test_smb1_lab.py on the lab's workstation: what Samba's
own client never sends. impacket speaks OEM strings (not Unicode) on SMB1.

    python smb1_impacket_client.py SERVER USER PASSWORD DOMAIN   (payload.exe in the cwd)

Opens with OPEN_ANDX and writes payload.exe as opened.exe; creates nttrans.txt with
NT_TRANSACT_CREATE and renames it to renamed.txt (TRANS2_SET_FILE_INFORMATION, pass-through
FileRenameInformation); sets its FileBasicInformation by path (TRANS2_SET_PATH_INFORMATION);
deletes opened.exe (SMB_SET_FILE_DISPOSITION_INFO); creates chained.txt with a TREE_CONNECT_ANDX
and an NT_CREATE_ANDX in one AndX chain; then NetrShareEnum on srvsvc over WRITE_ANDX/READ_ANDX,
and prints the share names.
"""

import struct
import sys

from impacket import smb as smb1
from impacket.dcerpc.v5 import srvs, transport
from impacket.smbconnection import SMB_DIALECT, SMBConnection

TRANS2_SET_PATH_INFORMATION, TRANS2_SET_FILE_INFORMATION = 0x0006, 0x0008
FILE_BASIC_INFORMATION, FILE_RENAME_INFORMATION = 1004, 1010  # pass-through levels
SMB_SET_FILE_DISPOSITION_INFO = 0x0102
DELETE, FILE_READ_ATTRIBUTES = 0x00010000, 0x00000080

server, user, password, domain = sys.argv[1:5]
with open("payload.exe", "rb") as payload_file:
    payload = payload_file.read()
conn = SMBConnection(server, server, preferredDialect=SMB_DIALECT)
conn.login(user, password, domain)
smb = conn.getSMBServer()
tid = smb.tree_connect_andx(f"\\\\{server}\\data")

open_mode = smb1.SMB_O_CREAT | smb1.SMB_O_TRUNC
fid = smb.open_andx(tid, "opened.exe", open_mode, smb1.SMB_ACCESS_WRITE)[0]
smb.write_andx(tid, fid, payload)
smb.close(tid, fid)

# NT_TRANSACT_CREATE: Flags, RootDirectoryFID, DesiredAccess, AllocationSize, ExtFileAttributes,
# ShareAccess, CreateDisposition (FILE_OVERWRITE_IF), CreateOptions, SecurityDescriptorLength,
# EALength, NameLength, ImpersonationLevel, SecurityFlags; Name
name = b"nttrans.txt"
create = struct.pack("<IIIQIIIIIIIIB", 0, 0, 0x12019F, 0, 0x80, 7, 5, 0x40, 0, 0, len(name), 2, 0)
smb.send_nt_trans(tid, subcommand=1, max_param_count=69, param=create + name)
response = smb.recvSMB()
words = smb1.SMBCommand(response["Data"][0])["Parameters"]
offset = smb1.SMBNTTransactionResponse_Parameters(words)["ParameterOffset"]
fid = struct.unpack_from("<H", response.getData(), offset + 2)[0]

new = b"renamed.txt"
rename = struct.pack("<B3xII", 0, 0, len(new)) + new  # ReplaceIfExists, RootDirectory, length
info = struct.pack("<HHH", fid, FILE_RENAME_INFORMATION, 0)
smb.send_trans2(tid, TRANS2_SET_FILE_INFORMATION, "\x00", info, rename)
smb.recvSMB()
smb.close(tid, fid)
info = struct.pack("<H4x", FILE_BASIC_INFORMATION) + new + b"\0"
smb.send_trans2(tid, TRANS2_SET_PATH_INFORMATION, "\x00", info, bytes(40))
smb.recvSMB()

fid = smb.nt_create_andx(tid, "opened.exe", accessMask=DELETE | FILE_READ_ATTRIBUTES)
info = struct.pack("<HHH", fid, SMB_SET_FILE_DISPOSITION_INFO, 0)
smb.send_trans2(tid, TRANS2_SET_FILE_INFORMATION, "\x00", info, b"\x01")
smb.recvSMB()
smb.close(tid, fid)

# TREE_CONNECT_ANDX and NT_CREATE_ANDX in one AndX chain, as Windows clients send them
chain = smb1.NewSMBPacket()
chain["Tid"] = 0xFFFF
connect = smb1.SMBCommand(smb1.SMB.SMB_COM_TREE_CONNECT_ANDX)
connect["Parameters"] = smb1.SMBTreeConnectAndX_Parameters()
connect["Parameters"]["PasswordLength"] = 1
connect["Data"] = smb1.SMBTreeConnectAndX_Data(flags=0)
connect["Data"]["Password"] = "\x00"
connect["Data"]["Path"] = f"\\\\{server}\\DATA"
connect["Data"]["Service"] = smb1.SERVICE_ANY
chain.addCommand(connect)
create = smb1.SMBCommand(smb1.SMB.SMB_COM_NT_CREATE_ANDX)
create["Parameters"] = smb1.SMBNtCreateAndX_Parameters()
create["Parameters"]["FileNameLength"] = len("chained.txt")
create["Parameters"]["CreateFlags"] = 0
create["Parameters"]["AccessMask"] = 0x12019F
create["Parameters"]["ShareAccess"] = 7
create["Parameters"]["Disposition"] = smb1.FILE_OVERWRITE_IF
create["Parameters"]["CreateOptions"] = 0x40
create["Data"] = smb1.SMBNtCreateAndX_Data(flags=0)
create["Data"]["FileName"] = "chained.txt"
chain.addCommand(create)
smb.sendSMB(chain)
smb.recvSMB()  # the file stays open until the logoff

rpc = transport.SMBTransport(server, filename="\\srvsvc", smb_connection=conn)
dce = rpc.get_dce_rpc()
dce.connect()
dce.bind(srvs.MSRPC_UUID_SRVS)
shares = srvs.hNetrShareEnum(dce, 1)["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]
print(",".join(share["shi1_netname"][:-1] for share in shares))
conn.logoff()
