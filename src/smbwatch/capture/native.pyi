"""The native capture path (native.pyx, compiled with Cython at install time)."""

from smbwatch.capture.flows import Flows
from smbwatch.capture.link import Segment
from smbwatch.capture.pcap import FrameReader
from smbwatch.capture.tcp import ConsumerFactory
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent

class NativeStreams:
    def __init__(
        self,
        frames: FrameReader,
        factory: ConsumerFactory,
        diagnostics: Diagnostics,
        flows: Flows,
    ) -> None: ...
    def advance(self, made: list[SmbEvent], segment: Segment) -> bool: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...

def native_flow_hash(key: bytes) -> int: ...
def gather(capture: memoryview, pointers: memoryview) -> bytes | None: ...
