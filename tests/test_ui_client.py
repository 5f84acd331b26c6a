"""The studio driven through gradio_client, as a script would: every event has an api_name."""

from pathlib import Path

import pytest
from gradio_client import Client

from studio.core import config
from studio.core.config import Settings


TINY = {}  # the tiny model's folder: the model these calls name, so the fast tier downloads no model


@pytest.fixture(scope="module", autouse=True)
def tiny_model(tiny_model_dir):
    TINY["path"] = str(tiny_model_dir)


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_every_tab_event_has_an_api_name(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/load_data", "/search_data", "/page_data", "/show_row", "/use_recommended_cutoff",
                "/use_recommended_split", "/use_upload", "/check_settings", "/export_preset", "/import_preset",
                "/start_training", "/stop_training", "/poll_training", "/list_runs", "/chat", "/show_export",
                "/hardware", "/export_files", "/trl_config", "/accelerate", "/push_to_hub", "/reset_to_recommended", "/estimate_time", "/load_shipped_preset",
                "/clear_chat", "/held_out_answers", "/evaluate", "/load_run", "/add_to_mix", "/remove_from_mix",
                "/show_mix", "/drift_check", "/judge", "/stop_judging", "/serve_run", "/stop_serving"}
    assert expected <= names, expected - names


def load(client, path, fmt="auto", mapping="", model=None, query="", page=1):
    keys = ("summary", "problems", "preview", "pages", "percentiles", "hist", "cdf", "cutoff", "split", "findings",
            "recommended_cutoff", "recommended_share")
    # The last two inputs: the form's cutoff and validation share, which a first load replaces by the recommendations.
    return dict(zip(keys, client.predict(dataset_path=path, dataset_format=fmt, column_mapping=mapping,
                                         model_name_or_path=model or TINY["path"], query=query, page=page, max_length=512,
                                         validation_share=0.1, api_name="/load_data")))


def test_load_demo_data_with_lengths_and_report(client):
    out = load(client, "demo")
    assert "format **messages**" in out["summary"] and "191 usable" in out["summary"]
    assert out["problems"]["data"] == [] and len(out["preview"]["data"]) == 50 and out["pages"] == "page 1 of 4"
    assert [row[0] for row in out["percentiles"]["data"]] == ["conversation", "prompt", "answer"]
    assert out["recommended_cutoff"] == 128 and "covers 99.5%" in out["cutoff"]  # the tiny model's tokenizer
    assert {row[1] for row in out["findings"]["data"]} >= {"exact duplicates", "conflicting answers", "language mix"}


def test_search_and_pages(client):
    out = load(client, "demo", query="保持好奇")
    assert out["preview"]["data"] and all("保持好奇" in row[1] for row in out["preview"]["data"])
    assert load(client, "demo", page=4)["pages"] == "page 4 of 4"


def test_show_one_row_raw_normalised_and_token_by_token(client):
    text, view = client.predict(dataset_path="demo", number=2, api_name="/show_row")
    assert "as in the file" in text and "As training sees it" in text
    assert set(view["color_map"]) == {"answer (trained)", "end of turn (trained)"}  # the legend: English only
    tokens = view["value"]
    assert "prompt (not trained)" in text and "end-of-turn" in text
    trained = "".join(piece["token"] for piece in tokens if piece["class_or_confidence"])
    prompt = "".join(piece["token"] for piece in tokens if not piece["class_or_confidence"])
    assert trained.startswith("你正在和 Lumen 对话") and trained.rstrip().endswith("<|im_end|>")
    assert "谁创造了你" in prompt and "<|im_start|>assistant" in prompt  # the question and the header: not trained
    assert {piece["class_or_confidence"] for piece in tokens} == {None, "answer (trained)", "end of turn (trained)"}


def test_load_bad_file_lists_problems(client):
    from pathlib import Path

    path = str(Path(__file__).parent / "data" / "bad" / "role_order.jsonl")
    out = load(client, path)
    assert "2 with problems" in out["summary"]
    assert [row[0] for row in out["problems"]["data"]] == ["role_order.jsonl: line 1: turn 2",
                                                           "role_order.jsonl: line 2: last turn"]


def test_column_mapping_through_the_api(client):
    from pathlib import Path

    path = str(Path(__file__).parent / "data" / "bad" / "unknown_columns.jsonl")
    out = load(client, path, mapping="query=instruction, response=output")
    assert "format **alpaca**" in out["summary"] and out["problems"]["data"] == []


