"""The sans-IO core of notifications: signing, the retry schedule, the delivery state machine,
events and the settings."""

from __future__ import annotations

import datetime
import pathlib
import re
import time
from typing import Any

import pytest

from mcp_server._notify import (
    SECRET_FILE,
    NotifyConfig,
    NotifyConfigError,
    NotifyUrlRefused,
    Result,
    RetryPolicy,
    Target,
    after_attempt,
    change_key,
    check_notify_url,
    event_for,
    new_entry,
    notify_config,
    signed_headers,
    verify,
)
from mcp_server._tasks import RunReport, TaskOptions, UsageLimit
from mcp_server._tasks._model import finish_run, limited, new_task, start_run

DOCS = pathlib.Path(__file__).parents[3] / "docs" / "notifications.md"
T0 = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
BODY = b'{"id":"e1","type":"task.completed"}'


class _Headers(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def _signed(secret: str, timestamp: int, body: bytes = BODY) -> _Headers:
    headers = signed_headers(secret, "task.completed", "e1", timestamp, body)
    return _Headers({k.lower(): v for k, v in headers.items()})


def test_a_signature_verifies_and_a_tampered_body_stale_time_or_other_secret_do_not() -> None:
    """HMAC over "<timestamp>.<body>": body, timestamp and secret are all covered."""
    now = int(time.time())
    assert verify("s", _signed("s", now), BODY, now)
    assert not verify("s", _signed("s", now), BODY + b" ", now)
    assert not verify("other", _signed("s", now), BODY, now)
    assert not verify("s", _signed("s", now - 301), BODY, now)  # a replay, too old
    forged = _signed("s", now - 301)
    forged["x-coding-agent-timestamp"] = str(now)  # a fresh stamp on an old signature
    assert not verify("s", forged, BODY, now)


def test_the_docs_verification_snippet_accepts_the_servers_signatures() -> None:
    """The function docs/notifications.md gives receivers verifies what the server signs."""
    (snippet,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 (the docs' own code, the point of the test)
    now = int(time.time())
    assert namespace["verify"]("s", _signed("s", now), BODY)
    assert not namespace["verify"]("s", _signed("s", now), BODY + b"x")
    assert not namespace["verify"]("s", _signed("s", now - 600), BODY)


def test_retry_delays_double_from_one_second_up_to_the_cap_with_bounded_jitter() -> None:
    """1, 2, 4, 8 … s, capped; jitter stretches each by at most 25 %."""
    policy = RetryPolicy(cap_s=30)
    assert [policy.delay(n, 0.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(3, 0.999) == pytest.approx(4 * 1.24975)
    assert policy.delay(10_000, 0.5) == 30 * 1.125


def _entry(*urls: str) -> Any:
    task = new_task(
        title="t",
        instructions="i",
        agent="claude",
        project_dir="",
        cwd="/",
        options=TaskOptions(),
        now=T0,
    )
    done = finish_run(start_run(task, T0), RunReport("success", T0, T0), T0)
    key = change_key(done)
    assert key is not None
    return new_entry(event_for(done, key, T0), tuple(Target(u) for u in urls))


def test_a_delivery_settles_on_2xx_retries_on_5xx_and_dies_after_max_attempts() -> None:
    """5xx: next attempt after the backoff; the last attempt makes a dead letter."""
    policy = RetryPolicy(max_attempts=3)
    entry = _entry("http://a/", "http://b/")
    entry = after_attempt(entry, "http://a/", Result(500), now=T0, policy=policy, rand=0.0)
    a = entry.delivery("http://a/")
    assert (a.state, a.attempts, a.next_at, a.last_error) == (
        "pending",
        1,
        T0 + datetime.timedelta(seconds=1),
        "HTTP 500",
    )
    entry = after_attempt(entry, "http://b/", Result(204), now=T0, policy=policy, rand=0.0)
    assert entry.delivery("http://b/").state == "delivered"
    assert not entry.settled
    for _ in range(2):
        entry = after_attempt(
            entry, "http://a/", Result(error="ConnectError"), now=T0, policy=policy, rand=0.0
        )
    a = entry.delivery("http://a/")
    assert (a.state, a.attempts) == ("dead", 3)
    assert a.last_error == "gave up after 3 attempts: ConnectError"
    assert entry.settled
    assert entry.dead


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (410, "gone"),
        (400, "dead"),
        (404, "dead"),
        (429, "pending"),
        (408, "pending"),
        (503, "pending"),
    ],
)
def test_gone_and_refusals_settle_at_once_while_throttling_retries(status: int, state: str) -> None:
    """410 is gone, other 4xx a dead letter at once; 408/429/5xx retry."""
    entry = after_attempt(
        _entry("http://a/"), "http://a/", Result(status), now=T0, policy=RetryPolicy(), rand=0.0
    )
    assert entry.delivery("http://a/").state == state


def test_a_delivery_older_than_max_age_is_a_dead_letter() -> None:
    """No more attempts once the next would come after the maximum age."""
    policy = RetryPolicy(max_age_s=60)
    later = T0 + datetime.timedelta(seconds=59.5)
    entry = after_attempt(
        _entry("http://a/"), "http://a/", Result(502), now=later, policy=policy, rand=0.0
    )
    assert entry.delivery("http://a/").state == "dead"


def test_an_event_id_is_the_same_for_the_same_change_and_new_for_the_next() -> None:
    """Derived from the task and its change (not the time): a restart re-derives the same id."""
    task = new_task(
        title="t",
        instructions="i",
        agent="claude",
        project_dir="",
        cwd="/",
        options=TaskOptions(),
        now=T0,
    )
    waiting = finish_run(start_run(task, T0), RunReport("success", T0, T0), T0)
    again = finish_run(start_run(waiting, T0, "more"), RunReport("success", T0, T0), T0)
    first_key, next_key = change_key(waiting), change_key(again)
    assert first_key is not None
    assert next_key is not None
    later = T0 + datetime.timedelta(hours=1)
    assert event_for(waiting, first_key, T0).id == event_for(waiting, first_key, later).id
    assert event_for(again, next_key, T0).id != event_for(waiting, first_key, T0).id
    event = event_for(waiting, first_key, T0, "https://h.example:3000/")
    assert event.type == "task.waiting"
    assert event.links == {
        "task": f"task://{task.id}",
        "dashboard": f"https://h.example:3000/tasks/{task.id}",
    }


def test_a_usage_limit_is_announced_with_its_reset_time() -> None:
    """``limited`` (S1's status, S2's transition) is an event naming when the task resumes."""
    task = new_task(
        title="t",
        instructions="i",
        agent="claude",
        project_dir="",
        cwd="/",
        options=TaskOptions(),
        now=T0,
    )
    resets = T0 + datetime.timedelta(hours=2)
    held = limited(
        start_run(task, T0),
        UsageLimit(agent="claude", resets_at=resets, hit_at=T0),
        RunReport("limited", T0, T0),
        T0,
    )
    key = change_key(held)
    assert key == "limited#1"
    event = event_for(held, key, T0)
    assert (event.type, event.outcome) == ("task.limited", "limited")
    assert event.summary.endswith("after the reset at 2026-12-06 14:00 UTC.")


def test_targets_come_from_env_and_flags_with_formats_and_a_generated_secret(
    tmp_path: pathlib.Path,
) -> None:
    """WEBHOOK_URLS + --webhook-url, ntfy+ prefixes; the secret is made once, 0600."""
    environ = {"WEBHOOK_URLS": "https://a.example/h, ntfy+https://ntfy.sh/topic,"}
    config = notify_config(environ, tmp_path, urls=["http://127.0.0.1:9/x"])
    assert [(t.url, t.format) for t in config.targets] == [
        ("https://a.example/h", "json"),
        ("https://ntfy.sh/topic", "ntfy"),
        ("http://127.0.0.1:9/x", "json"),
    ]
    assert [t.redacted() for t in config.targets] == [
        "https://a.example/…",
        "ntfy+https://ntfy.sh/…",
        "http://127.0.0.1:9/…",
    ]
    secret_file = tmp_path / SECRET_FILE
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert notify_config({}, tmp_path).secret == config.secret == secret_file.read_text().strip()
    assert notify_config({"WEBHOOK_SECRET": "given"}, tmp_path).secret == "given"
    assert "topic" not in repr(config.targets[1].redacted())
    assert config.secret not in repr(config)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WEBHOOK_FORMAT": "xml"}, "WEBHOOK_FORMAT: expected json or ntfy, got 'xml'"),
        ({"WEBHOOK_URLS": "ftp://x/y"}, "WEBHOOK_URLS: expected an http(s) URL with a host"),
        ({"WEBHOOK_URLS": "http://h:99999/"}, "WEBHOOK_URLS: Port out of range"),
        ({"WEBHOOK_MAX_ATTEMPTS": "2.5"}, "WEBHOOK_MAX_ATTEMPTS: expected a whole number"),
        ({"WEBHOOK_TIMEOUT_S": "-1"}, "WEBHOOK_TIMEOUT_S: expected a positive number"),
        ({"WEBHOOK_SECRET_FILE": "/nonexistent/s"}, "WEBHOOK_SECRET_FILE: cannot read"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(
    tmp_path: pathlib.Path, environ: dict[str, str], message: str
) -> None:
    """Each refusal says which variable, what was expected and what came."""
    with pytest.raises(NotifyConfigError) as caught:
        notify_config(environ, tmp_path)
    assert message in str(caught.value)


def test_notify_url_needs_an_allowed_host_and_https_off_loopback() -> None:
    """The allowlist admits its hosts only; http only to loopback."""
    config = NotifyConfig(allowed_hosts=frozenset({"hooks.example.org", "127.0.0.1"}))
    assert (
        check_notify_url("https://HOOKS.example.org/x", config).url == "https://HOOKS.example.org/x"
    )
    assert check_notify_url("http://127.0.0.1:8/x", config).format == "json"
    assert check_notify_url("ntfy+https://hooks.example.org/t", config).format == "ntfy"
    for url in ("http://hooks.example.org/x", "https://evil.example/x", "https://[::1]/x"):
        with pytest.raises(NotifyUrlRefused):
            check_notify_url(url, config)
    with pytest.raises(NotifyUrlRefused, match="none configured"):
        check_notify_url("https://hooks.example.org/x", NotifyConfig())
