import json
from pathlib import Path

import pytest

from studio.core import config, presets, settings_input, trl_args
from studio.core.config import Settings
from studio.core.text import render

PRESETS = sorted((Path(__file__).resolve().parent.parent / "presets").glob("*.json"))
CPU_PLAN = {"device": "cpu", "precision": "fp32", "gradient_checkpointing": False}


def test_preset_round_trip(tmp_path):
    settings, problems = settings_input.apply_overrides(Settings(), ["learning_rate=5e-5", "r=8", "finetuning_type=full",
                                                             "dataset_path=x.jsonl", "temperature=0.5"])
    assert not problems
    path = presets.save_preset(settings, tmp_path / "p.json", description="d", hardware="h")
    loaded, header, problems = presets.load_preset(path)
    assert not problems and loaded == settings
    assert header["description"] == "d" and header["studio_preset"] == 1


def test_bad_preset_lists_every_problem_with_its_path(tmp_path):
    bad = {"studio_preset": 1, "settings": {
        "training": {"learning_rate": "1e-4", "num_train_epochs": -1, "warmup_ratio": 0.1},
        "method": {"finetuning_type": "dora", "r": 0},
        "extra_section": {}}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    settings, _, problems = presets.load_preset(path)
    assert settings is None
    where = {w for w, _ in problems}
    assert where == {"settings.training.learning_rate", "settings.training.num_train_epochs",
                     "settings.training.warmup_ratio", "settings.method.finetuning_type", "settings.method.r",
                     "settings.extra_section"}
    assert any("unknown setting" in m for w, m in problems if w.endswith("warmup_ratio"))


def test_preset_header_is_strict(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"studio_preset": 2, "settings": {}, "notes": "x"}))
    _, _, problems = presets.load_preset(path)
    assert {w for w, _ in problems} == {"studio_preset", "notes"}
    path.write_text("{not json")
    assert "not valid JSON" in presets.load_preset(path)[2][0][1]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_shipped_presets_are_valid_and_documented(path):
    settings, header, problems = presets.load_preset(path)
    assert not problems, problems
    assert header["description"] and header["hardware"]
    assert path.name in (path.parent / "README.md").read_text(encoding="utf-8")


def test_shipped_presets_exist():
    names = {p.name for p in PRESETS}
    assert {"quickstart-cpu.json", "lora-7b-24gb.json", "qlora-7b-12gb.json", "full-1b.json"} <= names


def test_overrides_report_all_problems_and_accept_section_paths():
    settings, problems = settings_input.apply_overrides(Settings(), ["nope=1", "r=0", "learning_rate"])
    assert settings is None and {w for w, _ in problems} == {"nope", "learning_rate", "--set.method.r"}  # all at once
    settings, problems = settings_input.apply_overrides(Settings(), ["method.r=0"])
    assert problems == [("--set.method.r", "must be at least 1")]
    assert render(problems[0][1], "zh") == "不能小于 1"  # the same problem, in the reader's language
    settings, _ = settings_input.apply_overrides(Settings(), ["training.num_train_epochs=2", "packing=true"])
    assert settings.training.num_train_epochs == 2.0 and settings.training.packing == "on"  # a bool reads as on/off
    settings, _ = settings_input.apply_overrides(Settings(), ["packing=off"])
    assert settings.training.packing == "off"


def test_every_field_has_help_label_and_chinese_text():
    for section, name, info in config.all_fields():
        extra = info.json_schema_extra
        assert info.description and extra["label"], name
        assert config.field_text(name, "label", "zh") != extra["label"] or extra["label"].isascii(), name
        assert config.field_text(name, "help", "zh") != info.description, name  # translated, not the fallback
    names = [name for _, name, _ in config.all_fields()]
    assert len(names) == len(set(names)), "field names must be unique across sections"


def test_sft_config_from_settings_follows_the_plan():
    from trl import SFTConfig

    args = trl_args.to_sft_config(Settings(), CPU_PLAN, "/tmp/out")
    assert isinstance(args, SFTConfig)
    assert args.bf16 is False and args.fp16 is False and args.gradient_checkpointing is False and args.use_cpu
    assert args.learning_rate == 2e-4 and args.max_length == 512 and args.train_sampling_strategy == "group_by_length"
    assert args.assistant_only_loss is False  # the studio masks answers itself (works without template markers)
    bf16 = trl_args.sft_config_kwargs(Settings(), {**CPU_PLAN, "device": "cuda", "precision": "bf16",
                                                 "gradient_checkpointing": True})
    assert bf16["bf16"] and not bf16["fp16"] and bf16["gradient_checkpointing"] and not bf16["use_cpu"]


def test_every_training_field_reaches_sft_config():
    from trl import SFTConfig

    kwargs = trl_args.sft_config_kwargs(Settings(), CPU_PLAN)
    fields = set(SFTConfig.__dataclass_fields__)
    assert set(kwargs) <= fields, set(kwargs) - fields


def test_lora_config_from_settings():
    settings, _ = settings_input.apply_overrides(Settings(), ["target_modules=q_proj, v_proj", "r=8", "lora_alpha=16"])
    lora = trl_args.to_lora_config(settings)
    assert lora.r == 8 and lora.lora_alpha == 16 and set(lora.target_modules) == {"q_proj", "v_proj"}
    full, _ = settings_input.apply_overrides(Settings(), ["finetuning_type=full"])
    assert trl_args.to_lora_config(full) is None


def test_effective_batch_size():
    settings, _ = settings_input.apply_overrides(Settings(), ["per_device_train_batch_size=3", "gradient_accumulation_steps=5"])
    assert settings.effective_batch_size() == 15 and settings.effective_batch_size(devices=2) == 30


