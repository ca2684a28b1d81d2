"""The native capture path (native.pyx, compiled with Cython at install time)."""

from smbwatch.capture.flows import Flows
from smbwatch.capture.link import Segment
from smbwatch.capture.pcap import FrameReader

class NativeSegments:
    def __init__(self, frames: FrameReader, flows: Flows) -> None: ...
    def next(self, segment: Segment) -> bool: ...
