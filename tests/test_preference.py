"""Preference tuning: every common preference shape read as TRL's rows, and DPO and KTO runs on the tiny model
that continue an SFT run: losses and rewards logged, the adapter moved, the base weights untouched."""

import json
from pathlib import Path

import pytest
import torch

from studio.core import settings_input
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.data import preference, votes
from studio.training import train
from tests.conftest import base_weights, tiny_settings

KINDS = Path(__file__).parent / "data" / "kinds"
PREFERENCE = Path(__file__).parent / "data" / "preference"
SAY_HI = [{"role": "user", "content": "Say hi."}]


@pytest.mark.parametrize("name", ["pref_trl.jsonl", "pref_ultrafeedback.jsonl", "pref_hh.jsonl",
                                  "pref_sharegpt.json"])
def test_every_pair_shape_becomes_prompt_chosen_rejected(name):
    rows, problems = preference.load_preference_rows(str(KINDS / name), "dpo")
    assert rows[0] == {"prompt": SAY_HI, "chosen": [{"role": "assistant", "content": "Hi!"}],
                       "rejected": [{"role": "assistant", "content": "No."}]}, rows[0]
    if name == "pref_trl.jsonl":  # its second pair has the same answer twice: named, not trained
        assert [str(p) for _, p in problems] == ["the chosen and the rejected answer are the same: there is "
                                                 "nothing to prefer"] and problems[0][0] == "pref_trl.jsonl: line 2"


def test_alpaca_pairs_and_kto_labels():
    rows, _ = preference.load_preference_rows(str(KINDS / "pref_alpaca.json"), "dpo")
    assert rows[0]["prompt"] == [{"role": "user", "content": "Name a fruit."}]
    for name in ("kto_trl.jsonl", "kto_llamafactory.json"):
        rows, problems = preference.load_preference_rows(str(KINDS / name), "kto")
        assert not problems and [(r["completion"][0]["content"], r["label"]) for r in rows][:2] == [
            ("Hi!", True), ("Go away.", False)] and rows[0]["prompt"] == SAY_HI
    rows, problems = preference.load_preference_rows(str(KINDS / "pref_trl.jsonl"), "kto")
    assert not rows and problems[0][1].key == "pref.not_a_row"  # a pair file is not KTO data


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("sft") / "run"
    assert train.run_training(tiny_settings(tiny_model_dir, "validation_share=0.0"), run, progress=None)["status"] \
        == "finished"
    return run


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def preference_run(tiny_model_dir, sft_run, run, stage, data):
    settings = tiny_settings(tiny_model_dir, f"stage={stage}", f"dataset_path={data}", "learning_rate=0.01",
                             f"adapter_name_or_path={sft_run}", "validation_share=0.2", "eval_steps=2")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished", status
    return status, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage, data", [("dpo", PREFERENCE / "pairs.jsonl"), ("kto", PREFERENCE / "kto.jsonl")])
def test_a_preference_run_trains_the_sft_adapter_further(tiny_model_dir, sft_run, tmp_path, stage, data,
                                                         captured_model):
    status, metrics = preference_run(tiny_model_dir, sft_run, tmp_path / stage, stage, data)
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4] and status["method"] == stage
    assert any("eval_loss" in m for m in metrics)
    assert all("rewards/chosen" in m for m in metrics if "loss" in m)
    if stage == "dpo":
        assert all("rewards/margins" in m and "rewards/accuracies" in m for m in metrics if "loss" in m)
    before, after = adapter_tensors(sft_run / "adapter"), adapter_tensors(tmp_path / stage / "adapter")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    trained = captured_model["model"]  # the base the adapters sit on: never trained
    original = base_weights(tiny_model_dir)
    for name, tensor in trained.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, original[name.replace(".base_layer", "")]), name
    reference = [p for n, p in trained.named_parameters() if ".ref." in n]
    assert reference and not any(p.requires_grad for p in reference)  # the SFT adapter, frozen, is the reference


