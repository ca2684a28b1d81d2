# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The native capture path: the frame walk over a memory-mapped pcap or pcapng file and the
link, VLAN, IPv4, IPv6 and TCP headers, in C, so that a frame that is not SMB never reaches
Python.

It is the Python path of ``capture.pcap`` (the records) and ``capture.link`` (the headers) said
again in C, with the same results to the byte: the same segments in the same ``Segment`` record,
the same counted warnings with the same messages (``tests/test_native.py`` runs both on every
capture; the fuzz tier runs mutated captures through both). What is rare or belongs to Python
state stays in Python and is called from here: an interface description (``pcap._interface``),
the DCE/RPC flows (``Flows.is_rpc``), the share a fragment belongs to, a warning. Only a capture
file read whole from disk (memory-mapped) takes this path; a compressed one, a member of a zip
archive or another frame source is read by the Python path.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy
from posix.mman cimport MADV_DONTNEED, madvise

from smbwatch.capture.pcap import MAX_RECORD as _MAX_RECORD
from smbwatch.capture.pcap import _interface
from smbwatch.events import MAX_TIME as _MAX_TIME
from smbwatch.interrupt import check as check_interrupt

cdef Py_ssize_t MAX_RECORD = _MAX_RECORD
cdef uint64_t MAX_TIME = _MAX_TIME
cdef Py_ssize_t RELEASE_EVERY = 1 << 22  # bytes walked between handing pages back (pcap.CHUNK)
cdef Py_ssize_t PAGE = 4096
cdef uint64_t CHECK_EVERY = 1023  # frames between looks at whether a stop was asked for

cdef enum:
    LINKTYPE_NULL = 0
    LINKTYPE_ETHERNET = 1
    LINKTYPE_RAW = 101
    LINKTYPE_LOOP = 108
    LINKTYPE_LINUX_SLL = 113
    LINKTYPE_IPV4 = 228
    LINKTYPE_IPV6 = 229
    LINKTYPE_LINUX_SLL2 = 276
    ETHERTYPE_IPV4 = 0x0800
    ETHERTYPE_IPV6 = 0x86DD
    PROTO_TCP = 6
    IPV6_FRAGMENT = 44


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint32_t word(const uint8_t* p, bint big) noexcept nogil:
    return be32(p) if big else le32(p)


cdef inline uint16_t half(const uint8_t* p, bint big) noexcept nogil:
    return be16(p) if big else (p[1] << 8) | p[0]


cdef inline bint smb_port(uint16_t port) noexcept nogil:
    return port == 445 or port == 139


# CRC-32 (ISO-HDLC, zlib's): the flow hash of ``flows.flow_hash``, said in C so that a share
# drops the other shares' segments without a Python object (test_native and test_flows hold the
# two together).
cdef uint32_t CRC_TABLE[256]


cdef void _crc_table() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = i
        for k in range(8):
            c = (c >> 1) ^ 0xEDB88320U if c & 1 else c >> 1
        CRC_TABLE[i] = c


_crc_table()


