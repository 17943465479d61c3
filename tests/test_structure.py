"""The package's import graph: no module imports, even inside a function, a module that
imports it back, directly or through others."""

import ast
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def module_name(path):
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """{module: set of utils modules it imports anywhere in its body}."""
    modules = {module_name(path): path for path in (REPOSITORY / "utils").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                # `from utils import runs` imports the module utils.runs; `from utils.runs import X`, utils.runs.
                targets |= {
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                }
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph):
    """Every module that lies on a cycle of `graph`, with one cycle through it."""
    found = {}
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for target in graph[node]:
                if target == start:
                    found.setdefault(start, " -> ".join(trail + [start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert set(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == {"a", "b", "c"}
    assert cycles({"a": {"b"}, "b": set()}) == {}


def test_no_module_of_utils_imports_itself_back():
    graph = import_graph()
    assert "utils.rates" in graph and "utils.run_frame" in graph["utils.rates"]
    assert cycles(graph) == {}


def test_the_code_is_in_the_formatters_format():
    # pyproject.toml's [tool.ruff]; `ruff format utils tests benchmarks` applies it.
    checked = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "utils", "tests", "benchmarks"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def private_uses(path, modules):
    """ "file:line name" of each private name of another module of the project that `path`
    imports or reaches through a module it imported."""
    tree = ast.parse(path.read_text())
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("utils", "tests", "benchmarks")
        ):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:
                    aliases[alias.asname or alias.name] = full
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_file_uses_another_modules_private_names():
    files = [
        path
        for folder in ("utils", "tests", "benchmarks")
        for path in (REPOSITORY / folder).rglob("*.py")
    ]
    modules = {module_name(path) for path in files}
    assert private_uses(Path(__file__), modules) == []
    assert [use for path in files for use in private_uses(path, modules)] == []


def test_the_module_maps_name_every_module_and_only_those():
    from utils import __doc__ as package_doc

    modules = {
        path.stem
        for path in (REPOSITORY / "utils").glob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    packages = {path.parent.name for path in (REPOSITORY / "utils").glob("*/__init__.py")}
    listed = set()
    for line in package_doc.split("Modules:")[1].split('"""')[0].splitlines():
        # "    name          what it is", or "    a, b, c" with what they are on the next line.
        if line.startswith("    ") and not line.startswith("     "):
            names = re.split(r"\s{2,}", line.strip())[0]
            listed |= {name.strip() for name in names.split(",")}
    assert (modules | packages) - listed == set(), "modules missing from utils/__init__.py's list"
    assert listed - (modules | packages) == set(), (
        "names in utils/__init__.py's list that are no module"
    )
    guide = (REPOSITORY / "utils" / "README.md").read_text().split("## Layout")[1]
    named = set(re.findall(r"`utils/([a-z_]+)\.py`", guide))
    assert modules - named == set(), "modules missing from utils/README.md's layout"
    assert named - modules == set(), "files in utils/README.md's layout that do not exist"