def test_hardware_plan_is_shown_and_qlora_only_offered_where_it_runs(client):
    text, method, tracker = client.predict(**form_values(finetuning_type="qlora"), api_name="/hardware")
    assert "Precision" in text and "Gradient checkpointing" in text
    assert "Packing **off**" in text and "grouped by length" in text  # no flash-attention on a CPU
    # No CUDA here: QLoRA is not offered, and a preset's QLoRA choice falls back to LoRA.
    assert method["value"] == "lora" and ["qlora", "qlora"] not in method["choices"]
    from studio.core import trackers  # the trackers offered are the ones installed here (issue 56)

    assert [choice[0] for choice in tracker["choices"]] == trackers.offered()


def form_values(**changes):
    """The form by field name: the fields not named keep the form's values (the model: the tiny one)."""
    assert set(changes) <= set(config.flat_values(Settings())), "a field the form does not have"
    return {"model_name_or_path": TINY["path"], **changes}


def test_advice_reacts_to_settings(client):
    status, advice_text, estimate = client.predict(**form_values(learning_rate=0.005), api_name="/check_settings")
    assert "valid" in status.lower() and "is high for lora" in advice_text and "Effective batch: **16**" in estimate
    assert "steps per epoch" in estimate and ("Fits" in estimate or "Won't fit" in estimate)
    _, calm, _ = client.predict(**form_values(learning_rate=2e-4, max_length=128, validation_share=0.2,
                                             num_train_epochs=5.0), api_name="/check_settings")
    assert "learning_rate" not in calm and "max_length" not in calm


def test_reset_to_recommended(client):
    out = client.predict(**form_values(learning_rate=0.005, r=2, num_train_epochs=40.0),
                         api_name="/reset_to_recommended")
    names = [name for _, name, _ in config.all_fields()]
    restored = dict(zip(names, out[:-1]))
    assert restored["learning_rate"] == 2e-4 and restored["r"] == 16 and restored["num_train_epochs"] == 3.0  # plan
    assert restored["max_length"] == 128 and out[-1] == "Recommended values restored."


def test_time_estimate_runs_a_probe(client, tiny_model_dir):
    text = client.predict(**form_values(model_name_or_path=str(tiny_model_dir)), api_name="/estimate_time")
    assert text.startswith("Estimated training time:") and "optimizer steps x" in text


def test_load_a_shipped_preset(client):
    out = client.predict("quickstart-cpu.json", api_name="/load_shipped_preset")
    names = [name for _, name, _ in config.all_fields()]
    values = dict(zip(names, out[:-1]))
    assert values["num_train_epochs"] == 5.0 and values["test_share"] == 0.05 and out[-1].startswith("Preset loaded.")


def test_chat_fills_both_panes_with_latency(client, chat_run):
    assert any(choice[0] == chat_run for choice in client.predict(api_name="/list_runs")["choices"])
    base, tuned, latency, prompt = client.predict(run_dir=chat_run, prompt="Who are you?", max_new_tokens=24,
                                                  api_name="/chat")[:4]
    from studio.ui.chat_tab import message_text

    assert [m["role"] for m in base] == ["user", "assistant"] and message_text(base[-1]["content"])
    assert [m["role"] for m in tuned] == ["user", "assistant"] and message_text(tuned[-1]["content"])
    assert "**Base**" in latency and "ms/token" in latency and prompt == ""
    # a second turn keeps each pane's own history
    base2, tuned2, latency2, _ = client.predict(run_dir=chat_run, prompt="And then?", base_history=base,
                                                tuned_history=tuned, max_new_tokens=12, api_name="/chat")[:4]
    assert len(base2) == 4 and len(tuned2) == 4
    assert latency2.count("Over 2 answers") == 2  # answers of two lengths: the k, b fit per pane
    # a generation setting out of its limits is said beside the chat, by name; the panes stay as they were
    base3, tuned3, note, prompt = client.predict(run_dir=chat_run, prompt="Again?", base_history=base2,
                                                 tuned_history=tuned2, max_new_tokens=12, temperature=5.0,
                                                 api_name="/chat")[:4]
    assert "Temperature" in note and "at most 2.0" in note and len(base3) == 4 and prompt == "Again?"


