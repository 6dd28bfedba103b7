"""The package modules each DVC stage runs: the import closure of its `ijules` command.

A stage's command is one `ijules` subcommand; the function behind it imports its stage module
(and the CLI module imports the configuration). Everything those import, directly or not, is
code that can change the stage's outputs, so dvc.yaml must list it among the stage's deps, or
a change there leaves the outputs stale while `dvc repro` says all is up to date. Parent
packages count too: Python runs their __init__ on the way.

    python scripts/stage_deps.py           # print each stage's code deps, and what dvc.yaml lacks
    python scripts/stage_deps.py --write   # rewrite the ijules/ entries of dvc.yaml's deps

tests/unit/test_stage_deps.py holds dvc.yaml to it. A package folder stands for its modules
when the stage needs all of them.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ijules"
CLI = ROOT / PACKAGE / "cli.py"
DVC_YAML = ROOT / "dvc.yaml"


def _imported_modules(nodes: Iterable[ast.stmt], known: set[str]) -> set[str]:
    """The ijules modules the import statements among ``nodes`` (recursively) name."""
    found: set[str] = set()
    for node in nodes:
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                if inner.module.split(".")[0] != PACKAGE:
                    continue
                found.add(inner.module)
                for alias in inner.names:  # `from ijules.training import pyfunc`
                    if f"{inner.module}.{alias.name}" in known:
                        found.add(f"{inner.module}.{alias.name}")
            elif isinstance(inner, ast.Import):
                found.update(a.name for a in inner.names if a.name.split(".")[0] == PACKAGE)
    return found


def _command_name(function: ast.FunctionDef) -> str | None:
    """The typer command a function defines (its ``name=`` or its dashed name), if any."""
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if isinstance(target, ast.Attribute) and target.attr == "command":
            for keyword in call.keywords if call else []:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return function.name.replace("_", "-")
    return None


def command_entries(known: set[str], cli: Path = CLI) -> dict[str, set[str]]:
    """Each CLI command's entry modules: what the CLI module imports at its top level, and what
    the command's function imports. (The CLI module itself is a dep too, but its other
    commands' imports are not: see :func:`required_deps`.)"""
    tree = ast.parse(cli.read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    base = _imported_modules(top_level, known)
    entries = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (name := _command_name(node)):
            entries[name] = base | _imported_modules(node.body, known)
    return entries


def module_file(module: str, root: Path = ROOT) -> Path:
    """The source file of a module of the package (relative to ``root``)."""
    path = Path(*module.split("."))
    package = root / path / "__init__.py"
    return package.relative_to(root) if package.is_file() else path.with_suffix(".py")


def closure(graph: Any, entries: set[str]) -> set[str]:
    """``entries``, everything they import directly or indirectly, and every parent package."""
    modules = set(entries)
    for module in entries:
        modules |= set(graph.find_upstream_modules(module))
    for module in list(modules):
        parts = module.split(".")
        modules.update(".".join(parts[:k]) for k in range(1, len(parts)))
    return modules


def collapse(files: set[Path], root: Path = ROOT) -> list[str]:
    """The files, with a package folder in place of its files when all of them are needed."""
    kept = set(files)
    folders = sorted({f.parent for f in files}, key=lambda p: len(p.parts), reverse=True)
    for folder in folders:
        if folder == Path(PACKAGE):
            continue
        sources = {p.relative_to(root) for p in (root / folder).rglob("*.py")}
        if sources and sources <= kept | {Path(str(f)) for f in kept}:
            kept -= sources
            kept = {f for f in kept if folder not in f.parents}
            kept.add(folder)
    return sorted(str(p) for p in kept)


def stage_commands(dvc_yaml: Path = DVC_YAML) -> dict[str, str]:
    """Each stage of dvc.yaml (a foreach stage once) and its ijules command."""
    from ruamel.yaml import YAML

    stages = YAML(typ="safe").load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    commands = {}
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"].split()
        if cmd[0] != PACKAGE:
            raise ValueError(f"{dvc_yaml}: stage {name} does not run an ijules command")
        commands[name] = cmd[1]
    return commands


def required_deps(root: Path = ROOT) -> dict[str, list[str]]:
    """For each stage of dvc.yaml, the package code it runs, as dvc.yaml deps entries."""
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    known = set(graph.modules)
    entries = command_entries(known, root / PACKAGE / "cli.py")
    required = {}
    for stage, command in stage_commands(root / "dvc.yaml").items():
        if command not in entries:
            raise ValueError(f"dvc.yaml: stage {stage} runs unknown command 'ijules {command}'")
        modules = closure(graph, entries[command]) | {f"{PACKAGE}.cli"}
        files = {module_file(m, root) for m in modules}
        required[stage] = collapse(files, root)
    return required


def declared_deps(dvc_yaml: Path = DVC_YAML) -> dict[str, list[str]]:
    """Each stage's deps as dvc.yaml writes them (unresolved)."""
    from ruamel.yaml import YAML

    stages = YAML(typ="safe").load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {name: list((s.get("do") or s).get("deps", [])) for name, s in stages.items()}


def uncovered(required: list[str], declared: list[str]) -> list[str]:
    """The required entries that no declared dep (the same path or a folder above) covers."""
    declared_paths = [Path(d) for d in declared]

    def covered(entry: str) -> bool:
        path = Path(entry)
        return any(path == d or d in path.parents for d in declared_paths)

    return [entry for entry in required if not covered(entry)]


def write(required: dict[str, list[str]], dvc_yaml: Path = DVC_YAML) -> None:
    """Replace each stage's ijules/ deps by ``required``, keeping every other entry and line."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a line
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(dvc_yaml.read_text(encoding="utf-8"))
    for name, stage in document["stages"].items():
        body = stage.get("do") or stage
        deps = body["deps"]
        first = next((k for k, d in enumerate(deps) if str(d).startswith(f"{PACKAGE}/")), None)
        others = [d for d in deps if not str(d).startswith(f"{PACKAGE}/")]
        at = len(others) if first is None else first
        deps.clear()
        deps.extend([*others[:at], *required[name], *others[at:]])
    with dvc_yaml.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args()
    required = required_deps()
    if args.write:
        write(required)
    declared = declared_deps()
    missing = {s: uncovered(r, declared[s]) for s, r in required.items()}
    for stage, entries in required.items():
        print(
            f"{stage}: {len(entries)} code deps"
            + (f"; missing {missing[stage]}" * bool(missing[stage]))
        )
    return 1 if any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
