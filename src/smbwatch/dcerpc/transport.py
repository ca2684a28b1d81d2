"""DCE/RPC directly over TCP (ncacn_ip_tcp): the transport of remote service control on a
dynamic port (PsExec and others), read with the same ``RpcPipe`` as named pipes."""

from __future__ import annotations

from smbwatch.capture.endpoint import Endpoints
from smbwatch.capture.tcp import NO_SKIP, Skip, StreamConsumer
from smbwatch.dcerpc.events import call_fields
from smbwatch.dcerpc.pipe import RpcCall, RpcPipe
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent


class RpcTcpConnection(StreamConsumer):
    """Consumer of one reassembled TCP connection carrying DCE/RPC PDUs."""

    def __init__(self, endpoints: Endpoints, diagnostics: Diagnostics, out: list[SmbEvent]) -> None:
        self.endpoints = endpoints
        self.pipe = RpcPipe(diagnostics)
        self.out = out

    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        for call in self.pipe.feed(from_client, payload, time, frame):
            self.out.append(self._event(call))
        return NO_SKIP

    def gap(self, from_client: bool, length: int) -> None:
        self.pipe.gap(from_client)

    def close(self) -> None:
        for call in self.pipe.finish():
            self.out.append(self._event(call))

    def _event(self, call: RpcCall) -> SmbEvent:
        answered_only = call.request_frame is None  # only the response was captured
        time = call.response_time if answered_only else call.request_time
        frame = call.response_frame if answered_only else call.request_frame
        event = self.endpoints.event("rpc_call", time or 0, frame)
        event.update(call_fields(call))
        return event
