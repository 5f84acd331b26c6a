"""The house by concern (issue 53): studio/ is cut into packages, each importing only the packages on a lower
floor, as studio/__init__.py lists them; modules stay short; a stage is named only by its row."""

import ast
import re
from pathlib import Path

import studio
from studio.core import stages

STUDIO = Path(studio.__file__).resolve().parent
MAX_LINES = 450
LONG_ALLOWED = {"core/config.py"}  # the settings declaration: every field with its text, one place


def floors() -> dict[str, int]:
    """{package: floor} from the package docstring: the one place the layering is written."""
    return {name: int(floor) for name, floor in re.findall(r"^\s+(\w+) \[(\d+)\]", studio.__doc__, re.M)}


def package_of(path: Path) -> str:
    return path.relative_to(STUDIO).parts[0]


def studio_imports(path: Path) -> set[str]:
    """The studio packages a module imports, at module level or inside a function."""
    found = set()
    own = path.relative_to(STUDIO.parent).with_suffix("").parts
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(own[:len(own) - node.level]) + (node.module.split(".") if node.module else [])
            else:
                parts = (node.module or "").split(".")
            if parts[0] == "studio":
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("studio.") and "." in a.name}
    return found


def modules():
    return [p for p in STUDIO.rglob("*.py") if p.parent != STUDIO]


def test_every_package_is_on_a_floor_and_says_what_lives_there():
    packages = {p.name for p in STUDIO.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(floors()), (packages, floors())
    for name in packages:
        assert len(ast.get_docstring(ast.parse((STUDIO / name / "__init__.py").read_text())) or "") > 80, name
    assert max(floors().values()) <= 8


def test_a_package_imports_only_packages_below_it():
    floor = floors()
    upward = [(str(p.relative_to(STUDIO)), target) for p in modules() for target in studio_imports(p)
              if target != package_of(p) and target in floor and floor[target] >= floor[package_of(p)]]
    assert upward == []


def test_the_import_check_sees_an_upward_import(tmp_path):
    """The check above can fail: a module of `core` that imports `training`, however deep, is caught."""
    fake = STUDIO / "core" / "_probe_upward.py"
    fake.write_text("def f():\n    from studio.training import train\n    from ..ui import app\n")
    try:
        assert studio_imports(fake) == {"training", "ui"}
    finally:
        fake.unlink()


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {str(p.relative_to(STUDIO)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(STUDIO)) not in LONG_ALLOWED}
    assert long == {}


def test_a_stage_is_named_only_by_its_row():
    """Every difference between stages is read from its row (settings.stage): no code compares a stage's name.
    The settings declaration's help text and the catalogues describe the stages in words."""
    names = "|".join(stages.STAGE_NAMES)
    quoted = re.compile(rf"""["']({names})["']""")
    found = [f"{p.relative_to(STUDIO)}:{i}" for p in modules() if str(p.relative_to(STUDIO)) != "core/stages.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if quoted.search(line.split("#")[0])
             and not (str(p.relative_to(STUDIO)) == "core/config.py" and re.match(r"\s*(help=)?\"", line))]
    assert found == []


def test_a_tab_is_built_by_short_functions():
    """Issue 53: a tab's build is its layout and named wirings, each readable at a glance (data_tab.build was 131
    lines, chat_tab.build 96, train_tab.build 90)."""
    long = []
    for path in sorted((STUDIO / "ui").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and re.match(r"build|layout|wire", node.name):
                if (size := node.end_lineno - node.lineno + 1) > 60:
                    long.append(f"{path.name}:{node.name} {size} lines")
    assert not long, long