def test_blind_pairs_and_votes_through_the_client(app_url, chat_run):
    """Blind: a fresh pair shown as A and B in a random order, the vote saved in the run folder (with the
    corrected answer), which model was which said only afterwards, and the tally."""
    from pathlib import Path

    from studio.data import votes

    client = Client(app_url, verbose=False)  # its own session: the pending pair is per browser session
    orders = set()
    for i in range(3):
        a_pane, b_pane, note, prompt, answer_a, answer_b = client.predict(
            run_dir=chat_run, prompt=f"Who are you? ({i})", blind=True, max_new_tokens=12, api_name="/chat")
        assert [m["role"] for m in a_pane] == ["user", "assistant"] and len(b_pane) == 2  # one fresh turn each
        assert "**A**" in note and "Base" not in note and prompt == ""
        saved, tally, box_a, box_b, cleared = client.predict(answer_a="A better answer." if i == 0 else answer_a,
                                                    answer_b=answer_b, voter="tester", run_dir=chat_run,
                                                    api_name=("/vote_a", "/vote_tie", "/vote_b")[i])
        assert saved.startswith("Saved. A was the **") and box_a == box_b == cleared == ""
        orders.add(saved)
    found = votes.read_votes(Path(chat_run) / "votes.jsonl")
    assert [v.verdict for v in found[-3:]] == ["A", "tie", "B"] and found[-3].edited == "A better answer."
    assert found[-2].edited is None and all(v.voter == "tester" for v in found[-3:])
    assert "decided votes (with this many votes the true rate is likely between" in tally
    again, *_ = client.predict(run_dir=chat_run, api_name="/vote_a")  # the pair was used up
    assert again.startswith("Nothing to vote on")


def test_held_out_answers_and_evaluation(client, chat_run):
    table, note = client.predict(run_dir=chat_run, max_new_tokens=16, api_name="/held_out_answers")
    assert table["headers"] == ["prompt", "reference", "base", "tuned"] and table["data"]
    assert "never trained on" in note
    scores, note = client.predict(chat_run, api_name="/evaluate")
    assert [row[0] for row in scores["data"]] == ["answer loss", "perplexity", "ROUGE-L", "BLEU"]
    assert "evaluation.json" in note


def test_export_tab_through_the_client(client, tiny_model_dir):
    """Adapter, merged model and GGUF with their checks, the TRL config and an accelerate config, from one run."""
    import os
    from pathlib import Path

    from studio.training import train
    from tests.conftest import tiny_settings

    run = Path(os.environ["STUDIO_RUNS"]) / "client-export"
    assert train.run_training(tiny_settings(tiny_model_dir), run, progress=None)["status"] == "finished"
    summary, commands, preset, _ = client.predict(str(run), api_name="/show_export")
    assert "client-export" in summary and "adapter, merged model, GGUF" in summary
    assert "launch.py export" in commands and '"studio_preset": 1' in preset
    text, downloads = client.predict(str(run), "", True, True, True, "F16", api_name="/export_files")
    assert "adapter:" in text and "merged:" in text and "answer (no sampling) is identical" in text, text
    # Issue 39: what was written is offered for download: the folders as archives, the GGUF with its Modelfile.
    names = sorted(Path(d).name for d in (downloads.get("value") or downloads if isinstance(downloads, dict)
                                           else downloads))
    assert names == ["adapter.zip", "client-export-F16.Modelfile", "client-export-F16.README.md",
                     "client-export-F16.gguf", "merged.zip"], names
    assert (run / "export" / "merged" / "model.safetensors").exists()
    assert (run / "export" / "client-export-F16.gguf").exists()
    yaml_text, _ = client.predict(str(run), "", api_name="/trl_config")
    assert "trl sft --config" in yaml_text and "use_peft: true" in yaml_text
    config_text, launch, _ = client.predict(str(run), 4, 1, "zero3", api_name="/accelerate")
    assert "zero_stage: 3" in config_text and "accelerate launch --config_file" in launch
    refused = client.predict(str(run), "", "not-a-repo", "", True, api_name="/push_to_hub")
    assert refused.startswith("⚠️") and "user-or-org/model-name" in refused
    nothing, _ = client.predict(str(run), "", False, False, False, "F16", api_name="/export_files")
    assert "Choose at least one" in nothing


def test_loading_a_file_hands_its_recommendations_to_the_form_once(app_url):
    """The first load of a file sets the cutoff, validation and test shares; loading it again keeps the user's
    values."""
    client = Client(app_url, verbose=False)  # a fresh browser session
    first = client.predict(dataset_path="demo", max_length=512, validation_share=0.1, test_share=0.0,
                           api_name="/load_data")
    assert first[12:15] == (128, first[11], 0.1) and first[11] > 0.1  # 191 rows: 10% kept apart as a test split
    assert "128" in first[15] and "Test share **10%** (19 rows kept apart" in first[15]
    again = client.predict(dataset_path="demo", max_length=300, validation_share=0.25, test_share=0.0,
                           api_name="/load_data")
    # the note of what the file handed over stays (the page's note then says what the user changed since)
    assert again[12:15] == (300, 0.25, 0.0) and again[15] == {"__type__": "update"}


