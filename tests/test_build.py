"""The installed build: its packet path is compiled (setup.py), and compiled it says exactly what
the Python source says, on every capture and log of the corpus and the shipped example.

The tests run against the installed package (scripts/setup-venv.sh installs it, compiled); the
source tree, put first on PYTHONPATH, is the pure-Python reference.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smbwatch.capture.streams import native_path
from smbwatch.cli import build

pytestmark = pytest.mark.oracle

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src"
EXAMPLES = REPO / "examples"


def compiled_modules() -> list[str]:
    """The module names setup.py compiles, read from its COMPILED patterns."""
    tree = ast.parse((REPO / "setup.py").read_text())
    patterns = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED"
    )
    paths = {p for pattern in patterns for p in SOURCE.glob(pattern) if p.name != "__init__.py"}
    return sorted(".".join(p.relative_to(SOURCE).with_suffix("").parts) for p in paths)


def smbwatch(*args: str, source: bool) -> subprocess.CompletedProcess[str]:
    """The command line with the installed package, or with the source tree (``source``)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if source:
        env["PYTHONPATH"] = str(SOURCE)
    command = [sys.executable, "-m", "smbwatch.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_the_installed_packet_path_is_compiled() -> None:
    modules = compiled_modules()
    assert "smbwatch.capture.tcp" in modules and "smbwatch.smb.smb2" in modules
    loaded = {name: __import__(name, fromlist=["_"]).__file__ for name in modules}
    pure = [name for name, path in loaded.items() if str(path).endswith(".py")]
    assert not pure, (
        f"installed without its compiled packet path ({', '.join(pure)}): install gcc and"
        " python3-dev (scripts/install-test-deps.sh) and rerun scripts/setup-venv.sh test"
    )
    assert build() == "compiled"
    assert native_path(), "installed without the native capture path (capture/native.pyx)"


def test_the_source_tree_runs_as_pure_python() -> None:
    done = smbwatch("--version", source=True)
    assert done.returncode == 0 and "(pure Python)" in done.stdout
    assert "(compiled)" in smbwatch("--version", source=False).stdout


@pytest.mark.parametrize("extra", [[], ["--no-hash"]], ids=["hashing", "no-hash"])
def test_compiled_and_source_give_the_same_events(shared_data: Path, extra: list[str]) -> None:
    inputs = [str(shared_data), str(EXAMPLES)]
    compiled = smbwatch("events", *inputs, "-f", "jsonl", *extra, source=False)
    source = smbwatch("events", *inputs, "-f", "jsonl", *extra, source=True)
    assert compiled.returncode == source.returncode == 3, compiled.stderr  # damaged samples
    lines = compiled.stdout.splitlines()
    actions = {line.split('"action":"', 1)[1].split('"', 1)[0] for line in lines}
    assert len(lines) > 1500 and {"write", "rpc_call", "access_check", "logon"} <= actions
    assert compiled.stdout == source.stdout
    assert compiled.stderr == source.stderr


def test_compiled_and_source_raise_the_same_alerts(shared_data: Path) -> None:
    inputs = [str(shared_data), str(EXAMPLES)]
    compiled = smbwatch("detect", *inputs, "-f", "jsonl", source=False)
    source = smbwatch("detect", *inputs, "-f", "jsonl", source=True)
    assert compiled.returncode == source.returncode == 1, compiled.stderr
    assert compiled.stdout.count("\n") >= 10
    assert compiled.stdout == source.stdout
