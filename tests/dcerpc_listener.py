"""A minimal DCE/RPC server over TCP for the interfaces Samba does not serve, run by the tests in
the lab's server namespace (``SambaLab.serve``):

    python dcerpc_listener.py ADDRESS PORT [PORT ...] [--deny N]

It accepts every presentation context offered (NDR), and answers each request with a response
whose stub is sixteen zero bytes and a return code of zero, so that clients go on to their next
call. The first ``N`` netlogon NetrServerAuthenticate2/3 requests get STATUS_ACCESS_DENIED, as a
domain controller answers most Zerologon attempts. What the requests hold is never looked at:
the tests read it from the capture. Prints ``listening`` once every port is open.
"""

from __future__ import annotations

import argparse
import socket
import struct
import threading
import uuid

NDR = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860").bytes_le + struct.pack("<I", 2)
NETLOGON = uuid.UUID("12345678-1234-abcd-ef00-01234567cffb").bytes_le
AUTHENTICATE = (15, 26)  # NetrServerAuthenticate2, NetrServerAuthenticate3
STATUS_ACCESS_DENIED = 0xC0000022
BIND, BIND_ACK, ALTER_CONTEXT, ALTER_CONTEXT_RESP, REQUEST, RESPONSE = 11, 12, 14, 15, 0, 2
PFC_LAST_FRAG, PFC_OBJECT_UUID = 0x02, 0x80


class Denials:
    """How many authentication attempts are still to be refused (shared by connections)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def header(ptype: int, flags: int, length: int, call_id: int) -> bytes:
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\0\0\0", length, 0, call_id)


def bind_ack(pdu: bytes, ptype: int, call_id: int, contexts: dict[int, bytes]) -> bytes:
    """Every offered context accepted with NDR; the abstract syntax of each remembered."""
    count = pdu[24]
    offset = 28
    results = b""
    for _ in range(count):
        context_id, transfers = struct.unpack_from("<HB", pdu, offset)
        contexts[context_id] = pdu[offset + 4 : offset + 20]
        offset += 24 + 20 * transfers
        results += struct.pack("<HH", 0, 0) + NDR
    address = b"135\0" if ptype == BIND else b""
    body = struct.pack("<HHI", 4280, 4280, 0x1234) + struct.pack("<H", len(address)) + address
    body += b"\0" * (-(16 + len(body)) % 4)
    body += struct.pack("<BBH", count, 0, 0) + results
    answer = BIND_ACK if ptype == BIND else ALTER_CONTEXT_RESP
    return header(answer, 0x03, 16 + len(body), call_id) + body


def response(pdu: bytes, call_id: int, contexts: dict[int, bytes], denials: Denials) -> bytes:
    context_id, opnum = struct.unpack_from("<HH", pdu, 20)
    status = 0
    if contexts.get(context_id) == NETLOGON and opnum in AUTHENTICATE and denials.take():
        status = STATUS_ACCESS_DENIED
    stub = b"\0" * 16 + struct.pack("<I", status)
    body = struct.pack("<IHBB", len(stub), context_id, 0, 0) + stub
    return header(RESPONSE, 0x03, 16 + len(body), call_id) + body


def serve_connection(connection: socket.socket, denials: Denials) -> None:
    contexts: dict[int, bytes] = {}
    buffer = b""
    with connection:
        while True:
            data = connection.recv(65536)
            if not data:
                return
            buffer += data
            while len(buffer) >= 16:
                length, _, call_id = struct.unpack_from("<HHI", buffer, 8)
                if len(buffer) < length:
                    break
                pdu, buffer = buffer[:length], buffer[length:]
                ptype, flags = pdu[2], pdu[3]
                if ptype in (BIND, ALTER_CONTEXT):
                    connection.sendall(bind_ack(pdu, ptype, call_id, contexts))
                elif ptype == REQUEST and flags & PFC_LAST_FRAG:
                    connection.sendall(response(pdu, call_id, contexts, denials))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("ports", nargs="+", type=int)
    parser.add_argument("--deny", type=int, default=0)
    args = parser.parse_args()
    denials = Denials(args.deny)
    listeners = []
    for port in args.ports:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.address, port))
        listener.listen(16)
        listeners.append(listener)
    for listener in listeners:
        threading.Thread(target=accept, args=(listener, denials), daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()


def accept(listener: socket.socket, denials: Denials) -> None:
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(connection, denials), daemon=True).start()


if __name__ == "__main__":
    main()
