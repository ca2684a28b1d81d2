# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The native capture path: the frame walk over a memory-mapped pcap or pcapng file, the link,
VLAN, IPv4, IPv6 and TCP headers, and TCP reassembly, in C, so that a frame that is not SMB never
reaches Python and a segment of the common case (the next bytes of its direction, or bytes the
consumer said it does not need) costs no Python object and no call but the consumer's ``data``
(or the tap's ``take``) when they are due.

It is the Python path of ``capture.pcap`` (the records), ``capture.link`` (the headers) and
``capture.tcp.TcpReassembler`` (reassembly) said again in C, with the same results to the byte:
the same consumer calls in the same order with the same arguments, the same counted warnings
with the same messages (``tests/test_native.py`` runs both on every capture; the fuzz tier runs
mutated captures through both). The C copy exists because the per-segment bookkeeping in Python
cost more than the walk itself; the rules stay ``tcp``'s: its bounds and times are imported from
there, and a connection is opened by ``tcp.opening``. What is rare or belongs to Python state
stays in Python and is called from here: an interface description (``pcap._interface``), the
DCE/RPC flows (``Flows.is_rpc``), a warning, the segments held out of order (a dict of copies,
as ``tcp`` holds them). Only a capture file read whole from disk (memory-mapped) takes this
path; a compressed one, a member of a zip archive or another frame source is read by the Python
path.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, UINT64_MAX
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy
from posix.mman cimport MADV_DONTNEED, madvise
from posix.time cimport nanosleep, timespec


cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil

cdef extern from *:
    """
    static inline Py_ssize_t smbwatch_load(const Py_ssize_t* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void smbwatch_store(Py_ssize_t* p, Py_ssize_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    """
    Py_ssize_t atomic_load "smbwatch_load"(const Py_ssize_t* p) noexcept nogil
    void atomic_store "smbwatch_store"(Py_ssize_t* p, Py_ssize_t v) noexcept nogil

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t* thread, void* attr, void* (*run)(void*) noexcept nogil, void* arg)
    int pthread_join(pthread_t thread, void** result)

from smbwatch.capture.pcap import MAX_BLOCK as _MAX_BLOCK
from smbwatch.capture.pcap import MAX_RECORD as _MAX_RECORD
from smbwatch.capture.pcap import _interface
from smbwatch.capture.tcp import FIN as _FIN
from smbwatch.capture.tcp import IDLE_SWEEP_EVERY as _IDLE_SWEEP_EVERY
from smbwatch.capture.tcp import IDLE_TIMEOUT as _IDLE_TIMEOUT
from smbwatch.capture.tcp import LATE_SYN_WINDOW as _LATE_SYN_WINDOW
from smbwatch.capture.tcp import MAX_CONNECTIONS as _MAX_CONNECTIONS
from smbwatch.capture.tcp import MAX_PENDING_BYTES as _MAX_PENDING_BYTES
from smbwatch.capture.tcp import MAX_PENDING_SEGMENTS as _MAX_PENDING_SEGMENTS
from smbwatch.capture.tcp import RST as _RST
from smbwatch.capture.tcp import SYN as _SYN
from smbwatch.capture.tcp import opening
from smbwatch.events import MAX_TIME as _MAX_TIME
from smbwatch.interrupt import check as check_interrupt

