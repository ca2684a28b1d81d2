"""RpcPipe: the DCE/RPC state of one open named pipe (or one TCP connection).

The SMB decoders feed it the bytes written to and read from the pipe, in order per direction, in
whatever pieces they arrive (SMB2 WRITE/READ/IOCTL data, SMB1 transactions). It frames PDUs,
reassembles fragments per call_id, tracks presentation contexts (BIND/ALTER_CONTEXT, confirmed by
the ACK), pairs requests with responses and faults, and returns one ``RpcCall`` per completed
call, with the arguments decoded for the interfaces attackers use.

Binds are reported as calls too: operation ``Bind`` or ``AlterContext``, ``interface`` the first
accepted interface, ``args`` {"interfaces": [...], "contexts": [{context_id, interface, uuid,
version, transfer_syntax, result}]}, ``status`` ``acceptance``/``provider_rejection``/... or
``bind_nak`` (with ``args["reject_reason"]``).

Memory is bounded whatever the input: one PDU (at most 64 KiB) buffered per direction, at most
``MAX_PARTIAL_CALLS`` calls being reassembled per direction and ``MAX_CALL_BYTES`` each, at most
``MAX_PENDING_CALLS`` requests awaiting their response.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from smbwatch.dcerpc import (
    atsvc,
    dcom,
    drsuapi,
    efsrpc,
    lsarpc,
    netdfs,
    netlogon,
    samr,
    spoolss,
    srvsvc,
    svcctl,
    tsch,
    winreg,
    wmi,
)
from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.interfaces import (
    NDR64_UUID,
    PIPE_INTERFACES,
    Interface,
    interface_for,
    transfer_syntax_name,
)
from smbwatch.dcerpc.ndr import NdrError, NdrReader
from smbwatch.dcerpc.pdu import (
    ALTER_CONTEXT,
    ALTER_CONTEXT_RESP,
    AUTH_LEVEL_PKT_PRIVACY,
    BIND,
    BIND_ACK,
    BIND_NAK,
    FAULT,
    HEADER_SIZE,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    REQUEST,
    RESPONSE,
    Call,
    ContextElement,
    Header,
    PduError,
    ack_result_name,
    bind_nak_reason_name,
    parse_bind,
    parse_bind_ack,
    parse_bind_nak,
    parse_call,
    parse_header,
)
from smbwatch.dcerpc.status import fault_name, return_code_name
from smbwatch.diagnostics import Diagnostics

MAX_CALL_BYTES = 1 << 20
MAX_PARTIAL_CALLS: Final = 16
MAX_PENDING_CALLS: Final = 256
MAX_CONTEXTS: Final = 256

# Interface name → module with REQUESTS / RESPONSES decoders by opnum.
DECODERS: dict[str, ModuleType] = {
    "svcctl": svcctl,
    "atsvc": atsvc,
    "ITaskSchedulerService": tsch,
    "winreg": winreg,
    "srvsvc": srvsvc,
    "samr": samr,
    "lsarpc": lsarpc,
    "efsrpc": efsrpc,
    "netlogon": netlogon,
    "drsuapi": drsuapi,
    "IRemoteSCMActivator": dcom,
    "IActivation": dcom,
    "IWbemServices": wmi,
    "spoolss": spoolss,
    "netdfs": netdfs,
}


class RpcCall:
    """One DCE/RPC call on a pipe: a request and its response or fault (or a bind and its ack).

    ``interface`` is the interface name, or its UUID when the name is not known, or None when
    the call's presentation context was never seen bound. ``status`` is the return code's name
    (Win32 error, NTSTATUS or HRESULT as the interface returns), the FAULT status, or None when
    no answer was seen or the answer was sealed. ``encrypted`` marks a call whose stub was sealed
    (packet privacy): its operation is known, its arguments are not.
    """

    interface: str | None
    operation: str | None
    opnum: int | None
    call_id: int
    args: dict[str, Any] | None
    status: str | None
    request_frame: int | None
    request_time: int | None
    response_frame: int | None
    response_time: int | None
    encrypted: bool

    def __init__(
        self,
        interface: str | None,
        operation: str | None,
        opnum: int | None,
        call_id: int,
        args: dict[str, Any] | None,
        status: str | None,
        request_frame: int | None,
        request_time: int | None,
        response_frame: int | None = None,
        response_time: int | None = None,
        encrypted: bool = False,
    ) -> None:
        self.interface = interface
        self.operation = operation
        self.opnum = opnum
        self.call_id = call_id
        self.args = args
        self.status = status
        self.request_frame = request_frame
        self.request_time = request_time
        self.response_frame = response_frame
        self.response_time = response_time
        self.encrypted = encrypted


class _Context:
    """A presentation context: the interface bound on it and its transfer syntax."""

    uuid: str
    version: str
    interface: Interface | None
    ndr64: bool

    def __init__(self, uuid: str, version: str, interface: Interface | None, ndr64: bool) -> None:
        self.uuid = uuid
        self.version = version
        self.interface = interface
        self.ndr64 = ndr64


class _Partial:
    """A call whose fragments are being reassembled."""

    header: Header
    call: Call
    chunks: list[bytes] | None  # None once the stub is given up (too large, or bytes lost)
    size: int
    time: int
    frame: int

    def __init__(
        self,
        header: Header,
        call: Call,
        chunks: list[bytes] | None,
        size: int,
        time: int,
        frame: int,
    ) -> None:
        self.header = header
        self.call = call
        self.chunks = chunks
        self.size = size
        self.time = time
        self.frame = frame


class _Direction:
    """One direction's byte buffer (at most one incomplete PDU) and calls being reassembled."""

    buffer: bytearray
    start_time: int
    start_frame: int
    partials: dict[int, _Partial]

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.start_time = 0
        self.start_frame = 0
        self.partials = {}