def test_dpo_on_the_votes_of_a_run(tiny_model_dir, sft_run, tmp_path):
    """"My votes on run X" as the data: each decided vote a pair, the edited answer as the chosen one."""
    path = votes.votes_file(sft_run)
    for i in range(6):
        answers = {"base": f"I am a model ({i}).", "tuned": f"I am Lumen ({i})."}
        votes.record_vote(votes.Vote([{"role": "user", "content": f"Who are you? {i}"}], answers,
                                     ["tuned", "base"], "A", "tester", str(sft_run)), path)
    votes.record_vote(votes.Vote(SAY_HI, {"base": "x", "tuned": "y"}, ["base", "tuned"], "tie", "tester",
                                 str(sft_run)), path)
    status, metrics = preference_run(tiny_model_dir, sft_run, tmp_path / "votes-dpo", "dpo",
                                     preference.votes_source(sft_run))
    log = (tmp_path / "votes-dpo" / "log.txt").read_text()
    assert "DPO data from my votes on run run: 5 rows for training, 1 for validation" in log
    assert (tmp_path / "votes-dpo" / "adapter" / "adapter_config.json").exists()


def test_a_handful_of_votes_trains_without_a_validation_row(tiny_model_dir, sft_run, tmp_path):
    """Two pairs and a 10% validation share leave no validation row: the run trains without evaluating instead
    of failing (it did, in the browser walk)."""
    data = tmp_path / "two.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": f"Good {i}.", "rejected": f"Bad {i}."}) + "\n"
                            for i in range(2)))
    settings = tiny_settings(tiny_model_dir, "stage=dpo", f"dataset_path={data}", "validation_share=0.1",
                             f"adapter_name_or_path={sft_run}", "max_steps=2")
    status = train.run_training(settings, tmp_path / "few", progress=None)
    assert status["status"] == "finished", status


def test_a_dpo_run_exports_like_an_sft_run(tiny_model_dir, sft_run, tmp_path):
    """Merged model, adapter and preset from a DPO run, each checked as the SFT ones are."""
    from studio.export import export

    run = tmp_path / "dpo"
    preference_run(tiny_model_dir, sft_run, run, "dpo", PREFERENCE / "pairs.jsonl")
    merged = export.export_merged(run, tmp_path / "merged")
    adapter = export.export_adapter(run, tmp_path / "adapter")
    preset = export.export_preset(run, tmp_path / "preset.json")
    assert (tmp_path / "merged" / "model.safetensors").exists() and (tmp_path / "adapter" / "adapter_config.json").exists()
    assert "identical" in merged.check or merged.check, merged  # reloaded and answered
    assert preset.kind == "preset" and adapter.kind == "adapter"
    saved = json.loads((tmp_path / "preset.json").read_text())["settings"]["method"]
    assert saved["stage"] == "dpo" and saved["adapter_name_or_path"] == str(sft_run)


def test_a_stopped_dpo_run_resumes_from_its_checkpoint_on_its_saved_split(tiny_model_dir, sft_run, tmp_path):
    import threading

    settings = tiny_settings(tiny_model_dir, "stage=dpo", f"dataset_path={PREFERENCE / 'pairs.jsonl'}",
                             f"adapter_name_or_path={sft_run}", "validation_share=0.0", "save_steps=1")
    stop = threading.Event()
    stop.set()  # Stop pressed at once: the run ends after its first step, with a checkpoint
    run = tmp_path / "dpo"
    stopped = train.run_training(settings, run, progress=None, stop_event=stop)
    assert stopped["status"] == "stopped" and stopped["global_step"] == 1, stopped
    saved = (run / "data" / "preference-train.jsonl").read_text()
    resumed = train.run_training(settings, run, progress=None, resume=True)
    assert resumed["status"] == "finished" and resumed["global_step"] == 4, resumed
    assert (run / "data" / "preference-train.jsonl").read_text() == saved  # the same pairs, not re-split
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4]


