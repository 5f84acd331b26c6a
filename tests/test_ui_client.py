"""The studio driven through gradio_client, as a script would: every event has an api_name."""

import json
import time

import pytest
from gradio_client import Client

from studio import config
from studio.config import Settings


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_every_tab_event_has_an_api_name(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {"/load_data", "/use_upload", "/check_settings", "/export_preset", "/import_preset",
                "/start_training", "/stop_training", "/poll_training", "/list_runs", "/chat", "/show_export",
                "/hardware"}
    assert expected <= names, expected - names


def test_load_demo_data(client):
    summary, problems, preview = client.predict("demo", "auto", api_name="/load_data")
    assert "format **messages**" in summary and "191 usable" in summary
    assert problems["data"] == [] and len(preview["data"]) == 50


def test_load_bad_file_lists_problems(client):
    from pathlib import Path

    path = str(Path(__file__).parent / "data" / "bad" / "role_order.jsonl")
    summary, problems, _ = client.predict(path, "auto", api_name="/load_data")
    assert "2 with problems" in summary
    assert [row[0] for row in problems["data"]] == ["role_order.jsonl: line 1: turn 2",
                                                    "role_order.jsonl: line 2: last turn"]


def test_hardware_plan_is_shown(client):
    text = client.predict("auto", "auto", api_name="/hardware")
    assert "Precision" in text and "Gradient checkpointing" in text


def test_training_through_the_api(client, tiny_model_dir):
    """Start a tiny run with the form's values, poll until it ends, and see its loss."""
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/start_training"]
    values = config.flat_values(Settings())
    values.update(model_name_or_path=str(tiny_model_dir), max_steps=3, eval_steps=1, logging_steps=1)
    # Parameters follow the form's order; their names come from labels, so match by position instead.
    names = [name for section, name, _ in config.all_fields() if section != "generation"]
    assert len(endpoint["parameters"]) == len(names)
    message = client.predict(*[values[n] for n in names], api_name="/start_training")
    assert message.startswith("Started")
    second = client.predict(*[values[n] for n in names], api_name="/start_training")
    assert "already in progress" in second
    deadline = time.time() + 240
    while time.time() < deadline:
        status, plot, log = client.predict(api_name="/poll_training")
        if "**finished**" in status or "**failed**" in status:
            break
        time.sleep(1)
    assert "**finished**" in status, status
    assert "step 3 / 3" in status and "validation" in json.dumps(plot)