cdef Py_ssize_t MAX_RECORD = _MAX_RECORD
cdef Py_ssize_t MAX_BLOCK = _MAX_BLOCK
cdef uint64_t MAX_TIME = _MAX_TIME
cdef Py_ssize_t RELEASE_EVERY = 1 << 22  # bytes walked between handing pages back (pcap.CHUNK)
cdef Py_ssize_t PAGE = 4096
cdef Py_ssize_t AHEAD = 1 << 24  # bytes mapped in ahead of the walk, at most
cdef Py_ssize_t AHEAD_STEP = 1 << 20  # bytes mapped in between looks at the walk
cdef long AHEAD_NAP = 200000  # nanoseconds a page mapper waits when it is far enough ahead
cdef uint64_t CHECK_EVERY = 1023  # frames between looks at whether a stop was asked for
# TCP reassembly's rules, from capture.tcp
cdef int FIN = _FIN, SYN = _SYN, RST = _RST
cdef uint64_t IDLE_TIMEOUT = _IDLE_TIMEOUT
cdef uint64_t IDLE_SWEEP_EVERY = _IDLE_SWEEP_EVERY
cdef uint32_t LATE_SYN_WINDOW = _LATE_SYN_WINDOW
cdef Py_ssize_t MAX_CONNECTIONS = _MAX_CONNECTIONS
cdef Py_ssize_t MAX_PENDING_BYTES = _MAX_PENDING_BYTES
cdef Py_ssize_t MAX_PENDING_SEGMENTS = _MAX_PENDING_SEGMENTS

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


def gather(const uint8_t[::1] capture, const uint64_t[::1] pointers):
    """The bytes the (offset, length) pairs ``pointers`` point to in ``capture``, joined into
    one ``bytes``; None when one lies past its end. The hashing process's reading of file data
    by pointers (``filedata.digests.MappedCapture``): a copy each, with no Python object a
    piece (made of Python slices, they cost that process a quarter of its time)."""
    cdef Py_ssize_t count = pointers.shape[0] // 2, i, total = 0, size = capture.shape[0]
    cdef uint64_t offset, length
    for i in range(count):
        offset, length = pointers[2 * i], pointers[2 * i + 1]
        if offset > <uint64_t>size or length > <uint64_t>size - offset:
            return None
        total += <Py_ssize_t>length
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* into = PyBytes_AS_STRING(out)
    for i in range(count):
        offset, length = pointers[2 * i], pointers[2 * i + 1]
        memcpy(into, &capture[offset], length)
        into += length
    return out


cdef struct _Pages:
    const uint8_t* base  # the mapped capture
    Py_ssize_t size
    Py_ssize_t walked  # how far the walk has come (the walk writes it, the page thread reads it)
    Py_ssize_t stop  # set: the page thread ends
    Py_ssize_t sink  # what the page thread read, kept so that its reads are kept


cdef void* _map_ahead(void* argument) noexcept nogil:
    """The page thread: touch a byte in every page up to ``AHEAD`` bytes past where the walk is,
    and hand the pages the walk has passed back to the kernel, until told to stop."""
    cdef _Pages* pages = <_Pages*>argument
    cdef const uint8_t* base = pages.base
    cdef Py_ssize_t size = pages.size
    cdef Py_ssize_t ahead = atomic_load(&pages.walked), released = 0, walk, end
    cdef uint8_t touched = 0
    cdef timespec nap
    nap.tv_sec = 0
    nap.tv_nsec = AHEAD_NAP
    ahead -= ahead % PAGE
    while not atomic_load(&pages.stop):
        walk = atomic_load(&pages.walked)
        if ahead < walk:  # the walk got here first
            ahead = walk - walk % PAGE
        if ahead < size and ahead - walk < AHEAD:
            end = min(ahead + AHEAD_STEP, size)
            while ahead < end:
                touched += base[ahead]
                ahead += PAGE
            ahead = end
        else:
            nanosleep(&nap, NULL)
        if walk - released >= RELEASE_EVERY:
            end = walk - walk % PAGE
            madvise(<void*>(base + released), end - released, MADV_DONTNEED)
            released = end
    pages.sink = touched
    return NULL