def test_loading_a_file_hands_the_recipe_sized_to_its_rows(app_url):
    """191 identity rows (+as many replayed: identity data replays half, issue 51): batch 4 x 1, 3 epochs (over 60
    updates), lr 2e-4, about eight evaluations, early stopping; the Hyperparameters tab then shows the plan and
    marks the values the user changed as theirs."""
    from studio.ui.data_tab import HANDED_RECIPE_FIELDS

    client = Client(app_url, verbose=False)
    first = client.predict(dataset_path="demo", max_length=512, validation_share=0.1, test_share=0.0,
                           api_name="/load_data")
    handed = dict(zip(HANDED_RECIPE_FIELDS, first[16:]))
    assert handed == {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "num_train_epochs": 3.0,
                      "learning_rate": 2e-4, "eval_steps": 25, "early_stopping_patience": 3, "replay_share": 0.5}
    assert "**201** optimizer steps" in first[15]
    mine = {**handed, "validation_share": first[13], "test_share": first[14], "learning_rate": 1e-4}
    _, _, estimate = client.predict(**form_values(**mine), api_name="/check_settings")
    assert "The plan for 191 rows" in estimate
    rows = {line.split(" | ")[0].strip("| "): line for line in estimate.splitlines() if line.startswith("| ")}
    assert "**yours**" in rows["Learning rate"] and "| plan |" in rows["Epochs"]


def test_the_run_just_trained_is_offered_by_chat_and_export_once(app_url, chat_run):
    """After a run finishes in this server, opening Chat or Export selects it (and Chat loads it); after that the
    session's own choice is kept."""
    from pathlib import Path

    from studio.training.jobs import JOB

    JOB.start(Settings(), Path(chat_run), runner=lambda *a, **k: {"status": "finished", "output": chat_run + "/adapter"})
    JOB.wait(10)
    client = Client(app_url, verbose=False)
    run, note = client.predict(None, api_name="/open_chat")
    assert run["value"] == chat_run and note.startswith("Ready")
    run, *_ = client.predict(None, api_name="/open_export")
    assert run["value"] == chat_run
    other = Path(chat_run).parent / "older-run"  # another finished run the user picks by hand
    other.mkdir(exist_ok=True)
    (other / "status.json").write_text('{"status": "finished", "output": "adapter"}')
    other = str(other)
    run, _ = client.predict(other, api_name="/open_chat")
    assert run["value"] == other  # handed once; the user's own pick stays


def test_a_chinese_browser_reads_every_server_message_in_chinese(app_url):
    """The same events as above, from a client whose language is Chinese (as a zh-CN browser sends it)."""
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    out = zh.predict(dataset_path="demo", max_length=512, validation_share=0.1, api_name="/load_data")
    assert "可用 191 行" in out[0] and out[3] == "第 1 / 4 页" and "可覆盖 99.5%" in out[7]
    assert out[4]["headers"][0] == "token 长度" and out[9]["headers"][:2] == ["级别", "检查项"]
    assert {row[1] for row in out[9]["data"]} >= {"完全重复", "答案冲突", "语言构成"}
    _, advice_text, estimate = zh.predict(**form_values(learning_rate=0.005), api_name="/check_settings")
    assert "学习率" in advice_text and "偏高" in advice_text and "有效批大小" in estimate
    assert "Effective" not in estimate and "high for" not in advice_text
    text, _, _ = zh.predict(**form_values(), api_name="/hardware")
    assert "精度" in text and "Precision" not in text
    assert "不能小于" in zh.predict(**form_values(r=0), api_name="/check_settings")[0]
    assert zh.predict("quickstart-cpu.json", api_name="/load_shipped_preset")[-1].startswith("预设已加载。")


def test_export_tab_speaks_chinese_to_a_chinese_browser(app_url, chat_run):
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    summary, commands, _, _ = zh.predict(chat_run, api_name="/show_export")
    assert "已完成" in summary and "可导出：适配器" in summary
    assert "# 不用界面复现此运行" in commands and "python launch.py train --preset" in commands
    _, launch, _ = zh.predict(chat_run, 2, 1, "zero2", api_name="/accelerate")
    assert "（需要：pip install deepspeed）" in launch
    assert zh.predict(chat_run, "", False, False, False, "F16", api_name="/export_files")[0].startswith("⚠️ 请至少选择一项")


