"""The native capture path (native.pyx, compiled with Cython at install time)."""

from smbwatch.capture.flows import Flows
from smbwatch.capture.link import Segment
from smbwatch.capture.pcap import FrameReader
from smbwatch.capture.tcp import TcpReassembler
from smbwatch.diagnostics import Diagnostics

class NativeSegments:
    def __init__(
        self,
        frames: FrameReader,
        diagnostics: Diagnostics,
        flows: Flows,
        reassembler: TcpReassembler,
    ) -> None: ...
    def next(self, segment: Segment) -> bool: ...

def native_flow_hash(key: bytes) -> int: ...
