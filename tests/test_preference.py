"""Preference tuning: every common preference shape read as TRL's rows, and DPO and KTO runs on the tiny model
that continue an SFT run: losses and rewards logged, the adapter moved, the base weights untouched."""

import json
from pathlib import Path

import pytest
import torch

from studio import preference, train, votes
from tests.test_train import base_weights, captured_model, tiny_settings  # noqa: F401  (a fixture)

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
    from studio import export

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


def test_the_trl_sft_config_is_refused_for_a_preference_run(tiny_model_dir, sft_run, tmp_path):
    """Issue 41: an sft.yaml with no data was written for a DPO run."""
    from studio import repeat
    from studio.export import ExportError

    status, _ = preference_run(tiny_model_dir, sft_run, tmp_path / "dpo", "dpo", PREFERENCE / "pairs.jsonl")
    with pytest.raises(ExportError) as refused:
        repeat.export_trl_config(status["run_dir"], tmp_path / "trl")
    assert refused.value.args[0].key == "export.trl_sft_only" and not (tmp_path / "trl").exists()