class _Pending:
    """A request awaiting its response: what is needed to read the response."""

    call: RpcCall
    context: _Context | None
    little_endian: bool

    def __init__(self, call: RpcCall, context: _Context | None, little_endian: bool) -> None:
        self.call = call
        self.context = context
        self.little_endian = little_endian


class _Offer:
    """A BIND or ALTER_CONTEXT awaiting its ACK."""

    call: RpcCall
    contexts: tuple[ContextElement, ...]

    def __init__(self, call: RpcCall, contexts: tuple[ContextElement, ...]) -> None:
        self.call = call
        self.contexts = contexts


class RpcPipe:
    """DCE/RPC over one pipe, sans I/O: bytes in, completed ``RpcCall``s out.

    ``pipe_name`` (``svcctl``, ``\\PIPE\\winreg``...) names the calls of a pipe whose BIND the
    capture missed. The SMB decoder calls ``gap`` when bytes of a direction were not captured.
    """

    def __init__(self, diagnostics: Diagnostics, pipe_name: str | None = None) -> None:
        self._diagnostics = diagnostics
        self._fallback = PIPE_INTERFACES.get((pipe_name or "").lower().rsplit("\\", 1)[-1])
        self._directions = {True: _Direction(), False: _Direction()}
        self._contexts: dict[int, _Context] = {}
        self._pending: dict[int, _Pending] = {}
        self._offers: dict[int, _Offer] = {}
        self._handles = HandleNames()

    def feed(self, from_client: bool, data: bytes, time: int, frame: int) -> list[RpcCall]:
        """Bytes written to (``from_client``) or read from the pipe; returns completed calls."""
        direction = self._directions[from_client]
        if not direction.buffer:
            direction.start_time, direction.start_frame = time, frame
        buffer = direction.buffer
        buffer += data
        done: list[RpcCall] = []
        consumed = 0
        while len(buffer) - consumed >= HEADER_SIZE:
            try:
                header = parse_header(buffer, consumed)
            except PduError as error:
                self._warn("dcerpc_bad_pdu", f"frame {frame}: {error}; pipe data dropped")
                consumed = len(buffer)
                break
            if len(buffer) - consumed < header.frag_length:
                break
            pdu = bytes(buffer[consumed : consumed + header.frag_length])
            consumed += header.frag_length
            self._pdu(direction, header, pdu, done)
            direction.start_time, direction.start_frame = time, frame
        del buffer[:consumed]
        return done

    def gap(self, from_client: bool) -> None:
        """Bytes of this direction were never captured: drop the PDU being framed (the rest of
        it would be misread) and give up the stubs of the calls being reassembled."""
        direction = self._directions[from_client]
        if direction.buffer or direction.partials:
            self._warn("dcerpc_gap", "pipe bytes missing from the capture")
        direction.buffer.clear()
        for partial in direction.partials.values():
            partial.chunks = None

    def finish(self) -> list[RpcCall]:
        """Calls never answered (status None), and requests whose last fragment never came."""
        done = []
        for direction in self._directions.values():
            for partial in direction.partials.values():
                self._warn("dcerpc_truncated_call", f"call {partial.header.call_id} incomplete")
                if partial.header.ptype == REQUEST:
                    done.append(
                        self._request_call(
                            partial.header, partial.call, None, partial.time, partial.frame
                        )
                    )
            direction.partials.clear()
            if direction.buffer:
                self._warn("dcerpc_truncated_pdu", f"{len(direction.buffer)} bytes left over")
                direction.buffer.clear()
        done.extend(pending.call for pending in self._pending.values())
        done.extend(offer.call for offer in self._offers.values())
        self._pending.clear()
        self._offers.clear()
        done.sort(key=lambda call: (call.request_time or 0, call.request_frame or 0))
        return done

    # --- PDUs -------------------------------------------------------------------------------

    def _pdu(self, direction: _Direction, header: Header, pdu: bytes, done: list[RpcCall]) -> None:
        try:
            if header.ptype in (REQUEST, RESPONSE, FAULT):
                self._fragment(direction, header, parse_call(pdu, header), done)
            elif header.ptype in (BIND, ALTER_CONTEXT):
                self._bind(direction, header, pdu, done)
            elif header.ptype in (BIND_ACK, ALTER_CONTEXT_RESP):
                self._bind_ack(direction, header, pdu, done)
            elif header.ptype == BIND_NAK:
                self._bind_nak(direction, header, pdu, done)
        except PduError as error:
            self._warn("dcerpc_bad_pdu", f"frame {direction.start_frame}: {error}")

    def _fragment(
        self, direction: _Direction, header: Header, call: Call, done: list[RpcCall]
    ) -> None:
        """Collect a fragment; complete the call on its last fragment (C706 12.5.2.12)."""
        partials = direction.partials
        first = header.flags & PFC_FIRST_FRAG
        if header.ptype == FAULT or (first and header.flags & PFC_LAST_FRAG):
            partials.pop(header.call_id, None)
            self._complete(direction, header, call, call.stub, done)
            return
        if first:
            if header.call_id in partials or len(partials) >= MAX_PARTIAL_CALLS:
                old = partials.pop(header.call_id, None) or partials.pop(next(iter(partials)))
                self._warn("dcerpc_fragment_limit", f"call {old.header.call_id} abandoned")
                if old.header.ptype == REQUEST:
                    done.append(self._request_call(old.header, old.call, None, old.time, old.frame))
            partials[header.call_id] = _Partial(
                header,
                call,
                [call.stub],
                len(call.stub),
                direction.start_time,
                direction.start_frame,
            )
            return
        partial = partials.get(header.call_id)
        if partial is None or partial.header.ptype != header.ptype:
            self._warn("dcerpc_fragment_orphan", f"call {header.call_id}: no first fragment")
            return
        partial.size += len(call.stub)
        if partial.chunks is not None and partial.size > MAX_CALL_BYTES:
            self._warn("dcerpc_call_too_large", f"call {header.call_id} over the size bound")
            partial.chunks = None
        if partial.chunks is not None:
            partial.chunks.append(call.stub)
        if header.flags & PFC_LAST_FRAG:
            del partials[header.call_id]
            stub = b"".join(partial.chunks) if partial.chunks is not None else None
            self._complete(direction, partial.header, partial.call, stub, done, partial, call.stub)

    def _complete(
        self,
        direction: _Direction,
        header: Header,
        call: Call,
        stub: bytes | None,
        done: list[RpcCall],
        partial: _Partial | None = None,
        tail: bytes = b"",
    ) -> None:
        """A whole call PDU (or reassembled fragments); ``tail`` is the last fragment's stub."""
        if header.ptype == REQUEST:
            time, frame = (
                (partial.time, partial.frame)
                if partial
                else (direction.start_time, direction.start_frame)
            )
            rpc = self._request_call(header, call, stub, time, frame)
            self._request(_Pending(rpc, self._context(call.context_id), header.little_endian), done)
            return
        pending = self._pending.pop(header.call_id, None)
        if pending is None:
            self._warn("dcerpc_response_without_request", f"call {header.call_id}")
            context = self._context(call.context_id)
            fallback = self._fallback.name if self._fallback else None
            name = self._interface_name(context) or fallback
            rpc = RpcCall(name, None, None, header.call_id, None, None, None, None)
            pending = _Pending(rpc, context, header.little_endian)
        rpc = pending.call
        rpc.response_time, rpc.response_frame = direction.start_time, direction.start_frame
        if header.ptype == FAULT:
            rpc.status = fault_name(call.fault_status or 0)
        elif call.auth_level == AUTH_LEVEL_PKT_PRIVACY:
            rpc.encrypted = True
        else:
            self._response(pending, stub, tail or call.stub, header.little_endian)
        done.append(rpc)

    def _request(self, pending: _Pending, done: list[RpcCall]) -> None:
        """Keep a request until its response or fault; one displaced unanswered goes out as is."""
        rpc = pending.call
        if rpc.call_id in self._pending:
            self._warn("dcerpc_duplicate_call_id", f"call {rpc.call_id} reused before answer")
            done.append(self._pending.pop(rpc.call_id).call)
        elif len(self._pending) >= MAX_PENDING_CALLS:
            self._warn("dcerpc_pending_limit", "too many unanswered calls; oldest given up")
            done.append(self._pending.pop(next(iter(self._pending))).call)
        self._pending[rpc.call_id] = pending

    def _request_call(
        self, header: Header, call: Call, stub: bytes | None, time: int, frame: int
    ) -> RpcCall:
        """The RpcCall of a request, with its arguments decoded where a decoder exists."""
        context = self._context(call.context_id)
        interface = context.interface if context else self._fallback
        operation = (
            interface.operation(call.opnum) if interface and call.opnum is not None else None
        )
        name = self._interface_name(context) or (interface.name if interface else None)
        rpc = RpcCall(name, operation, call.opnum, header.call_id, None, None, frame, time)
        if call.auth_level == AUTH_LEVEL_PKT_PRIVACY:
            rpc.encrypted = True
            return rpc
        decoder = self._decoder(interface, "REQUESTS", call.opnum)
        if decoder is not None and stub is not None:
            reader = NdrReader(stub, bool(context and context.ndr64), header.little_endian)
            rpc.args = self._decode(rpc, lambda: decoder(reader, self._handles)) or None
        return rpc

    def _response(
        self, pending: _Pending, stub: bytes | None, tail: bytes, little_endian: bool
    ) -> None:
        """The return code (the stub's last 4 bytes) and what the response tells of handles."""
        rpc = pending.call
        context = pending.context
        interface = context.interface if context else self._fallback
        if interface and len(tail) >= 4:
            code = int.from_bytes(tail[-4:], "little" if little_endian else "big")
            rpc.status = return_code_name(interface.returns, code)
        decoder = self._decoder(interface, "RESPONSES", rpc.opnum)
        if decoder is not None and stub is not None:
            reader = NdrReader(stub, bool(context and context.ndr64), little_endian)
            self._decode(rpc, lambda: decoder(reader, rpc.args, self._handles))

    def _decode(self, rpc: RpcCall, decode: Callable[[], Any]) -> Any:
        """Run one argument decoder: a malformed stub costs this call's arguments, nothing more."""
        where = f"{rpc.interface} {rpc.operation} call {rpc.call_id}"
        try:
            return decode()
        except NdrError as error:
            self._warn("dcerpc_ndr_error", f"{where}: {error}")
        except Exception as error:  # a decoder bug must cost one call, never the run
            self._warn("dcerpc_decoder_error", f"{where}: {type(error).__name__}: {error}")
        return None

    # --- presentation contexts ---------------------------------------------------------------

    def _bind(self, direction: _Direction, header: Header, pdu: bytes, done: list[RpcCall]):
        """Offered contexts are provisional until the ACK confirms or rejects them."""
        contexts = parse_bind(pdu, header)
        operation = "Bind" if header.ptype == BIND else "AlterContext"
        names = []
        for element in contexts:
            interface = interface_for(element.abstract.uuid)
            name = interface.name if interface else element.abstract.uuid
            if name not in names:
                names.append(name)
            transfer = element.transfers[0].uuid if element.transfers else ""
            if element.context_id not in self._contexts and len(self._contexts) < MAX_CONTEXTS:
                self._contexts[element.context_id] = _Context(
                    element.abstract.uuid,
                    element.abstract.version,
                    interface,
                    transfer == NDR64_UUID,
                )
        rpc = RpcCall(
            names[0] if names else None,
            operation,
            None,
            header.call_id,
            {"interfaces": names},
            None,
            direction.start_frame,
            direction.start_time,
        )
        if header.call_id in self._offers or len(self._offers) >= MAX_PENDING_CALLS:
            old = self._offers.pop(header.call_id, None) or self._offers.pop(
                next(iter(self._offers))
            )
            done.append(old.call)
        self._offers[header.call_id] = _Offer(rpc, contexts)

    def _bind_ack(self, direction: _Direction, header: Header, pdu: bytes, done: list[RpcCall]):
        results = parse_bind_ack(pdu, header)
        offer = self._offers.pop(header.call_id, None)
        if offer is None:
            self._warn("dcerpc_response_without_request", f"bind ack {header.call_id}")
            return
        rpc = offer.call
        rpc.response_time, rpc.response_frame = direction.start_time, direction.start_frame
        details: list[dict[str, Any]] = []
        accepted: list[str] = []
        for element, result in zip(offer.contexts, results, strict=False):
            interface = interface_for(element.abstract.uuid)
            name = interface.name if interface else element.abstract.uuid
            details.append(
                {
                    "context_id": element.context_id,
                    "interface": name,
                    "uuid": element.abstract.uuid,
                    "version": element.abstract.version,
                    "transfer_syntax": transfer_syntax_name(result.transfer.uuid),
                    "result": ack_result_name(result.result),
                }
            )
            if result.result == 0:
                accepted.append(name)
                self._contexts[element.context_id] = _Context(
                    element.abstract.uuid,
                    element.abstract.version,
                    interface,
                    result.transfer.uuid == NDR64_UUID,
                )
            elif (context := self._contexts.get(element.context_id)) and (
                context.uuid == element.abstract.uuid
            ):
                del self._contexts[element.context_id]
        rpc.args = {"interfaces": rpc.args["interfaces"] if rpc.args else [], "contexts": details}
        if accepted:
            rpc.interface = accepted[0]
            rpc.status = "acceptance"
        elif details:
            rpc.status = str(details[0]["result"])
        done.append(rpc)

    def _bind_nak(self, direction: _Direction, header: Header, pdu: bytes, done: list[RpcCall]):
        reason = parse_bind_nak(pdu, header)
        offer = self._offers.pop(header.call_id, None)
        if offer is None:
            self._warn("dcerpc_response_without_request", f"bind nak {header.call_id}")
            return
        for element in offer.contexts:
            context = self._contexts.get(element.context_id)
            if context and context.uuid == element.abstract.uuid:
                del self._contexts[element.context_id]
        rpc = offer.call
        rpc.response_time, rpc.response_frame = direction.start_time, direction.start_frame
        rpc.status = "bind_nak"
        rpc.args = {**(rpc.args or {}), "reject_reason": bind_nak_reason_name(reason)}
        done.append(rpc)

    # --- helpers ----------------------------------------------------------------------------

    def _context(self, context_id: int) -> _Context | None:
        return self._contexts.get(context_id)

    @staticmethod
    def _interface_name(context: _Context | None) -> str | None:
        if context is None:
            return None
        return context.interface.name if context.interface else context.uuid

    @staticmethod
    def _decoder(interface: Interface | None, table: str, opnum: int | None) -> Any:
        module = DECODERS.get(interface.name) if interface else None
        if module is None or opnum is None:
            return None
        return getattr(module, table).get(opnum)

    def _warn(self, kind: str, message: str) -> None:
        self._diagnostics.warn(kind, message)
