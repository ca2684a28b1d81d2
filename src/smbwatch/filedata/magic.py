"""What a file is, from its first bytes: ``sniff_magic`` names a file's type so that a dropped
binary is recognised even when it is called ``report.txt``; the names are short and stable
because rules match on them."""

from __future__ import annotations

from typing import Final

# (signature, offset, name): checked in order, first match wins.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"MZ", 0, "PE"),
    (b"\x7fELF", 0, "ELF"),
    (b"#!", 0, "script"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "OLE"),  # MSI, legacy Office, ...
    (b"%PDF-", 0, "PDF"),
    (b"MSCF", 0, "CAB"),
    (b"Rar!\x1a\x07", 0, "RAR"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7z"),
    (b"\x1f\x8b", 0, "gzip"),
    (b"\xfd7zXZ\x00", 0, "xz"),
    (b"L\x00\x00\x00\x01\x14\x02\x00", 0, "LNK"),
    (b"regf", 0, "registry_hive"),  # SAM/SYSTEM/SECURITY saved for offline cracking
    (b"\xef\xcd\xab\x89", 4, "ESE"),  # ntds.dit and other ESE databases
    (b"MDMP", 0, "minidump"),  # e.g. an lsass dump taken off the host
    (b"ElfFile\x00", 0, "EVTX"),
    (b"\xfe\xed\xfa\xce", 0, "Mach-O"),
    (b"\xfe\xed\xfa\xcf", 0, "Mach-O"),
    (b"\xce\xfa\xed\xfe", 0, "Mach-O"),
    (b"\xcf\xfa\xed\xfe", 0, "Mach-O"),
    (b"{\\rtf", 0, "RTF"),
)
_ZIP: Final = b"PK\x03\x04"
_OOXML_FIRST_ENTRY: Final = b"[Content_Types].xml"
_BATCH_PREFIXES: Final = (b"@echo", b"@ECHO", b"@Echo")
# Every prefix that can name a type, and every offset they sit at: most files are none of
# these, and one C-level ``startswith`` per offset says so.
_KNOWN_PREFIXES: Final = {
    offset: tuple(sig for sig, at, _ in _SIGNATURES if at == offset)
    for offset in sorted({at for _, at, _ in _SIGNATURES})
}
_KNOWN_PREFIXES[0] += (_ZIP, *_BATCH_PREFIXES)


def sniff_magic(data: bytes) -> str | None:
    """The file type of ``data`` (the first bytes of a file), or None when nothing is known."""
    if not any(data.startswith(prefixes, at) for at, prefixes in _KNOWN_PREFIXES.items()):
        return None
    for signature, offset, name in _SIGNATURES:
        if data.startswith(signature, offset):
            return name
    if data.startswith(_ZIP):
        # The local file header's name starts at 30; OOXML puts its content types first.
        return "OOXML" if data.startswith(_OOXML_FIRST_ENTRY, 30) else "ZIP"
    if data.startswith(_BATCH_PREFIXES):
        return "script"
    return None