cdef class _PagesAhead:
    """The page work of walking a memory-mapped capture, done beside the walk on a thread of its
    own (a C thread: no lock, nothing of Python): mapping in the pages ahead of it (a fault for
    every few pages) and handing back those behind it, so that memory does not grow with the
    file. The walk then finds its pages mapped and only says how far it has come (``at``). On
    a 1.2 GB capture in the page cache, a bare walk over the record headers in C took 0.25 s
    with the page work and 0.14 s with the page work on a thread beside it. The object holds a
    view of the mapping while its thread runs, so the mapping cannot be closed under it;
    ``close`` stops the thread (``FrameReader.before_close``), and so does its end."""

    cdef Py_buffer view
    cdef _Pages pages
    cdef pthread_t thread
    cdef bint running  # the thread runs, and the view is held

    def __cinit__(self, mapped, Py_ssize_t start):
        PyObject_GetBuffer(mapped, &self.view, PyBUF_SIMPLE)
        self.pages.base = <const uint8_t*>self.view.buf
        self.pages.size = self.view.len
        self.pages.walked = start
        self.pages.stop = 0
        if pthread_create(&self.thread, NULL, _map_ahead, &self.pages) != 0:
            PyBuffer_Release(&self.view)
            raise OSError("cannot start a thread")
        self.running = True

    def __dealloc__(self):
        self._stop()

    cdef inline void at(self, Py_ssize_t pos) noexcept nogil:
        """The walk has come to ``pos``: the bytes before it are not needed again."""
        atomic_store(&self.pages.walked, pos)

    def close(self):
        """Stop the thread and let go of the mapping."""
        self._stop()

    cdef void _stop(self) noexcept:
        if self.running:
            self.running = False
            atomic_store(&self.pages.stop, 1)
            with nogil:
                pthread_join(self.thread, NULL)
            PyBuffer_Release(&self.view)


cdef class _Half:
    """One direction of a connection (``tcp._Half``): where its next byte belongs, the bytes to
    come the consumer does not need and where they go, and segments that arrived early."""

    cdef uint32_t next_seq
    cdef bint known  # next_seq is set (``tcp``'s None: nothing of the direction seen yet)
    cdef int64_t skip
    cdef object tap
    cdef dict pending  # seq -> (payload, cut, time, frame), as tcp holds them
    cdef Py_ssize_t pending_bytes
    cdef bint fin

    def __cinit__(self):
        self.pending = {}


cdef class _Connection:
    """One connection (``tcp._Connection``), found by its 4-tuple in ``NativeStreams``' table."""

    cdef object consumer, data  # data: the consumer's bound ``data``
    cdef _Half client, server
    cdef uint64_t last_time  # UINT64_MAX when it does not fit 64 bits ...
    cdef object slow_last  # ... and then this is it (else None)
    cdef uint8_t key[36]  # to the server: client address, server address, client port, server port
    cdef Py_ssize_t size  # of an address
    cdef uint32_t hash
    cdef bint seen_data
    cdef bint loop  # client and server the same endpoint: one key, in tcp's flows as to_client


def _last_time(_Connection connection):
    """The capture time a connection was last active (eviction's order)."""
    if connection.slow_last is not None:
        return connection.slow_last
    return connection.last_time


