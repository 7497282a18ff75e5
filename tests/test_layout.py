"""The house rules of the layout (README, "Layout"), read from the code itself: programs are
steps/<stage>.py and import no program; the library lives in steps/<idea>/ and imports no
program; imports sit at the top of a file unless a comment says why; benchmarks live outside `steps`; a module
of more than MAX_LINES lines says at its top why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 400
LONG_NOTE = "Length:"  # the docstring line that says why a module is longer than MAX_LINES


def python_files() -> list[Path]:
    roots = [REPO / "steps", REPO / "local", REPO / "utils", REPO / "egs"]
    return sorted(p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def programs() -> set[str]:
    """steps.X for every steps/X.py that runs as a program."""
    return {f"steps.{p.stem}" for p in (REPO / "steps").glob("*.py")
            if p.stem != "__init__" and "__main__" in p.read_text()}


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module == "steps":  # from steps import X: X is a module
            return [f"steps.{a.name}" for a in node.names]
        return [node.module]
    return []


def test_every_program_is_a_top_level_module_of_steps():
    found = programs()
    assert {"steps.train_am", "steps.decode", "steps.align"} <= found
    for package in (REPO / "steps").iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            for module in package.glob("*.py"):
                assert "if __name__ ==" not in module.read_text(), \
                    f"{module.relative_to(REPO)} runs as a program; programs are steps/<stage>.py"


def test_no_program_or_library_module_imports_a_program():
    progs = programs()
    offenders = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            for module in imported_modules(node):
                if module in progs:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {module}")
    assert not offenders, "a program is imported (move what is shared into steps/<idea>/):\n" + \
        "\n".join(offenders)


def test_imports_sit_at_the_top_unless_a_comment_says_why():
    hidden = []
    for path in python_files():
        source = path.read_text()
        lines = source.splitlines()
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                text = "\n".join(lines[node.lineno - 1:node.end_lineno])
                if "#" not in text:
                    hidden.append(f"{path.relative_to(REPO)}:{node.lineno} {text.strip()}")
    assert not hidden, "imports inside functions without a reason:\n" + "\n".join(hidden)


def test_benchmarks_live_outside_the_steps_package():
    assert not list((REPO / "steps").rglob("bench_*.py"))
    assert len(list((REPO / "utils" / "bench").glob("bench_*.py"))) >= 7


def test_long_modules_say_why():
    unexplained = []
    for path in python_files():
        source = path.read_text()
        num_lines = source.count("\n")
        if num_lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        if not any(line.startswith(LONG_NOTE) for line in doc.splitlines()):
            unexplained.append(f"{path.relative_to(REPO)} ({num_lines} lines)")
    assert not unexplained, (f"modules over {MAX_LINES} lines without a '{LONG_NOTE}' line in "
                             "their docstring:\n" + "\n".join(unexplained))


def test_every_library_package_says_what_it_holds_and_may_import():
    for package in sorted((REPO / "steps").iterdir()):
        init = package / "__init__.py"
        if package.is_dir() and init.exists():
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert "May import" in doc, f"{init.relative_to(REPO)}: say what it may import"
            for module in package.glob("*.py"):
                listed = re.compile(rf"^\s*-\s*{module.stem}(\.py)?\b", re.M)
                if module.stem != "__init__":
                    assert listed.search(doc), f"{init.relative_to(REPO)} does not list {module.name}"
