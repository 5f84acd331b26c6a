"""What the Train tab says about a run: pure functions of the job's snapshot, as messages in any language."""

from studio.core import config
from studio.core.text import Msg, render
from studio.training.run_status import perplexity, seconds_left, status_messages


def snapshot(status="running", metrics=(), **extra):
    return {"status": status, "run_dir": "/runs/r1", "metrics": list(metrics), **extra}


STEP = {"step": 5, "max_steps": 10, "epoch": 0.5, "loss": 1.25, "tokens_per_s": 300.0, "elapsed_s": 50.0}


def test_time_left_and_perplexity():
    assert seconds_left(5, 10, 50.0) == 50.0 and seconds_left(0, 10, 3.0) == 0.0
    assert perplexity(0.0) == 1.0 and perplexity(1e9) == perplexity(50)  # capped, never an overflow


def test_idle_and_a_running_run():
    assert [m.key for m in status_messages(snapshot("idle"))] == ["status.idle"]
    parts = status_messages(snapshot(metrics=[{"step": 0, "eval_loss": 2.0}, STEP]))
    assert [m.key for m in parts] == ["status.head", "status.baseline", "status.progress"]
    assert "about 50 s left" in parts[2] and "perplexity 7.4" in parts[1]
    assert "约剩 50 秒" in render(parts[2], "zh") and render(parts[0], "zh").startswith("**训练中**")


def test_a_finished_run_says_where_it_saved_and_what_comes_next():
    done = snapshot("finished", [STEP, {"step": 10, "eval_loss": 1.1}], output="/runs/r1/adapter", wall_time_s=12)
    parts = status_messages(done)
    assert [m.key for m in parts][-2:] == ["status.done", "status.next"] and "left" not in parts[1]
    assert "validation loss 1.1000" in parts[2]


def test_overfitting_is_warned_with_this_runs_remedies():
    rising = [{"step": s, "eval_loss": v} for s, v in ((0, 2.0), (2, 1.0), (4, 1.2), (6, 1.4), (8, 1.6))]
    train = [{**STEP, "step": 2, "loss": 1.0}, {**STEP, "step": 8, "loss": 0.6}]
    parts = status_messages(snapshot(metrics=rising + train), config.Settings())
    warning = next(m for m in parts if m.key == "status.warning")
    assert warning.fields["text"].key == "warn.with_remedies"
    assert not any(m.key == "status.warning" for m in status_messages(snapshot(metrics=train), config.Settings()))


def test_a_failure_shows_the_studios_explanation_and_what_to_try():
    failed = snapshot("failed", [STEP], error="RuntimeError: x", advice_key="error.memory",
                      error_message=Msg("log.all_too_long", cutoff=64).to_json())
    error = next(m for m in status_messages(failed) if m.key == "status.error")
    assert error.fields["error"].key == "log.all_too_long" and error.fields["advice"].key == "error.memory"
    raw = next(m for m in status_messages(snapshot("failed", [], error="ValueError: odd")) if m.key == "status.error")
    assert raw.fields["error"].key == "reason.other"  # Python's English text goes to the log, never the page


def test_a_growing_margin_with_falling_validation_accuracy_is_warned():
    metrics = [{"step": 0, "eval_rewards/accuracies": 0.5}, {"step": 2, "rewards/margins": 0.1},
               {"step": 2, "eval_rewards/accuracies": 0.8}, {"step": 4, "rewards/margins": 0.5},
               {"step": 4, "eval_rewards/accuracies": 0.7}, {"step": 6, "rewards/margins": 1.5},
               {"step": 6, "eval_rewards/accuracies": 0.6}]
    parts = status_messages(snapshot(metrics=metrics + [STEP]))
    warning = next(m for m in parts if m.key == "status.warning").fields["text"]
    assert warning.key == "warn.preference_overfit" and "best 80% at step 2" in warning
    steady = metrics[:-1] + [{"step": 6, "eval_rewards/accuracies": 0.9}]
    assert not any(m.key == "status.warning" for m in status_messages(snapshot(metrics=steady + [STEP])))


def test_the_preference_plot_rows_name_every_series():
    from studio.training import history

    rows = history.preference_rows([{"step": 1, "rewards/margins": 0.2, "rewards/accuracies": 1.0, "loss": 0.6}])
    assert rows == [{"step": 1, "value": 0.2, "series": "margin"}, {"step": 1, "value": 1.0, "series": "accuracy"}]


def test_before_the_first_step_the_status_says_what_the_run_is_doing():
    """Issue 39: 76 s passed before "step 0/4" with nothing saying what happened meanwhile."""
    from studio.training.run_status import status_messages
    from studio.core.text import Msg, render

    events = [{"time": "10:00:00", "text": "x", **Msg("log.data", format="messages", train=10, validation=2,
                                                       test=0).to_json()},
              {"time": "10:00:05", "text": "y", **Msg("log.phase_drift").to_json()}]
    parts = status_messages({"status": "running", "run_dir": "runs/r", "metrics": [], "log": events})
    assert parts[-1].key == "status.preparing" and parts[-1].fields["now"].key == "log.phase_drift"
    assert render(parts[-1], "zh").startswith("第一步之前：正在检查通用能力")
    started = status_messages({"status": "running", "run_dir": "runs/r", "log": events, "metrics": [
        {"step": 1, "max_steps": 4, "epoch": 0.1, "loss": 2.0, "tokens_per_s": 10.0, "elapsed_s": 3.0}]})
    assert all(p.key != "status.preparing" for p in started if isinstance(p, Msg))