def test_settings_from_flat_round_trip_and_problems():
    flat = config.flat_values(Settings())
    flat["r"] = 8.0  # number inputs hand back floats
    settings, problems = settings_input.settings_from_flat(flat)
    assert not problems and settings.method.r == 8
    _, problems = settings_input.settings_from_flat({"r": 0, "learning_rate": -1.0, "bogus": 1})
    assert [(w, m.split(" (")[0]) for w, m in problems] == [("bogus", "unknown setting")]
    _, problems = settings_input.settings_from_flat({"r": 0, "learning_rate": -1.0})
    assert {w for w, _ in problems} == {"r", "learning_rate"}


def test_config_imports_no_torch():
    import subprocess
    import sys

    code = "import studio.core.config, studio.data.data, studio.templates.chat_template, studio.models.hardware, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"


def test_presets_refuse_infinity_and_unbounded_integers_before_any_model_loads(tmp_path):
    preset = presets.preset_dict(Settings())
    preset["settings"]["training"].update(seed=2**70, max_steps=10**12, warmup_steps=float("inf"),
                                          max_grad_norm=float("nan"), save_total_limit=10**9)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preset))  # json writes Infinity / NaN, as a hand-edited preset may
    _, _, problems = presets.load_preset(path)
    assert {w.split(".")[-1] for w, _ in problems} == {"seed", "max_steps", "warmup_steps", "max_grad_norm",
                                                       "save_total_limit"}
    assert render(dict(problems)["settings.training.warmup_steps"], "zh") == "必须是有限的数字"


def test_an_optional_trl_knob_is_one_field_end_to_end():
    """`neftune_noise_alpha: float | None` (TRL's own type): an empty form box means None, a number passes to
    SFTConfig under its own name, and a bad one is refused by name; no line in trl_args.py."""
    from trl import SFTConfig

    from studio.ui.forms import component_for

    info = config.TrainingSettings.model_fields["neftune_noise_alpha"]
    box = component_for("neftune_noise_alpha", info, None)
    assert type(box).__name__ == "Number" and box.value is None
    off, problems = settings_input.settings_from_flat({"neftune_noise_alpha": None})
    assert not problems and off.training.neftune_noise_alpha is None
    on, _ = settings_input.settings_from_flat({"neftune_noise_alpha": 5})
    assert trl_args.sft_config_kwargs(on, CPU_PLAN)["neftune_noise_alpha"] == 5.0
    assert trl_args.to_sft_config(on, CPU_PLAN, "/tmp/out").neftune_noise_alpha == 5.0
    assert isinstance(trl_args.to_sft_config(off, CPU_PLAN, "/tmp/out"), SFTConfig)
    _, problems = settings_input.settings_from_flat({"neftune_noise_alpha": -1.0})
    assert problems == [("neftune_noise_alpha", "must be greater than 0.0")]
    assert settings_input.apply_overrides(Settings(), ["neftune_noise_alpha=null"])[0].training.neftune_noise_alpha is None


def test_studio_only_fields_are_marked_on_the_field():
    marked = {n for _, n, i in config.all_fields() if i.json_schema_extra.get("studio_only")}
    assert trl_args.STUDIO_ONLY == marked >= {"precision", "packing", "assistant_only_loss"}
    kwargs = trl_args.sft_config_kwargs(Settings(), CPU_PLAN)
    assert kwargs["packing"] is False and "precision" not in kwargs and "early_stopping_patience" not in kwargs


def test_the_format_choices_are_the_converters():
    """A new data format is a converter in data.py and its name in the field's choices: this keeps them one list."""
    import typing

    from studio.data import data

    from studio.data.readers import TEXT_LAYOUTS

    choices = typing.get_args(config.DataSettings.model_fields["dataset_format"].annotation)
    assert choices == ("auto", *data.CONVERTERS, "text", *(f"text_{layout}" for layout in TEXT_LAYOUTS))


def test_the_column_mapping_is_parsed_once_into_the_settings():
    settings, _ = settings_input.apply_overrides(Settings(), ["column_mapping=query=instruction, response=output"])
    assert settings.data.column_mapping == {"query": "instruction", "response": "output"}
    assert presets.preset_dict(settings)["settings"]["data"]["column_mapping"] == settings.data.column_mapping
    old, _, problems = presets.parse_preset({"studio_preset": 1, "settings": {"data": {"column_mapping": "a=b"}}})
    assert not problems and old.data.column_mapping == {"a": "b"}  # presets that kept the text still load
    _, problems = settings_input.settings_from_flat({"column_mapping": "query"})
    assert problems == [("column_mapping", "'query' should look like their_name=our_name")]
    assert settings_input.form_value(settings.data.column_mapping) == "query=instruction, response=output"


def test_an_untouched_empty_number_box_reads_as_none():
    """Gradio's page sends 0 for a number box left empty from the start (seen in Chromium): for a knob whose
    limits exclude 0 that can only mean empty."""
    settings, problems = settings_input.settings_from_flat({"neftune_noise_alpha": 0})
    assert not problems and settings.training.neftune_noise_alpha is None


@pytest.mark.parametrize("method", ["full", "freeze", "qlora"])
def test_a_preference_stage_with_another_method_is_refused_not_trained_as_lora(method):
    """Issue 41: DPO / KTO with method full, freeze or QLoRA trained plain LoRA without a word."""
    settings, problems = settings_input.settings_from_flat({"stage": "dpo", "finetuning_type": method})
    assert settings is None and [w for w, _ in problems] == ["finetuning_type"]
    assert "lora" in render(problems[0][1], "zh")
    assert settings_input.settings_from_flat({"stage": "kto", "finetuning_type": "lora"})[1] == []
