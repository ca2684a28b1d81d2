"""Builds smbwatch with its packet path compiled to C by mypyc, from the same type-checked source,
and its native capture path (``capture/native.pyx``) by Cython.

The compiled modules are the ones every captured frame and SMB message passes through (capture,
SMB, DCE/RPC, the event record, the JSON lines sink), and the Windows log readers every record
passes through; they run about twice as fast compiled (the readers: reading the 593-file log
corpus stand-in took 4.9 s interpreted and 4.0 s compiled).
Compiling is an optimisation, not a requirement: without a C compiler or Python's headers the
build warns and installs the pure-Python package, which gives the same events more slowly
(``smbwatch --version`` says which one is installed). ``SMBWATCH_PURE_PYTHON=1`` skips compiling,
for working on the source with an editable install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

SOURCE = Path("src")
COMPILED = [
    "smbwatch/capture/*.py",
    "smbwatch/filedata/*.py",
    "smbwatch/smb/*.py",
    "smbwatch/dcerpc/*.py",
    "smbwatch/diagnostics.py",
    "smbwatch/events.py",
    "smbwatch/file_keys.py",
    "smbwatch/ntstatus.py",
    "smbwatch/options.py",
    "smbwatch/pipeline.py",
    "smbwatch/sinks/jsonl.py",
    "smbwatch/utf16.py",
    "smbwatch/winlog/*.py",
]


def compiled_modules() -> list[str]:
    """The source files mypyc compiles (package ``__init__`` files stay Python)."""
    paths = sorted({p for pattern in COMPILED for p in SOURCE.glob(pattern)})
    return [str(p) for p in paths if p.name != "__init__.py"]


class OptionalBuildExt(build_ext):
    """A failed compile leaves no half-built extension behind: the package stays pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no C compiler, no Python.h: the source runs as it is
            for built in self.get_outputs():
                Path(built).unlink(missing_ok=True)
            print(
                f"smbwatch: compiling the packet path failed ({error}); installing it as pure"
                " Python, which is about half as fast. Install a C compiler and the Python"
                " headers (Debian: gcc python3-dev) and reinstall to compile it.",
                file=sys.stderr,
            )


def native_extensions() -> list:
    """The native capture path (``capture/native.pyx``: the frame walk, the link, IP and TCP
    headers and TCP reassembly in C), compiled by Cython."""
    from Cython.Build import cythonize  # a build requirement (pyproject.toml)

    return cythonize(
        [str(SOURCE / "smbwatch/capture/native.pyx")],
        compiler_directives={"language_level": "3"},
        build_dir="build/cython",  # the generated C stays out of src/
        quiet=True,
    )


def extensions() -> list:
    if os.environ.get("SMBWATCH_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify  # a build requirement (pyproject.toml)

    compiled = mypycify(compiled_modules(), opt_level="3", strip_asserts=False)
    return compiled + native_extensions()


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