def test_tabs_share_one_contract_and_chat_takes_every_generation_field(client):
    """Adding a generation knob is one field in config.GenerationSettings: the Chat API follows it."""
    import inspect

    from studio.core.config import GenerationSettings
    from studio.ui import app

    for _, module in app.TABS:
        assert list(inspect.signature(module.build).parameters) == ["ctx"], module.__name__
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    chat_inputs = [p["parameter_name"] for p in endpoints["/chat"]["parameters"]]
    # the latency samples are a State, not API
    assert chat_inputs == ["run_dir", "system_prompt", "prompt", "base_history", "tuned_history", "blind",
                           "compare_with", *GenerationSettings.model_fields]
    held_out = [p["parameter_name"] for p in endpoints["/held_out_answers"]["parameters"]]
    assert held_out == ["run_dir", *GenerationSettings.model_fields]


def test_the_api_names_every_parameter_and_the_form_by_its_field_names(client):
    """No endpoint takes its values by position: each parameter has a name, and a form-wide event's parameters
    are the settings' field names, so a script calls check_settings(learning_rate=...)."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, endpoint in endpoints.items():
        for parameter in endpoint["parameters"]:
            assert not parameter["parameter_name"].startswith(("param_", "value_")), (name, parameter)
    fields = [name for _, name, _ in config.all_fields()]
    training = [n for n in fields if config.field_section(n) != "generation"]
    for name, expected in {"/check_settings": fields, "/reset_to_recommended": fields, "/export_preset": fields,
                           "/estimate_time": fields, "/hardware": fields, "/start_training": training,
                           "/pilot_run": training}.items():
        assert [p["parameter_name"] for p in endpoints[name]["parameters"]] == expected, name
    assert [p["parameter_name"] for p in endpoints["/load_data"]["parameters"]][:4] == [
        "dataset_path", "dataset_format", "column_mapping", "model_name_or_path"]


def test_files_join_the_mix_by_name_and_the_mix_table_counts_them(client, tmp_path_factory):
    import json

    folder = tmp_path_factory.mktemp("mix-client")
    path = folder / "general.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                    {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(40)), encoding="utf-8")
    parts, note = client.predict(extra_datasets=[], mix_path=str(path), mix_format="auto", mix_mapping="",
                                 mix_share=0.3, api_name="/add_to_mix")
    assert parts == [{"dataset_path": str(path), "dataset_format": "auto", "column_mapping": {}, "share": 0.3}]
    assert "Added" in note
    _, refused = client.predict(extra_datasets=parts, mix_path=str(path), mix_format="auto", mix_mapping="",
                                mix_share=2, api_name="/add_to_mix")
    assert "at most 1.0" in refused
    table, note, _ = client.predict(dataset_path="demo", dataset_format="auto", column_mapping="", dataset_share=None,
                                    extra_datasets=parts, validation_share=0.1, test_share=0.0, max_samples=0,
                                    model_name_or_path=TINY["path"], replay="off", api_name="/show_mix")
    rows = table.get("value", table)["data"]  # the table comes as an update: it is shown only for a mix
    assert [r[1] for r in rows] == ["identity.jsonl", "general.jsonl"] and rows[0][5] == 172
    assert abs(int(str(rows[1][5]).split()[0]) - 0.3 * (172 + int(str(rows[1][5]).split()[0]))) <= 1
    assert "training rows from 2 files" in note
    shares = [int(r[9].rstrip("%")) for r in rows]  # tokens from each file's mean length with the model's template
    assert sum(shares) in (99, 100, 101) and all(r[8] > 0 for r in rows)
    left, _ = client.predict(extra_datasets=parts, number=2, api_name="/remove_from_mix")
    assert left == []
    # Replay on: the base model's own general answers are the mix's last row, in the training split only.
    table, note, _ = client.predict(dataset_path="demo", extra_datasets=[], validation_share=0.1, test_share=0.0,
                                    model_name_or_path=TINY["path"], replay="on", replay_share=0.25,
                                    api_name="/show_mix")
    rows = table.get("value", table)["data"]
    assert [r[1] for r in rows][-1].startswith("replay") and rows[-1][5] == 57 and rows[-1][6] == 0  # 172 -> 25%
    assert "229 training rows from one file" in note
    assert note.split("\n\n")[-1] == "Replay is on (your choice).", note  # why it replays, as a sentence


def test_preflight_checks_reach_the_data_tab_in_both_languages_and_the_fill_setting_clears_them(app_url):
    path = str(Path(__file__).parent / "data" / "preflight" / "identity_placeholders.json")
    for language, words in (("en-US", ("unfilled placeholders", "{{name}}")), ("zh-CN", ("未填写的占位符", "占位符"))):
        client = Client(app_url, verbose=False, headers={"Accept-Language": language})
        out = client.predict(dataset_path=path, model_name_or_path="", api_name="/load_data")
        rows = [r for r in out[9]["data"] if r[1] == words[0]]
        assert rows and words[1] in rows[0][2] and rows[0][3].startswith("1, 2, 3"), out[9]["data"]
    filled = Client(app_url, verbose=False).predict(dataset_path=path, model_name_or_path="",
                                                    placeholder_values="name=Nova, author=Orbit Labs",
                                                    api_name="/search_data")
    levels = {r[0] for r in filled[9]["data"] if r[1] == "unfilled placeholders"}
    assert levels == {"OK", "Tip"}  # filled; the code rows' placeholders are a note


def test_the_fill_and_system_prompt_values_reach_the_summary_and_the_preview_as_trained(app_url):
    """Issue 57: after filling the placeholders and the system prompt, the page still said "85 rows still hold
    template placeholders" and previewed {{name}} "as trained"."""
    path = str(Path(__file__).parent / "data" / "preflight" / "identity_placeholders.json")
    client = Client(app_url, verbose=False)
    before = client.predict(dataset_path=path, model_name_or_path="", api_name="/load_data")
    # two warnings above the fold: the placeholders and a short answer
    assert before[0].startswith("⚠️ **2 warning(s)**") and "{{name}}" in before[2]["data"][0][1]
    assert "- **unfilled placeholders**: 7 rows still hold" in before[0]  # with its fix, above the fold
    after = client.predict(dataset_path=path, model_name_or_path="", placeholder_values="name=Nova, author=Orbit Labs",
                           system_prompt="You are Nova.", api_name="/search_data")
    assert after[0].startswith("⚠️ **1 warning(s)**") and "unfilled" not in after[0]  # a short answer is left
    shown = after[2]["data"][0][1]
    assert shown.startswith("system: You are Nova.") and "I am Nova" in shown and "{{name}}" not in shown
    assert "{{name}}" in after[2]["data"][0][2]  # the file's own row stays as it is
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    assert zh.predict(dataset_path=path, model_name_or_path="", api_name="/search_data")[0].startswith("⚠️ 训练前请先阅读")
    row = client.predict(dataset_path=path, model_name_or_path="", number=2, placeholder_values="name=Nova",
                         system_prompt="You are Nova.", api_name="/show_row")[0]
    assert '"content": "You are Nova."' in row and "I am Nova" in row