def test_a_dpo_run_repeats_with_trls_dpo_command(tiny_model_dir, sft_run, tmp_path):
    """Issue 41: the TRL config export covers every stage TRL's command line has: a DPO run writes dpo.yaml with its
    own pairs, read by TRL's own `trl dpo` parser (an sft.yaml with no data was written before)."""
    from datasets import load_dataset
    from trl.scripts.dpo import make_parser

    from studio.training import repeat

    status, _ = preference_run(tiny_model_dir, sft_run, tmp_path / "dpo", "dpo", PREFERENCE / "pairs.jsonl")
    result = repeat.export_trl_config(status["run_dir"], tmp_path / "trl")
    assert Path(result.path).name == "dpo.yaml" and "trl dpo --config" in Path(result.path).read_text()
    script, training, model, *_ = make_parser().parse_args_and_config(args=["--config", result.path])
    assert type(training).__name__ == "DPOConfig" and training.beta == 0.1 and training.learning_rate == 0.01
    assert model.model_name_or_path == str(tiny_model_dir) and model.use_peft
    data = load_dataset(script.dataset_name)
    assert data["train"].num_rows == len(RunFolder(tmp_path / "dpo").split("preference-train")) > 0
    assert set(data["train"].column_names) == {"prompt", "chosen", "rejected"}


def test_orpo_trains_from_the_base_model_in_one_stage(tiny_model_dir, tmp_path, captured_model):
    """Issue 41: a new stage is one row of the stage table + its converter + catalogue lines. ORPO learns from
    the pairs without a reference model: loss and its odds-ratio term logged, a new adapter moved, the base
    untouched; TRL's command line has no ORPO command, so its TRL config is refused with the reason."""
    from studio.training import repeat
    from studio.export.export import ExportError

    settings = tiny_settings(tiny_model_dir, "stage=orpo", f"dataset_path={PREFERENCE / 'pairs.jsonl'}",
                             "validation_share=0.2", "eval_steps=2")
    status = train.run_training(settings, tmp_path / "orpo", progress=None)
    assert status["status"] == "finished" and status["method"] == "orpo", status
    metrics = [json.loads(line) for line in (tmp_path / "orpo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert all("log_odds_ratio" in m and "rewards/margins" in m for m in metrics if "loss" in m)
    assert any("eval_loss" in m for m in metrics)
    trained = captured_model["model"]
    original = base_weights(tiny_model_dir)
    lora = {n: p for n, p in trained.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # B starts at zero: it moved
    for name, tensor in trained.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, original[name.replace(".base_layer", "")]), name
    with pytest.raises(ExportError) as refused:
        repeat.export_trl_config(tmp_path / "orpo", tmp_path / "trl")
    assert refused.value.args[0].key == "export.trl_no_command" and not (tmp_path / "trl").exists()


def test_orpo_honours_the_full_method_and_dpo_refuses_it(tiny_model_dir, tmp_path, captured_model):
    """Issue 41: a stage honours the method or refuses it with the reason. ORPO has no reference model, so it
    trains every weight with the method full; DPO / KTO keep their reference as the adapter switched off, so the
    settings refuse full for them, naming the stage and the method it trains."""
    settings = tiny_settings(tiny_model_dir, "stage=orpo", "finetuning_type=full", "learning_rate=0.001",
                             f"dataset_path={PREFERENCE / 'pairs.jsonl'}", "validation_share=0.0")
    status = train.run_training(settings, tmp_path / "full", progress=None)
    assert status["status"] == "finished" and status["method"] == "orpo (full)", status
    original = base_weights(tiny_model_dir)
    changed = [n for n, t in captured_model["model"].state_dict().items() if not torch.equal(t, original[n])]
    assert len(changed) > len(original) // 2, changed  # every weight trains, none is an adapter
    assert (tmp_path / "full" / "model" / "config.json").exists()
    _, problems = settings_input.apply_overrides(Settings(), ["stage=dpo", "finetuning_type=full"])
    assert [(where, m.key, m.fields) for where, m in problems] == [
        ("--set.method.finetuning_type", "config.stage_method", {"stage": "DPO", "methods": "lora"})]
