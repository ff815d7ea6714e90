"""The shape of the code at one or two git refs: the call path's files, the longest modules
and the longest functions.

Reads each ref's tree with ``git ls-tree`` and ``git cat-file`` (nothing is checked out,
the working tree is not touched); ``--ref WORKTREE`` reads the files on disk instead
(tracked and untracked, not ignored), for a change not yet committed. Prints, per ref:
the call path (``voice/`` without tests and migrations) as a file tree with line counts,
the longest modules of the whole project outside tests and migrations, and the longest
functions and methods (from the AST, ``file:qualname``, decorators included).
With two refs the tree is one table with a column per ref.
Run: python bench/code_shape.py --ref 92db21d --ref HEAD
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
CALL_PATH = "voice/"
WORKTREE = "WORKTREE"
MODULE_LIMIT = 400  # lines; the house rule (../shared/STYLE.md)


@dataclass(frozen=True)
class Function:
    path: str
    qualname: str
    lines: int


@dataclass
class Shape:
    ref: str
    label: str
    modules: dict[str, int]  # path -> lines, every .py outside tests and migrations
    functions: list[Function]


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], input=data, check=True,  # noqa: S607
                          capture_output=True).stdout


def excluded(path: str) -> bool:
    """Tests and migrations: not what the 400-line rule is about."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return ("tests" in parts or "migrations" in parts or name == "conftest.py"
            or name.startswith("test_"))


def _sources(repo: Path, ref: str) -> dict[str, str]:
    """Every non-test ``.py`` file at ``ref`` (or on disk for ``WORKTREE``), path -> text."""
    if ref == WORKTREE:
        names = _git(repo, "ls-files", "-co", "--exclude-standard", "-z").decode().split("\0")
        return {n: (repo / n).read_text(encoding="utf-8", errors="replace")
                for n in names if n.endswith(".py") and not excluded(n) and (repo / n).is_file()}
    listing = _git(repo, "ls-tree", "-r", "-z", ref).decode().split("\0")
    wanted: list[tuple[str, str]] = []
    for entry in listing:
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob" and mode != "120000" and path.endswith(".py") and not excluded(path):
            wanted.append((path, sha))
    # One cat-file process for all blobs: a git show per file costs seconds on this machine.
    out = _git(repo, "cat-file", "--batch", data="".join(f"{sha}\n" for _, sha in wanted).encode())
    texts: dict[str, str] = {}
    pos = 0
    for path, _ in wanted:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1:header_end + 1 + size]
        texts[path] = body.decode("utf-8", errors="replace")
        pos = header_end + 1 + size + 1  # the body is followed by a newline
    return texts


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if not text or text.endswith("\n") else 1)


def _functions(path: str, text: str) -> list[Function]:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError:
        return []
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.append(Function(path, qualname, (child.end_lineno or first) - first + 1))
                visit(child, f"{qualname}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def shape_read(*, repo: Path, ref: str) -> Shape:
    texts = _sources(repo, ref)
    if ref == WORKTREE:
        label = f"working tree (on {_git(repo, 'rev-parse', '--short', 'HEAD').decode().strip()})"
    else:
        sha = _git(repo, "rev-parse", "--short", f"{ref}^{{commit}}").decode().strip()
        subject = _git(repo, "log", "-1", "--format=%s", sha).decode().strip()
        label = f"{ref} = {sha} ({subject[:70]}{'...' if len(subject) > 70 else ''})"
    functions = [f for path, text in texts.items() for f in _functions(path, text)]
    return Shape(ref=ref, label=label, modules={p: _line_count(t) for p, t in texts.items()},
                 functions=functions)


def _tree_rows(shapes: list[Shape]) -> list[tuple[str, list[int | None]]]:
    """The call path as indented rows (folders with their totals), a column per ref."""
    paths = sorted({p for s in shapes for p in s.modules if p.startswith(CALL_PATH)})
    folders = sorted({str(parent) + "/" for p in paths
                      for parent in PurePosixPath(p).parents if str(parent) != "."})
    rows = []
    for entry in sorted([*paths, *folders], key=lambda e: PurePosixPath(e.rstrip("/")).parts
                        if not e.endswith("/") else (*PurePosixPath(e).parts, "")):
        depth = len(PurePosixPath(entry.rstrip("/")).parts) - 1
        name = PurePosixPath(entry.rstrip("/")).name + ("/" if entry.endswith("/") else "")
        values: list[int | None] = []
        for s in shapes:
            if entry.endswith("/"):
                inside = [n for p, n in s.modules.items() if p.startswith(entry)]
                values.append(sum(inside) if inside else None)
            else:
                values.append(s.modules.get(entry))
        rows.append(("  " * depth + name, values))
    return rows


def _print_tree(shapes: list[Shape]) -> None:
    print(f"## Call path: {CALL_PATH} (Python modules, without tests and migrations), lines\n")
    rows = _tree_rows(shapes)
    width = max(len(name) for name, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{s.ref[:10]:>10}" for s in shapes))
    for name, values in rows:
        cells = "  ".join(f"{'-' if v is None else v:>10}" for v in values)
        over = [s.ref for s, v in zip(shapes, values, strict=True)
                if v is not None and v > MODULE_LIMIT and not name.endswith("/")]
        flag = f"  <- over {MODULE_LIMIT} at {', '.join(over)}" if over else ""
        print(f"{name:<{width}}  {cells}{flag}")
    for s in shapes:
        voice = {p: n for p, n in s.modules.items() if p.startswith(CALL_PATH)}
        over = sorted(p for p, n in voice.items() if n > MODULE_LIMIT)
        print(f"{s.ref}: {len(voice)} modules, {sum(voice.values())} lines, largest "
              f"{max(voice.values(), default=0)}, over {MODULE_LIMIT}: {', '.join(over) or 'none'}")
    print()


def _print_longest(shape: Shape, *, modules: int, functions: int) -> None:
    print(f"## {shape.label}\n")
    over = sorted(p for p, n in shape.modules.items() if n > MODULE_LIMIT)
    print(f"{modules} longest modules of the project (tests and migrations left out; "
          f"{len(shape.modules)} modules, over {MODULE_LIMIT} lines: {len(over)}):")
    for path, lines in sorted(shape.modules.items(), key=lambda i: (-i[1], i[0]))[:modules]:
        print(f"  {lines:>5}  {path}")
    for title, scope in (("the project", ""), ("the call path", CALL_PATH)):
        chosen = [f for f in shape.functions if f.path.startswith(scope)]
        print(f"\n{functions} longest functions and methods of {title} (lines, decorators "
              "and docstrings included):")
        for f in sorted(chosen, key=lambda f: (-f.lines, f.path, f.qualname))[:functions]:
            print(f"  {f.lines:>5}  {f.path}:{f.qualname}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", action="append", required=True,
                        help=f"a git ref (commit, branch, tag) or {WORKTREE}; give one or two")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git repository to read")
    parser.add_argument("--modules", type=int, default=10)
    parser.add_argument("--functions", type=int, default=15)
    args = parser.parse_args()
    if len(args.ref) > 2:
        parser.error("at most two refs")
    shapes = [shape_read(repo=args.repo, ref=ref) for ref in args.ref]
    for s in shapes:
        print(f"{s.ref}: {s.label}")
    print()
    _print_tree(shapes)
    for s in shapes:
        _print_longest(s, modules=args.modules, functions=args.functions)


if __name__ == "__main__":
    main()
