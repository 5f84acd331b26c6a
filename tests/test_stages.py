"""The shape of the code: a training stage is one row of the stage table, a data source is parsed in one place,
no two modules import each other (directly or round a circle), and no tab handler hands the page a positional
tuple longer than three."""

import ast
import sys
from pathlib import Path

import pytest

from studio.core import config, stages
from studio.core.sources import DEMO, DEMO_PATH, FILE, HUB, VOTES, parse_source

STUDIO = Path(__file__).resolve().parent.parent / "studio"


def test_every_stage_is_a_choice_of_the_settings_and_reads_its_own_row():
    """The settings' stage choices, the fields that apply to a stage and the methods it allows all come from
    the table: a new row is a new choice with no other edit."""
    import typing

    assert typing.get_args(config.MethodSettings.model_fields["stage"].annotation) == stages.STAGE_NAMES
    assert {"sft", "dpo", "kto", "orpo", "grpo", "rloo"} <= set(stages.STAGE_NAMES)
    conditions = config.conditional_fields()
    assert set(conditions["beta"]["stage"]) == {n for n, s in stages.STAGES.items() if s.beta}
    assert set(conditions["adapter_name_or_path"]["stage"]) == {"dpo", "kto", "grpo", "rloo"}
    assert set(conditions["num_generations"]["stage"]) == {n for n, s in stages.STAGES.items() if s.generates}
    assert set(conditions["replay"]["stage"]) == {n for n, s in stages.STAGES.items() if s.data == stages.EXAMPLES}
    assert "grpo" not in conditions["replay_share"]["stage"] and "sft" in conditions["replay_share"]["stage"]
    for name, stage in stages.STAGES.items():
        if stage.data != stages.EXAMPLES:
            assert stage.convert is not None and stage.logs, name
        for method in ("lora", "qlora", "full", "freeze"):
            _, problems = config_problems(stage=name, finetuning_type=method)
            assert bool(problems) == (method not in stage.methods), (name, method, problems)


def config_problems(**values):
    from studio.core.settings_input import settings_from_flat

    return settings_from_flat(values)


@pytest.mark.parametrize("text, kind", [("demo", DEMO), ("votes:runs/run-1", VOTES), ("owner/dataset", HUB),
                                        ("tests/data", FILE), ("my file.jsonl", FILE)])
def test_a_dataset_box_is_parsed_in_one_place(text, kind):
    source = parse_source(text)
    assert source.kind == kind
    assert (source.path == DEMO_PATH) == (kind == DEMO)
    assert (source.run == Path("runs/run-1")) == (kind == VOTES)


def test_a_local_folder_shaped_like_a_hub_id_is_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "data.jsonl").write_text("")
    assert parse_source("owner/data.jsonl").kind == FILE and parse_source("owner/other").kind == HUB


def studio_imports() -> dict[str, set[str]]:
    """Every studio module and the studio modules it imports, at module level or inside a function."""
    modules = {".".join(p.relative_to(STUDIO.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in STUDIO.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_circles():
    """Issue 41: three circles (train <-> preference_train among them) made every change touch both sides."""
    graph, circles = studio_imports(), []
    sys.setrecursionlimit(10_000)
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def positional_returns(path: Path) -> list[str]:
    found = []
    for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, (ast.Return, ast.Yield)) and isinstance(node.value, ast.Tuple):
                starred = any(isinstance(e, ast.Starred) for e in node.value.elts)
                if len(node.value.elts) > 3 or starred:
                    found.append(f"{path.name}:{node.lineno} {function.name}")
    return found


def test_tab_handlers_return_their_outputs_by_name():
    """Issue 41: a handler returning a 12-tuple read back as shown[-2] breaks silently when an output is added."""
    assert [place for path in sorted((STUDIO / "ui").glob("*.py")) for place in positional_returns(path)] == []