cdef inline uint32_t crc_update(uint32_t crc, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        crc = CRC_TABLE[(crc ^ p[i]) & 0xFF] ^ (crc >> 8)
    return crc


cdef uint32_t flow_hash(const uint8_t* addresses, Py_ssize_t size, const uint8_t* ports) noexcept nogil:
    """``flows.flow_hash`` of the connection whose source and destination addresses (``size``
    bytes each) are at ``addresses`` and whose two ports are at ``ports``."""
    cdef const uint8_t* first_address = addresses
    cdef const uint8_t* second_address = addresses + size
    cdef const uint8_t* first_port = ports
    cdef const uint8_t* second_port = ports + 2
    cdef int order = memcmp(first_address, second_address, size)
    if order == 0:
        order = memcmp(first_port, second_port, 2)
    if order > 0:
        first_address, second_address = second_address, first_address
        first_port, second_port = second_port, first_port
    cdef uint32_t crc = 0xFFFFFFFFU
    crc = crc_update(crc, first_address, size)
    crc = crc_update(crc, first_port, 2)
    crc = crc_update(crc, second_address, size)
    crc = crc_update(crc, second_port, 2)
    return crc ^ 0xFFFFFFFFU


def native_flow_hash(bytes key) -> int:
    """``flow_hash`` of a ``flows.flow_key``, for the tests that hold it to ``flows.flow_hash``."""
    cdef Py_ssize_t size = len(key) // 2 - 2
    cdef const uint8_t* p = <const uint8_t*><const char*>key
    return flow_hash(p, size, p + 2 * size)


cdef class NativeSegments:
    """The segments of SMB's ports and of DCE/RPC over TCP in a memory-mapped capture, read
    from ``frames`` (a ``pcap.FrameReader`` that has read nothing yet). ``next(segment)`` fills
    the ``link.Segment`` record with the next one (and its time and frame number), as
    ``streams.FrameSegments`` does from Python."""

    cdef object mapped, path, reader_diagnostics, diagnostics, flows, share, rpc, interfaces, reassembler
    cdef uint32_t share_index, share_count
    cdef bint pcapng, big, done, first_share
    cdef Py_ssize_t pos, released
    cdef uint64_t number, divisor, time
    cdef object slow_time  # the time when it does not fit 64 bits (pcapng, a hostile one)
    cdef int linktype
    # pcapng: the interface of the last packet, its values at hand
    cdef Py_ssize_t iface_id
    cdef Py_ssize_t iface_snaplen
    cdef int iface_linktype
    cdef uint64_t iface_units  # 0: too large for 64 bits
    cdef object iface_units_int

    def __init__(self, frames, diagnostics, flows, reassembler):
        self.mapped = frames.mapped
        self.reassembler = reassembler
        self.share_index = flows.share.index
        self.share_count = flows.share.count
        self.path = frames.path
        # damage and packet blocks as the reader says them; the rest as the frame loop does
        self.reader_diagnostics = frames.diagnostics
        self.diagnostics = diagnostics
        self.flows = flows
        self.share = flows.share
        self.first_share = flows.share.first
        self.rpc = flows.rpc
        self.pcapng = frames.kind == "pcapng"
        self.pos = frames.pos
        self.released = 0
        self.number = 0
        self.done = False
        self.interfaces = []
        self.iface_id = -1
        self.slow_time = None
        if self.pcapng:
            self.big = False
        else:
            self.big = frames.big_endian
            self.divisor = frames.divisor
            self.linktype = frames.linktype

    def next(self, segment) -> bool:
        """Fill ``segment`` with the next segment to decode; False at the end of the capture."""
        cdef Py_buffer view
        if self.done:
            return False
        PyObject_GetBuffer(self.mapped, &view, PyBUF_SIMPLE)
        try:
            if self.pcapng:
                found = self._pcapng(<const uint8_t*>view.buf, view.len, segment)
            else:
                found = self._pcap(<const uint8_t*>view.buf, view.len, segment)
            if not found:
                self.done = True
            return found
        finally:
            PyBuffer_Release(&view)

    cdef inline void _release(self, const uint8_t* base) noexcept:
        """Hand the pages walked past back to the kernel: memory does not grow with the file."""
        cdef Py_ssize_t upto
        if self.pos - self.released >= RELEASE_EVERY:
            upto = self.pos - self.pos % PAGE
            madvise(<void*>base, upto, MADV_DONTNEED)
            self.released = upto

    cdef bint _pcap(self, const uint8_t* base, Py_ssize_t size, segment) except -1:
        cdef Py_ssize_t pos, first, caplen
        cdef uint32_t seconds, fraction
        cdef bint big = self.big
        while True:
            if self._ended(size, 16, "record header"):
                return False
            pos = self.pos
            seconds = word(base + pos, big)
            fraction = word(base + pos + 4, big)
            caplen = word(base + pos + 8, big)
            if caplen > MAX_RECORD:
                self._damaged(f"corrupt record length {caplen} after frame {self.number}")
                return False
            if size - pos - 16 < caplen:
                self._damaged(f"truncated packet after frame {self.number}")
                return False
            self.number += 1
            self.time = <uint64_t>seconds * 1000000 + fraction // self.divisor
            first = pos + 16
            self.pos = first + caplen
            self._release(base)
            if self._packet(base, first, first + caplen, self.linktype, segment):
                return True

    cdef bint _pcapng(self, const uint8_t* base, Py_ssize_t size, segment) except -1:
        cdef Py_ssize_t pos, first, last, body, data, stop, iface_id, caplen
        cdef uint32_t block_type, block_len, high, low, original
        cdef uint64_t ticks
        cdef const uint8_t* p
        while True:
            if self._ended(size, 12, "block header"):
                return False
            pos = self.pos
            p = base + pos
            if memcmp(p, b"\x0a\x0d\x0d\x0a", 4) == 0:
                if memcmp(p + 8, b"\x4d\x3c\x2b\x1a", 4) == 0:
                    self.big = False
                elif memcmp(p + 8, b"\x1a\x2b\x3c\x4d", 4) == 0:
                    self.big = True
                else:
                    self._damaged("bad section byte-order magic")
                    return False
                self.interfaces = []
                self.iface_id = -1
            block_type = word(p, self.big)
            block_len = word(p + 4, self.big)
            if block_len < 12 or block_len % 4 or block_len > MAX_RECORD + 64 * 1024:
                self._damaged(f"corrupt block length {block_len} after frame {self.number}")
                return False
            if size - pos < block_len:
                self._damaged(f"truncated block after frame {self.number}")
                return False
            self.pos = pos + block_len
            self._release(base)
            first, last = pos + 8, pos + block_len - 4
            body = last - first
            if block_type == 1 and body >= 8:  # Interface Description Block
                order = ">" if self.big else "<"
                self.interfaces.append(
                    _interface(PyBytes_FromStringAndSize(<const char*>base + first, body), order)
                )
                continue
            if block_type == 3 and body >= 4 and self.interfaces:  # Simple Packet Block
                self._interface(0)
                original = word(base + first, self.big)
                self.number += 1
                data = first + 4
                stop = min(data + <Py_ssize_t>original, data + self.iface_snaplen, last)
                self.time = 0
                self.slow_time = None
                if self._packet(base, data, stop, self.iface_linktype, segment):
                    return True
                continue
            if block_type == 6 and body >= 20:  # Enhanced Packet Block
                iface_id = word(base + first, self.big)
                high = word(base + first + 4, self.big)
                low = word(base + first + 8, self.big)
                caplen = word(base + first + 12, self.big)
            elif block_type == 2 and body >= 20:  # obsolete Packet Block
                iface_id = half(base + first, self.big)
                high = word(base + first + 4, self.big)
                low = word(base + first + 8, self.big)
                caplen = word(base + first + 12, self.big)
            else:
                continue
            if iface_id >= len(self.interfaces) or caplen > body - 20:
                self.reader_diagnostics.warn(
                    "pcapng_bad_packet_block", f"{self.path}: after frame {self.number}"
                )
                continue
            self._interface(iface_id)
            self.number += 1
            ticks = (<uint64_t>high << 32) | low
            self.slow_time = None
            if self.iface_units == 1000000:
                self.time = ticks
            elif self.iface_units and ticks <= 18446744073709:  # ticks * 10**6 fits 64 bits
                self.time = ticks * 1000000 // self.iface_units
            else:
                self.slow_time = (<object>ticks) * 1000000 // self.iface_units_int
            if (self.time > MAX_TIME) if self.slow_time is None else (self.slow_time > _MAX_TIME):
                self.reader_diagnostics.warn(
                    "time_out_of_range", f"{self.path}: frame {self.number}: no date"
                )
            if self._packet(base, first + 20, first + 20 + caplen, self.iface_linktype, segment):
                return True

    cdef void _interface(self, Py_ssize_t index) except *:
        """The values of interface ``index`` at hand (packets of one interface follow each
        other)."""
        if index == self.iface_id:
            return
        iface = self.interfaces[index]
        self.iface_id = index
        self.iface_linktype = iface.linktype
        self.iface_snaplen = iface.snaplen
        self.iface_units_int = iface.units_per_second
        units = iface.units_per_second
        self.iface_units = units if 0 < units < (1 << 64) else 0

    cdef bint _ended(self, Py_ssize_t size, Py_ssize_t header, str what) except -1:
        """Whether fewer than ``header`` bytes are left: the end of the file, or (some bytes
        left) a header cut short, which is damage."""
        if size - self.pos >= header:
            return False
        if size != self.pos:
            self._damaged(f"truncated {what} after frame {self.number}")
        return True

    cdef bint _packet(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t last, int linktype, segment
    ) except -1:
        """The frame ``base[first:last]``: is it a segment to decode? (``segment`` then says.)"""
        if not self.number & CHECK_EVERY:
            check_interrupt()
        if self._frame(base, first, last, linktype, segment):
            segment.time = self.time if self.slow_time is None else self.slow_time
            segment.frame = self.number
            return True
        return False

    cdef void _damaged(self, str what) except *:
        self.reader_diagnostics.damaged(self.path, what)

    # The headers: capture.link, said in C ------------------------------------------------------

    cdef bint _frame(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t last, int linktype, segment
    ) except -1:
        """``link.read_segment`` over the frame ``base[first:last]``."""
        cdef const uint8_t* f = base + first
        cdef Py_ssize_t n = last - first
        cdef Py_ssize_t offset
        cdef uint16_t ethertype
        cdef uint8_t family
        if linktype == LINKTYPE_ETHERNET:
            if n < 14:
                return False
            offset = 12
            ethertype = be16(f + offset)
            while (ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100) and n >= offset + 6:
                offset += 4
                ethertype = be16(f + offset)
            offset += 2
        elif linktype == LINKTYPE_LINUX_SLL:
            if n < 16:
                return False
            ethertype, offset = be16(f + 14), 16
        elif linktype == LINKTYPE_LINUX_SLL2:
            if n < 20:
                return False
            ethertype, offset = be16(f), 20
        elif (
            linktype == LINKTYPE_RAW or linktype == 12 or linktype == 14
            or linktype == LINKTYPE_IPV4 or linktype == LINKTYPE_IPV6
        ):
            if n == 0:
                return False
            ethertype = ETHERTYPE_IPV4 if f[0] >> 4 == 4 else ETHERTYPE_IPV6
            offset = 0
        elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
            if n < 4:
                return False
            family = f[0] or f[3]  # host byte order for NULL, network order for LOOP
            ethertype = ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6
            if family != 2 and family != 10 and family != 24 and family != 28 and family != 30:
                return False
            offset = 4
        else:
            if self.first_share:
                self.diagnostics.warn("unsupported_link_type", f"link type {linktype}")
            return False
        if ethertype == ETHERTYPE_IPV4:
            return self._ipv4(base, first, n, offset, segment)
        if ethertype == ETHERTYPE_IPV6:
            return self._ipv6(base, first, n, offset, segment)
        return False

    cdef bint _ipv4(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t n, Py_ssize_t offset, segment
    ) except -1:
        cdef const uint8_t* f = base + first
        cdef Py_ssize_t header_len, total_len, end
        cdef uint16_t fragment
        if n < offset + 20 or f[offset + 9] != PROTO_TCP or f[offset] >> 4 != 4:
            return False
        header_len = (f[offset] & 0x0F) * 4
        total_len = be16(f + offset + 2)
        fragment = be16(f + offset + 6) & 0x3FFF
        if fragment:
            if fragment & 0x1FFF == 0:  # first fragment: the TCP header is there to look at
                self._fragment(f, n, offset + header_len, offset + 12, 8)
            return False
        if header_len < 20 or 0 < total_len < header_len:
            return False
        end = offset + total_len if total_len else n  # 0: segmentation offload on capture
        return self._tcp(base, first, n, offset + header_len, end, offset + 12, 8, segment)

    cdef bint _ipv6(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t n, Py_ssize_t offset, segment
    ) except -1:
        cdef const uint8_t* f = base + first
        cdef Py_ssize_t end, pos
        cdef uint8_t next_header
        cdef int _
        if n < offset + 40:
            return False
        next_header = f[offset + 6]
        end = offset + 40 + be16(f + offset + 4)
        pos = offset + 40
        for _ in range(8):  # bounded walk over extension headers
            if next_header == PROTO_TCP:
                return self._tcp(base, first, n, pos, end, offset + 8, 32, segment)
            if next_header == IPV6_FRAGMENT:
                if n >= pos + 8 and be16(f + pos + 2) & 0xFFF8 == 0:
                    self._fragment(f, n, pos + 8, offset + 8, 32)
                return False
            if (next_header != 0 and next_header != 43 and next_header != 60) or n < pos + 2:
                return False
            next_header, pos = f[pos], pos + 8 + f[pos + 1] * 8
        return False

    cdef bytes _key(self, const uint8_t* f, Py_ssize_t addresses, Py_ssize_t size, Py_ssize_t pos):
        """The flow key: the addresses, then the two ports (``flows.flow_key``)."""
        cdef char key[36]
        memcpy(key, f + addresses, size)
        memcpy(key + size, f + pos, 4)
        return PyBytes_FromStringAndSize(key, size + 4)

    cdef bint _ours(
        self, const uint8_t* f, Py_ssize_t addresses, Py_ssize_t size, Py_ssize_t pos
    ) except -1:
        """Whether the segment is of this share's connections (``FlowShare.ours``), or due to
        the reassembler all the same: the look for idle connections runs at any segment's time
        (``TcpReassembler.segment``), the other shares' too."""
        if flow_hash(f + addresses, size >> 1, f + pos) % self.share_count == self.share_index:
            return True
        return (
            self.slow_time is None and self.time <= MAX_TIME
            and self.time >= <uint64_t>self.reassembler.next_sweep
        )

    cdef void _fragment(
        self, const uint8_t* f, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t addresses, Py_ssize_t size
    ) except *:
        """``link._count_fragment``: fragmented IP carrying SMB is counted, not reassembled."""
        if n >= pos + 4 and (smb_port(be16(f + pos)) or smb_port(be16(f + pos + 2))):
            if (
                self.share_count == 1
                or flow_hash(f + addresses, size >> 1, f + pos) % self.share_count == self.share_index
            ):
                self.diagnostics.warn(
                    "ip_fragment_skipped", "fragmented IP carrying SMB is not reassembled"
                )

    cdef bint _tcp(
        self,
        const uint8_t* base,
        Py_ssize_t first,
        Py_ssize_t n,
        Py_ssize_t pos,
        Py_ssize_t end,
        Py_ssize_t addresses,
        Py_ssize_t size,
        segment,
    ) except -1:
        """``link._tcp_segment``: SMB's ports, or a DCE/RPC flow (``Flows.is_rpc``)."""
        cdef const uint8_t* f = base + first
        cdef uint16_t source_port, destination_port, offset_flags
        cdef Py_ssize_t start
        if n < pos + 20:
            return False
        source_port = be16(f + pos)
        destination_port = be16(f + pos + 2)
        offset_flags = be16(f + pos + 12)
        start = pos + (offset_flags >> 12) * 4
        if not smb_port(source_port) and not smb_port(destination_port):
            # is_rpc says no without a look at anything else while no flow is known and the
            # payload does not begin a BIND (flows.starts_dcerpc_bind)
            if not self.rpc and not (
                n - start >= 5 and memcmp(f + start, b"\x05\x00\x0b", 3) == 0 and f[start + 4] == 0x10
            ):
                return False
            key = self._key(f, addresses, size, pos)
            if not self.flows.is_rpc(self.mapped, first + start, first + n, key):
                return False
        else:
            if self.share_count > 1 and not self._ours(f, addresses, size, pos):
                return False
            key = self._key(f, addresses, size, pos)
        if start > end:
            return False
        segment.fill(
            key, source_port, destination_port, be32(f + pos + 4), offset_flags & 0x3F,
            self.mapped, first + start, first + end, first + n,
        )
        return True
