"""Issue 54, first part: repairs with one click from the quality report. Each repair's counts on a real-shaped
messy file, the user's file untouched, a version listed and reloaded clean, a run that records the version and
its hash, and the repair through gradio_client in both languages."""

import json
from pathlib import Path

from conftest import tiny_settings
from studio.core.runs import RunFolder
from studio.data import versions
from studio.plan import data_report, repairs

MESSY = Path(__file__).parent / "data" / "messy.jsonl"


def report_of(path):
    return data_report.build_report(str(path), model=None)


def test_each_repair_acts_on_the_rows_its_check_found(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    report = report_of(MESSY)
    assert repairs.counts(report) == {"duplicates": 3, "conflicts": 1, "too_long": 0, "unreadable": 1}
    before = MESSY.read_bytes()
    version, result = repairs.make_version(str(MESSY), report, ["duplicates", "conflicts", "placeholders"],
                                           {"name": "Nova", "author": "Orbit Labs"})
    assert MESSY.read_bytes() == before  # the user's file is never written
    assert result.changes == {"duplicates": 3, "conflicts": 1, "placeholders": 1, "unreadable": 1}
    assert [number for number, _ in result.dropped] == [2, 3, 5, 6]  # the Lyon answer lost to the Paris ones
    assert version.number == 1 and Path(version.path).parent.parent == versions.versions_root()
    again = report_of(version.path)
    assert len(again.load.rows) == 4 and not again.load.problems
    warned = {f.check.key for f in again.findings if f.level == "warning"}
    assert not warned & {"check.exact_duplicates", "check.near_duplicates", "check.conflicting"}
    assert "I am Nova, made by Orbit Labs." in json.dumps([r.messages for r in again.load.rows])
    listed = versions.list_versions(str(MESSY))
    assert [v.number for v in listed] == [1] and listed[0].sha256 == versions.file_sha256(version.path)
    second, _ = repairs.make_version(version.path, again, ["duplicates"])  # a version of a version
    assert second.number == 2 and second.source == str(MESSY) and second.parent == version.path


def test_the_user_picks_the_answer_a_conflicting_group_keeps():
    report = report_of(MESSY)
    group_key, found = next(iter(repairs.conflict_groups(report.load.rows).items()))
    lyon = next(n for n, a in found if "Lyon" in a)
    result = repairs.repair(report.load.rows, report.findings, ["conflicts"], picks={group_key: lyon})
    kept = [r.number for r in result.rows]
    assert lyon in kept and 4 not in kept and 6 not in kept


def test_a_run_on_a_version_records_it_and_its_hash(tiny_model_dir, tmp_path, monkeypatch):
    from studio.export.model_card import model_card
    from studio.training import train

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    version, _ = repairs.make_version(str(MESSY), report_of(MESSY), ["duplicates", "conflicts"])
    run = tmp_path / "run"
    status = train.run_training(tiny_settings(tiny_model_dir, f"dataset_path={version.path}", "drift_check=false",
                                              "validation_share=0", "replay=off"), run, progress=None)
    assert status["status"] == "finished", status
    recorded = RunFolder(run).plan()["data_version"]
    assert recorded["sha256"] == version.sha256 and recorded["number"] == 1 and recorded["source"] == str(MESSY)
    assert version.sha256[:16] in model_card(run, "merged")


def test_the_repair_through_the_client_in_both_languages(app_url):
    from gradio_client import Client

    for language, made in (("en-US", "Made **messy.jsonl v"), ("zh-CN", "已生成 **messy.jsonl v")):
        client = Client(app_url, verbose=False, headers={"Accept-Language": language})
        client.predict(dataset_path=str(MESSY), api_name="/load_data")
        chosen, listed, _ = client.predict(dataset_path=str(MESSY), api_name="/repair_offer")
        assert {"duplicates", "conflicts"} <= set(chosen["value"])
        path, note, dropped = client.predict(dataset_path=str(MESSY), repairs_chosen=["duplicates", "conflicts"],
                                             api_name="/repair_data")
        assert note.startswith(made) and path.endswith(".jsonl") and len(dropped["data"]) == 4
        assert Path(path).exists() and versions.version_of(path) is not None