@pytest.mark.slow  # the starter model itself: downloaded where it is not cached
def test_chinese_data_on_the_english_starter_model_is_named_on_the_data_tab(app_url):
    path = str(Path(__file__).parent / "data" / "preflight" / "chinese.json")
    for language, check, word in (("en-US", "model language", "gemma3-270m"), ("zh-CN", "模型语言", "gemma3-270m")):
        client = Client(app_url, verbose=False, headers={"Accept-Language": language})
        out = client.predict(dataset_path=path, model_name_or_path="starter", api_name="/load_data")
        rows = [r for r in out[9]["data"] if r[1] == check]
        assert rows and rows[0][0] in ("Check", "请检查") and word in rows[0][2], out[9]["data"]
    from studio.ui.data_tab import multilingual_offer

    assert multilingual_offer(path, model_name_or_path="starter")["visible"]  # the fix, one click away
    assert not multilingual_offer(path, model_name_or_path="gemma3-270m")["visible"]
    assert Client(app_url, verbose=False).predict(api_name="/use_multilingual_model") == "gemma3-270m"


def test_load_preset_takes_the_ready_made_preset_picked_when_no_file_is_chosen(app_url):
    """Issue 57: picking a ready-made preset loads it; pressing Load preset after that said "choose a preset file"."""
    client = Client(app_url, verbose=False)
    out = client.predict(path=None, shipped="quickstart-cpu.json", api_name="/import_preset")
    assert "Preset loaded" in out[-1], out[-1]
    nothing = client.predict(path=None, shipped=None, api_name="/import_preset")[-1]
    assert "ready-made preset from the list" in nothing
