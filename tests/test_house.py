"""House habits the lint cannot see: no module of the package imports another module's
underscore names, none grows past 400 lines, and each says its job in at most three lines."""

from __future__ import annotations

import ast
from pathlib import Path

import buildbot_gate

PACKAGE = Path(buildbot_gate.__file__).parent
MAX_LINES = 400
MAX_DOC_LINES = 3


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = importer.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, module] if module else base)


def private_imports(source: str, importer: str, is_package: bool = False) -> list[str]:
    """``module.name`` for each underscore name ``importer`` takes from another module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(node.module, node.level, importer, is_package)
            if origin == importer:
                continue
            found += [
                f"{origin}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
        elif isinstance(node, ast.Import):
            found += [
                a.name for a in node.names if any(p.startswith("_") for p in a.name.split("."))
            ]
    return found


def test_no_module_imports_another_modules_underscore_names():
    offenders = {}
    for path in _modules():
        name = _module_name(path)
        found = private_imports(path.read_text(), name, path.name == "__init__.py")
        if found:
            offenders[name] = found
    assert offenders == {}


def test_no_module_is_over_400_lines():
    sizes = {_module_name(p): len(p.read_text().splitlines()) for p in _modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_every_module_says_its_job_in_at_most_three_lines():
    docs = {_module_name(p): ast.get_docstring(ast.parse(p.read_text())) for p in _modules()}
    missing = sorted(name for name, doc in docs.items() if not doc)
    long = sorted(n for n, d in docs.items() if d and len(d.splitlines()) > MAX_DOC_LINES)
    assert (missing, long) == ([], [])


def test_the_checks_see_what_they_forbid():
    # The scans above only prove something if they can fail: feed them what they forbid.
    source = "from buildbot_gate.testing.processes import _stop\nfrom .net import _why\n"
    assert private_imports(source, "buildbot_gate.testing.masters") == [
        "buildbot_gate.testing.processes._stop",
        "buildbot_gate.testing.net._why",
    ]
    assert private_imports("from . import __doc__ as DOC\n", "pkg.sub.__main__") == []
    assert private_imports("from .sub import _x\n", "pkg", is_package=True) == ["pkg.sub._x"]
    assert _modules(), "found no modules to check"