cdef class NativeStreams:
    """The TCP streams of one memory-mapped capture (``streams.TcpStreams`` on the native
    path): the segments of SMB's ports and of DCE/RPC over TCP in ``frames`` (a
    ``pcap.FrameReader`` that has read nothing yet), of the connections of ``flows.share``,
    reassembled into the consumers ``factory`` makes, as ``streams.FrameSegments`` and
    ``tcp.TcpReassembler`` do from Python.

    The connections are found by their 4-tuple in an open-addressing table of C pointers keyed
    by the flow hash (the one that chooses the share); the table holds no reference: the dict
    ``connections`` does, in the order they opened (``tcp``'s flows order, which closes
    them in that order)."""

    cdef object mapped, path, reader_diagnostics, diagnostics, flows, rpc, interfaces
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
    # reassembly
    cdef object factory
    cdef list made
    cdef const uint8_t* base  # the mapped file, while advance runs
    cdef uint64_t now  # the time of the frame; UINT64_MAX when it does not fit 64 bits
    cdef uint64_t next_sweep  # the capture time of the next look for idle connections
    cdef dict connections
    cdef _PagesAhead ahead  # None: the walk maps and hands back its pages itself
    cdef bint ahead_wanted  # a page thread is to start with the walk
    cdef PyObject** table
    cdef size_t mask
    cdef Py_ssize_t entries  # as many as tcp's flows would hold: two a connection (a loop one)

    def __cinit__(self):
        cdef size_t size = 1
        while size < 4 * <size_t>_MAX_CONNECTIONS:  # at most 2 * MAX_CONNECTIONS connections
            size <<= 1
        self.table = <PyObject**>calloc(size, sizeof(PyObject*))
        if self.table == NULL:
            raise MemoryError()
        self.mask = size - 1

    def __dealloc__(self):
        free(self.table)

    def __init__(self, frames, factory, diagnostics, flows):
        self.mapped = frames.mapped
        self.factory = factory
        self.share_index = flows.share.index
        self.share_count = flows.share.count
        self.path = frames.path
        # damage and packet blocks as the reader says them; the rest as the frame loop does
        self.reader_diagnostics = frames.diagnostics
        self.diagnostics = diagnostics
        self.flows = flows
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
        self.connections = {}
        self.next_sweep = 0
        self.entries = 0
        if self.pcapng:
            self.big = False
        else:
            self.big = frames.big_endian
            self.divisor = frames.divisor
            self.linktype = frames.linktype
        self.ahead_wanted = self.share_count == 1  # shares keep every core busy walking already

    def advance(self, list made, segment) -> bool:
        """Read frames until the consumers have put something in ``made`` (True; the number
        of the frame that did is then ``segment.frame``), or to the end of the capture
        (False; ``finish`` then closes every connection)."""
        cdef Py_buffer view
        if self.done:
            return False
        if self.ahead_wanted:
            self.ahead_wanted = False
            try:
                self.ahead = _PagesAhead(self.mapped, self.pos)
            except OSError:  # no thread to be had: the walk does the page work itself
                pass
        PyObject_GetBuffer(self.mapped, &view, PyBUF_SIMPLE)
        self.base = <const uint8_t*>view.buf
        self.made = made
        try:
            if self.pcapng:
                found = self._pcapng(self.base, view.len)
            else:
                found = self._pcap(self.base, view.len)
            if found:
                segment.frame = self.number
            else:
                self.done = True
            return found
        finally:
            self.made = None
            self.base = NULL
            PyBuffer_Release(&view)

    def finish(self):
        """End of input: deliver what is held and close every connection."""
        cdef _Connection connection
        self.close()
        for connection in list(self.connections):
            self._close(connection)

    def close(self):
        """Done with the mapping (at the end, or when the walk is left early): the page thread,
        if one started, is stopped, so that the mapping can be closed."""
        self.ahead_wanted = False
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None

    cdef inline void _release(self, const uint8_t* base, Py_ssize_t walked) noexcept:
        """The walk has come to ``walked``: the pages before it are handed back to the kernel
        (by the page thread, if there is one), so that memory does not grow with the file."""
        cdef Py_ssize_t upto
        if self.ahead is not None:
            self.ahead.at(walked)
        elif self.pos - self.released >= RELEASE_EVERY:
            upto = self.pos - self.pos % PAGE
            madvise(<void*>base, upto, MADV_DONTNEED)
            self.released = upto

    cdef bint _pcap(self, const uint8_t* base, Py_ssize_t size) except -1:
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
            if size - self.pos >= 16:
                __builtin_prefetch(base + self.pos)  # the next header, while this frame is read
            self._release(base, pos)
            if self._packet(base, first, first + caplen, self.linktype):
                return True

    cdef bint _pcapng(self, const uint8_t* base, Py_ssize_t size) except -1:
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
            if block_len < 12 or block_len % 4 or block_len > MAX_BLOCK:
                self._damaged(f"corrupt block length {block_len} after frame {self.number}")
                return False
            if size - pos < block_len:
                self._damaged(f"truncated block after frame {self.number}")
                return False
            self.pos = pos + block_len
            if size - self.pos >= 12:
                __builtin_prefetch(base + self.pos)  # the next block, while this one is read
            self._release(base, pos)
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
                if self._packet(base, data, stop, self.iface_linktype):
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
            if self._packet(base, first + 20, first + 20 + caplen, self.iface_linktype):
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
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t last, int linktype
    ) except -1:
        """The frame ``base[first:last]``, through the headers and reassembly: whether the
        consumers made something of it (as ``TcpStreams.advance`` looks after each segment)."""
        if not self.number & CHECK_EVERY:
            check_interrupt()
        self.now = self.time if self.slow_time is None else UINT64_MAX
        return self._frame(base, first, last, linktype) and len(self.made) > 0

    cdef void _damaged(self, str what) except *:
        self.reader_diagnostics.damaged(self.path, what)

    # The headers: capture.link, said in C ------------------------------------------------------

    cdef bint _frame(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t last, int linktype
    ) except -1:
        """``link.read_segment`` over the frame ``base[first:last]``: whether it was a segment
        reassembly took (``TcpReassembler.segment``)."""
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
            return self._ipv4(base, first, n, offset)
        if ethertype == ETHERTYPE_IPV6:
            return self._ipv6(base, first, n, offset)
        return False

    cdef bint _ipv4(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t n, Py_ssize_t offset
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
        return self._tcp(base, first, n, offset + header_len, end, offset + 12, 8)

    cdef bint _ipv6(
        self, const uint8_t* base, Py_ssize_t first, Py_ssize_t n, Py_ssize_t offset
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
                return self._tcp(base, first, n, pos, end, offset + 8, 32)
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
    ) except -1:
        """``link._tcp_segment``: SMB's ports, or a DCE/RPC flow (``Flows.is_rpc``)."""
        cdef const uint8_t* f = base + first
        cdef uint16_t source_port, destination_port, offset_flags
        cdef Py_ssize_t start, stop
        cdef uint32_t h
        cdef bint smb
        if n < pos + 20:
            return False
        source_port = be16(f + pos)
        destination_port = be16(f + pos + 2)
        offset_flags = be16(f + pos + 12)
        start = pos + (offset_flags >> 12) * 4
        smb = smb_port(source_port) or smb_port(destination_port)
        if not smb:
            # is_rpc says no without a look at anything else while no flow is known and the
            # payload does not begin a BIND (flows.starts_dcerpc_bind)
            if not self.rpc and not (
                n - start >= 5 and memcmp(f + start, b"\x05\x00\x0b", 3) == 0 and f[start + 4] == 0x10
            ):
                return False
            if not self.flows.is_rpc(self.mapped, first + start, first + n, self._key(f, addresses, size, pos)):
                return False
        if start > end:
            return False
        h = flow_hash(f + addresses, size >> 1, f + pos)
        if smb and self.share_count > 1 and h % self.share_count != self.share_index:
            # Another share's connection (``FlowShare.ours``): it opens nothing here, but the
            # look for idle connections runs at any segment's time, the other shares' too.
            if self.now >= self.next_sweep and self.now <= MAX_TIME:
                self._close_idle(self.now)
                return True
            return False
        stop = end if end < n else n  # link.Segment.fill
        if stop < start:
            stop = start
        self._segment(
            f + addresses, size >> 1, f + pos, h, source_port, destination_port,
            be32(f + pos + 4), offset_flags & 0x3F, first + start, first + stop, end - stop,
        )
        return True

    # TCP reassembly: capture.tcp.TcpReassembler, said in C ---------------------------------------

    cdef int _segment(
        self,
        const uint8_t* addresses,
        Py_ssize_t size,
        const uint8_t* ports,
        uint32_t hash,
        uint16_t source_port,
        uint16_t destination_port,
        uint32_t seq,
        int flags,
        Py_ssize_t start,
        Py_ssize_t stop,
        Py_ssize_t cut,
    ) except -1:
        """``TcpReassembler.segment``: the payload is ``mapped[start:stop]`` and ``cut`` bytes
        the snap length left out; addresses and ports as they stand in the headers."""
        cdef uint64_t now = self.now
        cdef bint from_client = False
        cdef _Connection connection
        cdef _Half half
        if now >= self.next_sweep and now <= MAX_TIME:
            self._close_idle(now)
        connection = self._find(addresses, size, ports, hash, &from_client)
        if connection is not None and _idle(connection, now):
            self._close(connection)  # idle too long: what comes now is a new connection
            connection = None
        if connection is not None and not flags & (SYN | FIN | RST) and stop > start:
            half = connection.client if from_client else connection.server
            if half.known and seq == half.next_seq and not half.pending:  # next in order
                self._touch(connection)
                connection.seen_data = True
                self._deliver(
                    connection, half, from_client, self.mapped, self.base, start, stop, cut,
                    None, None,
                )
                return 0
        if connection is not None and flags & SYN and connection.seen_data:
            half = connection.client if from_client else connection.server
            if not half.known or <uint32_t>(half.next_seq - seq - 1) <= LATE_SYN_WINDOW:
                return 0  # a SYN of the connection already under way (tcp._is_late_syn)
            self._close(connection)  # the 4-tuple is reused by a new connection
            connection = None
        if connection is None:
            if flags & RST or not (stop > start or cut or flags & SYN):
                return 0  # a bare ACK or reset of a connection we never saw says nothing
            connection = self._open(
                addresses, size, ports, hash, source_port, destination_port, seq, flags,
                &from_client,
            )
        self._touch(connection)
        half = connection.client if from_client else connection.server
        if flags & SYN:
            half.next_seq = seq + 1
            half.known = True
        elif stop > start or cut:
            connection.seen_data = True
            self._receive(connection, half, from_client, seq, start, stop, cut)
        if flags & RST:
            self._close(connection)
        elif flags & FIN:
            half.fin = True
            if connection.client.fin and connection.server.fin:
                self._close(connection)
        return 0

    cdef inline void _touch(self, _Connection connection) noexcept:
        connection.last_time = self.now
        if self.slow_time is not None or connection.slow_last is not None:
            connection.slow_last = self.slow_time

    cdef object _time(self):
        """The frame's time as the consumers get it."""
        return self.time if self.slow_time is None else self.slow_time

    cdef _Connection _find(
        self,
        const uint8_t* addresses,
        Py_ssize_t size,
        const uint8_t* ports,
        uint32_t hash,
        bint* from_client,
    ):
        """The open connection of these addresses and ports, either direction (None)."""
        cdef size_t i = hash & self.mask
        cdef PyObject* slot
        cdef _Connection connection
        cdef const uint8_t* key
        while True:
            slot = self.table[i]
            if slot == NULL:
                return None
            connection = <_Connection>slot
            key = connection.key
            if connection.hash == hash and connection.size == size:
                if memcmp(key, addresses, 2 * size) == 0 and memcmp(key + 2 * size, ports, 4) == 0:
                    from_client[0] = not connection.loop
                    return connection
                if (
                    memcmp(key, addresses + size, size) == 0
                    and memcmp(key + size, addresses, size) == 0
                    and memcmp(key + 2 * size, ports + 2, 2) == 0
                    and memcmp(key + 2 * size + 2, ports, 2) == 0
                ):
                    from_client[0] = False
                    return connection
            i = (i + 1) & self.mask

    cdef _Connection _open(
        self,
        const uint8_t* addresses,
        Py_ssize_t size,
        const uint8_t* ports,
        uint32_t hash,
        uint16_t source_port,
        uint16_t destination_port,
        uint32_t seq,
        int flags,
        bint* from_client,
    ):
        """``TcpReassembler._open``: the connection first seen with this segment."""
        cdef char raw[36]
        cdef _Connection connection
        cdef size_t i
        memcpy(raw, addresses, 2 * size)
        memcpy(raw + 2 * size, ports, 4)
        key = PyBytes_FromStringAndSize(raw, 2 * size + 4)
        client_first, to_server, to_client, endpoints = opening(
            key, source_port, destination_port, seq, flags
        )
        if self.entries >= 2 * MAX_CONNECTIONS:
            self._evict()
        consumer = self.factory(*endpoints)
        connection = _Connection.__new__(_Connection)
        connection.consumer = consumer
        connection.data = consumer.data
        connection.client = _Half.__new__(_Half)
        connection.server = _Half.__new__(_Half)
        connection.last_time = self.now
        connection.slow_last = self.slow_time
        memcpy(connection.key, <const char*>to_server, 2 * size + 4)
        connection.size = size
        connection.hash = hash
        connection.loop = to_server == to_client
        i = hash & self.mask
        while self.table[i] != NULL:
            i = (i + 1) & self.mask
        self.table[i] = <PyObject*>connection
        self.connections[connection] = None
        self.entries += 1 if connection.loop else 2
        from_client[0] = client_first
        return connection

    cdef void _forget(self, _Connection connection) except *:
        """Take the connection out of the table (backward-shift deletion keeps every other
        entry reachable from its hash without tombstones) and out of ``connections``."""
        cdef size_t i = connection.hash & self.mask
        cdef size_t j, home
        cdef PyObject* me = <PyObject*>connection
        while self.table[i] != me:
            if self.table[i] == NULL:
                return  # closed already
            i = (i + 1) & self.mask
        self.table[i] = NULL
        j = i
        while True:
            j = (j + 1) & self.mask
            if self.table[j] == NULL:
                break
            home = (<_Connection>self.table[j]).hash & self.mask
            # move it back unless its home lies cyclically in (i, j]
            if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                self.table[i] = self.table[j]
                self.table[j] = NULL
                i = j
        self.entries -= 1 if connection.loop else 2
        del self.connections[connection]

    cdef void _evict(self) except *:
        """Close the least recently active tenth of the connections (bounded state)."""
        connections = sorted(self.connections, key=_last_time)
        victims = connections[: max(1, len(connections) // 10)]
        self.diagnostics.warn("tcp_connections_evicted", f"{len(victims)} idle connections")
        for connection in victims:
            self._close(connection)

    cdef void _close_idle(self, uint64_t now) except *:
        """Close the connections idle for ``IDLE_TIMEOUT`` at capture time ``now`` (not one of
        a loop, which tcp's flows know by its key to the client alone)."""
        cdef _Connection connection
        self.next_sweep = now + IDLE_SWEEP_EVERY
        for connection in list(self.connections):
            if not connection.loop and _idle(connection, now):
                self._close(connection)

    cdef void _close(self, _Connection connection) except *:
        while connection.client.pending:
            self._skip_to_earliest(connection, connection.client, True)
        while connection.server.pending:
            self._skip_to_earliest(connection, connection.server, False)
        self._forget(connection)
        connection.consumer.close()

    cdef void _receive(
        self,
        _Connection connection,
        _Half half,
        bint from_client,
        uint32_t seq,
        Py_ssize_t start,
        Py_ssize_t stop,
        Py_ssize_t cut,
    ) except *:
        cdef uint32_t ahead
        cdef int64_t behind
        if not half.known:
            half.next_seq = seq  # the capture starts mid-connection
            half.known = True
        ahead = seq - half.next_seq
        if ahead and ahead < 0x80000000U:
            self._hold(
                connection, half, from_client, seq,
                PyBytes_FromStringAndSize(<const char*>self.base + start, stop - start), cut,
                self._time(), self.number,
            )
            return
        if ahead:
            behind = 0x100000000 - <int64_t>ahead
            if behind >= stop - start + cut:
                return  # a pure retransmission
            cut -= max(0, behind - (stop - start))
            start = min(stop, start + behind)
        self._deliver(
            connection, half, from_client, self.mapped, self.base, start, stop, cut, None, None
        )
        if half.pending:
            self._drain(connection, half, from_client)

    cdef void _deliver(
        self,
        _Connection connection,
        _Half half,
        bint from_client,
        object buf,
        const uint8_t* data,
        Py_ssize_t start,
        Py_ssize_t stop,
        Py_ssize_t cut,
        object time,
        object frame,
    ) except *:
        """The next bytes of the direction, ``buf[start:stop]`` (at ``data``) and ``cut``
        more never captured: the skipped ones to the tap, the rest (copied) to the consumer.
        ``time`` and ``frame`` None: the frame's own."""
        cdef int64_t skipped
        half.next_seq = half.next_seq + <uint32_t>(stop - start + cut)
        if half.skip:
            skipped = min(half.skip, stop - start)
            if half.tap is not None:
                half.tap.take(buf, start, start + skipped)
            start += skipped
            half.skip -= skipped
        if stop > start:
            half.skip, half.tap = connection.data(
                from_client,
                PyBytes_FromStringAndSize(<const char*>data + start, stop - start),
                self._time() if time is None else time,
                self.number if frame is None else frame,
            )
        if cut:
            self.diagnostics.warn("snaplen_cut", "frames shorter than their TCP payload")
            self._lost(connection, half, from_client, cut)

    cdef void _lost(
        self, _Connection connection, _Half half, bint from_client, int64_t length
    ) except *:
        """Bytes that never reached the capture: within skipped bytes they do not matter."""
        cdef int64_t inside = min(half.skip, length)
        half.skip -= inside
        if inside and half.tap is not None:
            half.tap.gap(inside)
        if length > inside:
            connection.consumer.gap(from_client, length - inside)

    cdef void _hold(
        self,
        _Connection connection,
        _Half half,
        bint from_client,
        uint32_t seq,
        bytes payload,
        Py_ssize_t cut,
        object time,
        object frame,
    ) except *:
        held = half.pending.get(seq)
        if held is not None and len(held[0]) + held[1] >= len(payload) + cut:
            return
        half.pending[seq] = (payload, cut, time, frame)
        half.pending_bytes += len(payload)
        if half.pending_bytes > MAX_PENDING_BYTES or len(half.pending) > MAX_PENDING_SEGMENTS:
            self._skip_to_earliest(connection, half, from_client)

    cdef void _drain(self, _Connection connection, _Half half, bint from_client) except *:
        """Deliver held segments that now continue the stream (exactly or overlapping)."""
        cdef dict pending = half.pending
        cdef uint32_t seq, over
        cdef Py_ssize_t length, start, cut
        cdef bytes payload
        while pending:
            seq = half.next_seq
            held = pending.pop(seq, None)
            if held is None:
                behind = None
                for s in pending:
                    if <uint32_t>(<uint32_t>s - seq) >= 0x80000000U:
                        behind = s
                        break
                if behind is None:
                    return
                held = pending.pop(behind)
                payload, cut = held[0], held[1]
                length = len(payload)
                half.pending_bytes -= length
                over = seq - <uint32_t>behind
                if over < length + cut:  # else a pure retransmission
                    start = min(length, <Py_ssize_t>over)
                    cut -= max(0, <Py_ssize_t>over - length)
                    self._deliver(
                        connection, half, from_client, payload, <const uint8_t*><const char*>payload,
                        start, length, cut, held[2], held[3],
                    )
                continue
            payload = held[0]
            length = len(payload)
            half.pending_bytes -= length
            self._deliver(
                connection, half, from_client, payload, <const uint8_t*><const char*>payload,
                0, length, held[1], held[2], held[3],
            )

    cdef void _skip_to_earliest(
        self, _Connection connection, _Half half, bint from_client
    ) except *:
        """Give up waiting for missing bytes: report the gap and go on from the earliest held."""
        cdef uint32_t missing = 0, distance
        cdef bint first = True
        earliest = None
        for s in half.pending:
            distance = <uint32_t>s - half.next_seq
            if first or distance < missing:
                missing, earliest, first = distance, s, False
        if missing and missing < 0x80000000U:
            self.diagnostics.warn("tcp_gap", f"{missing} bytes never captured")
            self._lost(connection, half, from_client, missing)
        half.next_seq = earliest
        self._drain(connection, half, from_client)


cdef inline bint _idle(_Connection connection, uint64_t now) noexcept:
    """Idle past ``IDLE_TIMEOUT`` at capture time ``now`` (a time past year 9999 is no time)."""
    return (
        now <= MAX_TIME and now > connection.last_time
        and now - connection.last_time > IDLE_TIMEOUT
    )
