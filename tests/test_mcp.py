"""Issue 56: the studio driven by an agent over MCP, through the official `mcp` client package against the
studio's own server on loopback: the tools listed with their descriptions and field-named parameters, settings
checked, a data file reported, a 3-step run started, watched and finished on the tiny model, a path outside the
studio's folders refused, and under a password the MCP endpoint asks for it."""

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp package is in the test extra (gradio[mcp]); install it to run this")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamablehttp_client  # noqa: E402

from conftest import free_port, training_values  # noqa: E402

DATA = Path(__file__).parent / "data"


def call(url: str, steps, headers=None):
    """Run `steps(session)` in one MCP session and return its result."""
    async def session_run():
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await steps(session)
    return asyncio.run(session_run())


def text_of(result) -> str:
    return "\n".join(getattr(part, "text", "") for part in result.content)


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory, tiny_model_dir):
    os.environ["STUDIO_RUNS"] = str(tmp_path_factory.mktemp("mcp-runs"))
    from studio.ui.app import launch_app

    port = free_port()
    demo = launch_app(port=port, block=False, data_dirs=[tmp_path_factory.getbasetemp(), DATA],
                      model=str(tiny_model_dir), mcp=True)
    yield f"http://127.0.0.1:{port}/gradio_api/mcp/"
    demo.close()


def test_an_agent_lists_the_tools_with_their_descriptions_and_field_names(mcp_url):
    from studio.ui.mcp import TOOLS

    tools = {tool.name: tool for tool in call(mcp_url, lambda s: s.list_tools()).tools}
    assert set(tools) == set(TOOLS)  # the page's other events are not offered to an agent
    assert tools["start_training"].description.startswith("Start a training run")
    schema = tools["start_training"].inputSchema["properties"]
    assert {"learning_rate", "num_train_epochs", "dataset_path", "model_name_or_path"} <= set(schema)
    assert "update step" in schema["learning_rate"]["description"]  # the field's own help
    assert "dataset_path" in tools["load_data"].inputSchema["properties"]


def test_an_agent_checks_settings_reports_data_and_trains_a_tiny_run_end_to_end(mcp_url, tiny_model_dir):
    values = training_values(tiny_model_dir, max_steps=3, dataset_path=str(DATA / "identity_nova.jsonl"),
                             drift_check=False)

    async def steps(session):
        checked = text_of(await session.call_tool("check_settings", {**values, "learning_rate": -1}))
        loaded = text_of(await session.call_tool("load_data", {"dataset_path": str(DATA / "identity_nova.jsonl"),
                                                               "model_name_or_path": str(tiny_model_dir)}))
        outside = text_of(await session.call_tool("load_data", {"dataset_path": "/etc/passwd"}))
        started = await session.call_tool("start_training", values)
        deadline, status = time.time() + 120, ""
        while time.time() < deadline:
            status = text_of(await session.call_tool("poll_training", {}))
            if "Finished" in status or "finished" in status:
                break
            await asyncio.sleep(2)
        return checked, loaded, outside, started, status

    checked, loaded, outside, started, status = call(mcp_url, steps)
    assert "learning_rate" in checked or "Learning rate" in checked
    assert "identity_nova.jsonl" in loaded and "rows" in loaded
    assert "outside the folders this studio may read" in outside, outside[:400]
    assert not started.isError
    assert "finished" in status.lower(), status[:800]


@pytest.fixture(scope="module")
def locked_mcp_url(tmp_path_factory, tiny_model_dir):
    from studio.ui.app import launch_app

    port = free_port()
    demo = launch_app(port=port, block=False, data_dirs=[DATA], model=str(tiny_model_dir), mcp=True,
                      auth=("agent", "s3cret-pass"))
    yield f"http://127.0.0.1:{port}/gradio_api/mcp/"
    demo.close()


def test_under_a_password_the_mcp_endpoint_needs_it_and_then_works(locked_mcp_url):
    import httpx

    refused = httpx.post(locked_mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and "password" in refused.text
    key = {"Authorization": "Bearer s3cret-pass"}

    async def steps(session):
        tools = await session.list_tools()
        return tools, text_of(await session.call_tool("list_runs", {}))

    tools, runs = call(locked_mcp_url, steps, headers=key)
    assert "start_training" in {tool.name for tool in tools.tools}
    assert "Error" not in runs[:40], runs[:400]  # a queued tool's call logged in with the password
    assert json.dumps  # (the key never appears in what the tools return)
    assert "s3cret" not in runs
