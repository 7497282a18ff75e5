"""The house rules of the layout (README, "Layout"), read from the code itself: programs are
steps/<stage>.py and import no program; the library lives in steps/<idea>/ and imports no
program; a package imports only what steps.MAY_IMPORT allows it (the layers, a DAG), and
its docstring says the same; imports sit at the top of a file unless a comment says why;
benchmarks live outside `steps`; a module of more than MAX_LINES lines, and a function in
steps/ of more than MAX_FUNCTION_LINES, says at its top why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from steps import MAY_IMPORT, WITHOUT_K2

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 400
LONG_NOTE = "Length:"  # the docstring line that says why a module is longer than MAX_LINES
MAX_FUNCTION_LINES = 60


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


def says_why_it_is_long(function: ast.AST, lines: list[str]) -> bool:
    """Its docstring, or the first comment in its body, starts with LONG_NOTE."""
    doc = ast.get_docstring(function) or ""
    if doc.startswith(LONG_NOTE):
        return True
    body = lines[function.lineno:function.end_lineno]  # after the `def` line
    comments = [line.strip() for line in body if line.strip().startswith("#")]
    return bool(comments) and comments[0].lstrip("# ").startswith(LONG_NOTE)


def test_long_functions_say_why():
    unexplained = []
    for path in sorted((REPO / "steps").rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
                    and not says_why_it_is_long(node, lines)):
                unexplained.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} "
                                   f"({node.end_lineno - node.lineno + 1} lines)")
    assert not unexplained, (f"functions over {MAX_FUNCTION_LINES} lines without a '{LONG_NOTE}' "
                             "docstring or first comment:\n" + "\n".join(unexplained))


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


# ---------------------------------------------------------------- the packages' layers


def library_packages() -> list[str]:
    return sorted(p.name for p in (REPO / "steps").iterdir() if (p / "__init__.py").exists())


def module_file(name: str) -> Path | None:
    """steps/a/b.py (or steps/a/__init__.py) for the dotted name, if it is a module."""
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for everything the file imports: at the top, inside functions, and
    a literal module name of `steps` given to importlib or kept for it (a table of names).
    `from a.b import c` is a.b.c when that is a module of steps, else a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's own package up
                parts = path.relative_to(REPO).parts[:-node.level]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if module_file(sub) else base))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and re.fullmatch(r"steps(\.\w+)+", node.value) and module_file(node.value)):
            found.append((node.lineno, node.value))
    return found


def allowed(package: str, module: str) -> bool:
    """Whether steps/<package>/ may import `module` (a dotted name of steps)."""
    target = module.split(".")[1:]
    if not target or target[0] == package:
        return True
    for rule in MAY_IMPORT[package]:
        parts = rule.split(".")
        if rule == "*" and target[0] != "toy" or target[:len(parts)] == parts:
            return True
    return False


def test_the_layers_cover_every_package_and_form_a_dag():
    assert sorted(MAY_IMPORT) == library_packages()
    names = set(MAY_IMPORT)
    edges = {p: names - {p} if rules == ("*",) else {r.split(".")[0] for r in rules}
             for p, rules in MAY_IMPORT.items()}
    for package, targets in edges.items():
        assert targets <= names - {package, "toy"}, f"{package}: unknown or forbidden {targets}"
        for rule in MAY_IMPORT[package]:
            assert rule == "*" or module_file(f"steps.{rule}"), f"{package}: no module steps.{rule}"
    done: set[str] = set()
    while len(done) < len(names):  # peel off the packages whose dependencies are all placed
        ready = {p for p in names - done if edges[p] <= done}
        assert ready, f"the layers have a cycle among {sorted(names - done)}"
        done |= ready
    assert WITHOUT_K2 and set(WITHOUT_K2) <= names


def test_every_package_imports_only_what_its_layer_allows():
    offenders = []
    for package in library_packages():
        for path in sorted((REPO / "steps" / package).glob("*.py")):
            for line, module in all_imports(path):
                if module.startswith("steps.") and not allowed(package, module):
                    offenders.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not offenders, ("imports that steps.MAY_IMPORT does not allow (move the code to "
                           "the package it belongs to):\n" + "\n".join(offenders))


def test_programs_and_the_rest_of_the_library_leave_the_toys_to_tests():
    users = [f"{path.relative_to(REPO)}:{line}" for path in sorted((REPO / "steps").rglob("*.py"))
             if path.parent.name != "toy"
             for line, module in all_imports(path) if module.split(".")[:2] == ["steps", "toy"]]
    assert not users, "steps.toy is for tests and benchmarks:\n" + "\n".join(users)


def test_packages_without_k2_reach_no_k2():
    reached: dict[Path, set[str]] = {}  # file -> third-party top-level names it reaches

    def reach(path: Path) -> set[str]:
        if path not in reached:
            reached[path] = set()  # a module met again while its imports are followed
            names = set()
            for _, module in all_imports(path):
                if not module.startswith("steps"):
                    names.add(module.split(".")[0])
                    continue
                parts = module.split(".")
                for i in range(2, len(parts) + 1):  # a module's packages run first
                    found = module_file(".".join(parts[:i]))
                    if found:
                        names |= reach(found)
            reached[path] = names
        return reached[path]

    offenders = [str(path.relative_to(REPO)) for package in WITHOUT_K2
                 for path in sorted((REPO / "steps" / package).glob("*.py")) if "k2" in reach(path)]
    assert not offenders, "modules that need k2 where there is none:\n" + "\n".join(offenders)


def may_import_paragraph(package: str) -> str:
    doc = ast.get_docstring(ast.parse((REPO / "steps" / package / "__init__.py").read_text())) or ""
    start = doc.find("May import")
    return doc[start:].split("\n\n")[0] if start >= 0 else ""


def test_every_package_docstring_names_its_layer():
    differ = []
    for package in library_packages():
        text = may_import_paragraph(package)
        named = set(re.findall(r"\bsteps\.(\w+(?:\.\w+)?)", text))
        rules = set(MAY_IMPORT[package])
        if rules == {"*"}:
            agrees = "any library module" in text and not named
        else:
            agrees = bool(text) and named == rules
        if not agrees:
            differ.append(f"steps/{package}/__init__.py: 'May import' names {sorted(named)}, "
                          f"steps.MAY_IMPORT {sorted(rules)}")
        if ("never k2" in text.lower()) != (package in WITHOUT_K2):
            differ.append(f"steps/{package}/__init__.py: says 'never k2' only if in steps.WITHOUT_K2")
    assert not differ, "\n".join(differ)
