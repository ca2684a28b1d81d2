"""The layers of the source point one way, read from the source itself (``ast``, no import).

Data flows capture → smb → dcerpc → enrichment → detect → sinks → cli (CONTRIBUTING.md,
"Layout"). In imports, a module stands only on its own layer and the ones below it: ``LAYERS``
lists them from the ground up. DCE/RPC is read from SMB named pipes and from TCP alike and knows
neither, so it sits below SMB; the alert sink inside ``detect`` (``detect.report``) is a sink.
Sources (capture, SMB, DCE/RPC, Windows logs, the pipeline) never import detection or sinks.
Besides, no two modules import each other, directly or round a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SOURCE = Path(__file__).resolve().parents[1] / "src"

# From the ground up; a name stands for the module or package and everything below it, and the
# longest name that matches a module decides its layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "ground",
        (
            "smbwatch",  # the package's __init__: its version
            "smbwatch.events",
            "smbwatch.diagnostics",
            "smbwatch.options",
            "smbwatch.ntstatus",
            "smbwatch.schema",
            "smbwatch.exits",
            "smbwatch.arrow",  # events as typed columns, read and written by several layers
            "smbwatch.utf16",  # names on the wire, decoded alike by SMB and DCE/RPC
        ),
    ),
    ("capture", ("smbwatch.capture",)),
    ("filedata", ("smbwatch.filedata",)),
    ("dcerpc", ("smbwatch.dcerpc",)),
    ("smb", ("smbwatch.smb",)),
    (
        "sources",
        (
            "smbwatch.winlog",
            "smbwatch.parallel",
            "smbwatch.cluster",  # the Dask engine: inputs read as tasks of a cluster
            "smbwatch.pipeline",
            "smbwatch.file_keys",
            "smbwatch.readback",
        ),
    ),
    ("enrichment", ("smbwatch.enrich", "smbwatch.case")),
    ("detect", ("smbwatch.detect",)),
    ("sinks", ("smbwatch.sinks", "smbwatch.detect.report")),
    ("cli", ("smbwatch.cli", "smbwatch.cli_case", "smbwatch.__main__")),
)
LAYER_NAMES = [name for name, _ in LAYERS]


def module_names(root: Path = SOURCE) -> dict[str, Path]:
    """Every module of the source tree by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The smbwatch modules ``name`` imports, anywhere in it (functions and TYPE_CHECKING too);
    ``from package import module`` is an import of that module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {imported for imported in found if imported in modules and imported != name}


def layer(module: str) -> str:
    """The layer of a module: that of the longest name in ``LAYERS`` it is or lies under."""
    best, best_length = "", -1
    for layer_name, names in LAYERS:
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = layer_name, len(prefix)
    return best


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Every import of a module in a higher layer, as ``module (layer) -> module (layer)``."""
    wrong = []
    for name, path in modules.items():
        own = LAYER_NAMES.index(layer(name))
        for imported in sorted(imports(name, path, modules)):
            if LAYER_NAMES.index(layer(imported)) > own:
                wrong.append(f"{name} ({layer(name)}) -> {imported} ({layer(imported)})")
    return wrong


def cycles(modules: dict[str, Path]) -> list[list[str]]:
    """The groups of modules that import each other round a loop (strongly connected)."""
    graph = {name: sorted(imports(name, path, modules)) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the tree is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    modules = module_names()
    assert len(modules) > 50  # the tree really was read
    assert [name for name in modules if not layer(name)] == []


def test_imports_point_down_only() -> None:
    wrong = upward_imports(module_names())
    assert not wrong, "imports of a higher layer:\n" + "\n".join(wrong)


def test_no_module_imports_itself_round_a_loop() -> None:
    loops = cycles(module_names())
    assert not loops, "modules that import each other: " + "; ".join(map(" ".join, loops))


@pytest.mark.parametrize(
    ("module", "statement", "expected"),
    [
        ("smbwatch/smb/smb2.py", "from smbwatch.sinks.jsonl import write_jsonl", "sinks"),
        ("smbwatch/capture/tcp.py", "import smbwatch.detect.engine", "detect"),
        ("smbwatch/dcerpc/pipe.py", "from smbwatch.smb import nbss", "smb"),
    ],
)
def test_an_upward_import_is_found(
    tmp_path: Path, module: str, statement: str, expected: str
) -> None:
    """The check on a copy of the tree where one source module imports a higher layer."""
    copy = tmp_path / "src"
    for path in module_names().values():
        target = copy / path.relative_to(SOURCE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    changed = copy / module
    changed.write_text(changed.read_text() + f"\n{statement}\n")
    wrong = upward_imports(module_names(copy))
    assert len(wrong) == 1 and wrong[0].endswith(f"({expected})"), wrong
