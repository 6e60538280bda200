"""``wait_task`` with a progress token reports each new event while it waits (both eras).

A real ``coding-agent up`` runs the task stand-in with ``steps DIR N``: it writes ``step i``
once the test creates ``DIR/i`` and ends once it creates ``DIR/done``, so the test paces the
events by what it has already heard.
"""

from __future__ import annotations

import pathlib

import pytest
import trio
from _support.agent_up import base_env, coding_agent_up, sdk_client
from _support.task_server import install_agent

STEPS = 2


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_wait_task_reports_each_event(tmp_path: pathlib.Path, mode: str) -> None:
    """Progress comes on each new event (message: status and summary), its value increasing."""
    root, steps = tmp_path / "root", tmp_path / "steps"
    root.mkdir()
    steps.mkdir()
    env = base_env(CLAUDE_PATH=install_agent(tmp_path / "bin"))
    heard: list[tuple[float, str | None]] = []
    send, receive = trio.open_memory_channel[tuple[float, str | None]](100)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, message))
        send.send_nowait((progress, message))

    async with coding_agent_up(tmp_path / "state", root, env) as up, sdk_client(up, mode) as client:
        created = await client.call_tool(
            "create_task", {"title": "steps", "instructions": f"steps {steps} {STEPS}"}
        )
        assert created.structured_content is not None, created
        task_id = created.structured_content["result"]["task_id"]
        answer: dict[str, object] = {}

        async def wait() -> None:
            result = await client.call_tool(
                "wait_task", {"id": task_id, "timeout_s": 50}, progress_callback=on_progress
            )
            assert result.structured_content is not None, result
            answer.update(result.structured_content["result"])

        with trio.fail_after(45):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                await receive.receive()  # the task as it is when the wait begins
                for step in range(1, STEPS + 1):
                    (steps / str(step)).touch()
                    while True:
                        _, message = await receive.receive()
                        if message == f"in_progress: text: step {step}":
                            break
                (steps / "done").touch()
    assert answer["status"] == "waiting"
    values = [progress for progress, _ in heard]
    assert values == sorted(set(values)), heard
