"""The floors of ../shared/STYLE.md ("Which way the imports run"), checked on the source.

Every module of the project outside tests and migrations is parsed with ``ast``; every
static import counts, wherever it sits: at the top, inside a function (a lazy import is
still a dependency), under ``if TYPE_CHECKING:``, relative or absolute, and a literal
``import_module("x")`` / ``import_string("x.Y")`` / ``__import__("x")``. The floors:

- ``voice/dsp/``: numpy and the standard library only; never Django, Channels or an app.
- ``calls/``: never ``voice`` (``voice.dsp`` is the ground floor below calls, so it may),
  ``toolhub`` or ``greenlights``.
- ``toolhub/``: never ``voice`` (again, ``voice.dsp`` may) or ``greenlights``.
- ``voice/``: never ``greenlights``.
- ``greenlights/``: anything.
- Nothing imports ``greenlights`` except ``tomsite/urls.py`` (and Celery's autodiscovery,
  which finds ``greenlights.tasks`` by name and is not an import).

How tomsite counts: it wires the apps together (settings, asgi routing, urls, the Celery
app, management commands), so it may import calls, toolhub and voice; greenlights only from
``tomsite/urls.py``. Apps may use tomsite's plumbing (``tomsite.metrics``,
``tomsite.runner``...), but tomsite must not become a way round the floors: when an app
imports a tomsite module, every app that module reaches (through other tomsite modules too)
must be one the importing app may import itself. The "tools" floor, ``bench/`` (the
benchmarks) and ``manage.py``, sits outside the product and on top of it, like tomsite:
anything but greenlights.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

APPS = ("calls", "toolhub", "voice", "greenlights", "tomsite")
DYNAMIC_IMPORTERS = {"import_module", "import_string", "__import__"}

# Floor -> floors it must never import. "third-party" is anything neither standard library,
# numpy nor one of ours (django, channels, pydantic...).
FORBIDDEN: dict[str, frozenset[str]] = {
    "dsp": frozenset({"calls", "toolhub", "voice", "greenlights", "tomsite", "third-party"}),
    "calls": frozenset({"voice", "toolhub", "greenlights"}),
    "toolhub": frozenset({"voice", "greenlights"}),
    "voice": frozenset({"greenlights"}),
    "greenlights": frozenset(),
    "tomsite": frozenset({"greenlights"}),
    "tools": frozenset({"greenlights"}),
}
# The one module allowed an import that its floor's rule would refuse.
EXEMPT = {("tomsite/urls.py", "greenlights")}

# (file, floor it imports) -> why it is tolerated for now. Each entry must name the issue
# that removes it; an entry that no longer matches a violation fails the test, so the list
# cannot outlive its reason.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    target: str  # dotted name as written, resolved if relative: "voice.models"
    line: int


@dataclass(frozen=True)
class Violation:
    where: str  # "calls/admin_policy.py:19"
    floor: str  # the floor it reached
    how: str

    def __str__(self) -> str:
        return f"{self.where}: {self.how}"


def imports_of(source: str, *, module: str, is_package: bool = False) -> list[Import]:
    """Every static import in ``source``, the module ``module`` (dotted)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}".strip(".")
            # "from voice import dsp" reaches voice.dsp, "from voice import models" voice:
            # keep the name so the floor is judged on what was really imported.
            found += [Import(base if alias.name == "*" else f"{base}.{alias.name}",
                             node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (name in DYNAMIC_IMPORTERS and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.append(Import(node.args[0].value, node.lineno))
    return found


def floor_of_target(target: str) -> str:
    top = target.split(".")[0]
    if target == "voice.dsp" or target.startswith("voice.dsp."):
        return "dsp"
    if top in APPS:
        return top
    if top in sys.stdlib_module_names:
        return "stdlib"
    if top == "numpy":
        return "numpy"
    return "third-party"


def floor_of_file(relative: str) -> str:
    if relative.startswith("voice/dsp/"):
        return "dsp"
    top = relative.split("/")[0]
    return top if top in FORBIDDEN else "tools"


def project_modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every non-test, non-migration module."""
    modules: dict[str, Path] = {}
    for top in (*APPS, "bench"):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).parts
            if "tests" in parts or "migrations" in parts or parts[-1] == "conftest.py":
                continue
            name = ".".join(parts)[:-3].removesuffix(".__init__")
            modules[name] = path
    modules["manage"] = root / "manage.py"
    return modules


def module_of(target: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``target`` (``tomsite.metrics.error_count``) lives in."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def violations(root: Path = REPO) -> list[Violation]:
    modules = project_modules(root)
    graph = {name: imports_of(path.read_text(), module=name,
                              is_package=path.name == "__init__.py")
             for name, path in modules.items()}

    def relative(name: str) -> str:
        return modules[name].relative_to(root).as_posix()

    def apps_reached_through_tomsite(start: str) -> list[tuple[str, Import]]:
        """(tomsite module, import) for each app import reachable from tomsite ``start``."""
        seen, todo, reached = {start}, [start], []
        while todo:
            current = todo.pop()
            for imp in graph[current]:
                inner = module_of(imp.target, modules)
                if inner and inner.startswith("tomsite") and inner not in seen:
                    seen.add(inner)
                    todo.append(inner)
                elif floor_of_target(imp.target) not in ("tomsite", "stdlib", "numpy",
                                                         "third-party"):
                    reached.append((current, imp))
        return reached

    found: list[Violation] = []
    for name in modules:
        path = relative(name)
        floor = floor_of_file(path)
        for imp in graph[name]:
            target_floor = floor_of_target(imp.target)
            if target_floor in FORBIDDEN[floor] and (path, target_floor) not in EXEMPT:
                found.append(Violation(f"{path}:{imp.line}", target_floor,
                                       f"{floor} imports {imp.target}"))
            if target_floor == "tomsite" and floor not in ("tomsite", "dsp"):
                tomsite_module = module_of(imp.target, modules)
                for via, inner in (apps_reached_through_tomsite(tomsite_module)
                                   if tomsite_module else []):
                    inner_floor = floor_of_target(inner.target)
                    if inner_floor in FORBIDDEN[floor]:
                        found.append(Violation(
                            f"{path}:{imp.line}", inner_floor,
                            f"{floor} imports {imp.target}, which reaches {inner.target} "
                            f"({relative(via)}:{inner.line})"))
    return found


def test_the_scanner_sees_every_kind_of_import() -> None:
    source = (
        "from __future__ import annotations\n"
        "import numpy as np, os.path\n"
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..dsp import g711\n"
        "if TYPE_CHECKING:\n"
        "    from voice.models import ModelError\n"
        "def lazy():\n"
        "    from greenlights import services\n"
        "    importlib.import_module('toolhub.registry')\n"
        "    return import_string('voice.stt.WhisperSTT')\n")
    found = imports_of(source, module="voice.session.local")
    assert [(i.target, i.line) for i in found] == [
        ("__future__.annotations", 1), ("numpy", 2), ("os.path", 2),
        ("typing.TYPE_CHECKING", 3), ("voice.session.sibling", 4), ("voice.dsp.g711", 5),
        ("voice.models.ModelError", 7), ("greenlights.services", 9),
        ("toolhub.registry", 10), ("voice.stt.WhisperSTT", 11)]
    assert [floor_of_target(i.target) for i in found] == [
        "stdlib", "numpy", "stdlib", "stdlib", "voice", "dsp", "voice", "greenlights",
        "toolhub", "voice"]
    # A package's own relative imports are anchored at the package, not its parent.
    assert imports_of("from . import g711", module="voice.dsp", is_package=True)[0].target \
        == "voice.dsp.g711"


def test_a_tree_that_breaks_each_floor_is_reported_file_by_line(tmp_path: Path) -> None:
    files = {
        "voice/dsp/pcm.py": "import numpy\nfrom django.conf import settings\n",
        "calls/admin_policy.py": "from voice import models\nfrom voice.dsp import g711\n",
        "calls/metrics.py": "from tomsite.metrics import counter\n",
        "toolhub/tools.py": "def f():\n    from voice import stt\n",
        "voice/views.py": "from greenlights.selectors import health_status\n",
        "tomsite/metrics.py": "from tomsite import wiring\n",
        "tomsite/wiring.py": "from voice.routing import urls\n",
        "tomsite/urls.py": "from greenlights import urls\n",
        "tomsite/asgi.py": "from greenlights import urls\n",
        "greenlights/views.py": "from voice import client\n",
        "calls/tests/test_x.py": "from voice import models\n",
        "calls/migrations/0001.py": "from voice import models\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "manage.py").write_text("")
    assert sorted(map(str, violations(tmp_path))) == [
        "calls/admin_policy.py:1: calls imports voice.models",
        "calls/metrics.py:1: calls imports tomsite.metrics.counter, which reaches "
        "voice.routing.urls (tomsite/wiring.py:1)",
        "tomsite/asgi.py:1: tomsite imports greenlights.urls",
        "toolhub/tools.py:2: toolhub imports voice.stt",
        "voice/dsp/pcm.py:2: dsp imports django.conf.settings",
        "voice/views.py:1: voice imports greenlights.selectors.health_status",
    ]


def test_the_project_keeps_the_import_rules_of_the_style_guide() -> None:
    floors = {floor_of_file(p.relative_to(REPO).as_posix())
              for p in project_modules().values()}
    assert floors == set(FORBIDDEN)  # the scan really covered every floor
    found = violations()
    tolerated = [v for v in found if (v.where.split(":")[0], v.floor) in ALLOWED]
    stale = set(ALLOWED) - {(v.where.split(":")[0], v.floor) for v in tolerated}
    assert [str(v) for v in found if v not in tolerated] == []
    assert stale == set(), "allow-list entries that no longer match a violation"
