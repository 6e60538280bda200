"""A small MCP client over Streamable HTTP for the task CLI (httpx on trio).

It speaks as any client would: ``initialize`` (protocol 2025-11-25, the session era, so the
server's GET stream can carry resource notifications), ``notifications/initialized``, then
``tools/call`` and ``resources/read``; each answer may come as JSON or as an SSE stream. The
server's bearer auth and Origin rules apply (no Origin header is sent: this is not a browser).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import httpx
import orjson
import trio

PROTOCOL_VERSION = "2025-11-25"
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 90.0
"""Above ``wait_task``'s longest wait (50 s): a long poll is not a dead server."""
CLOSE_TIMEOUT_S = 2.0

JSON = dict[str, Any]


class ConsoleError(Exception):
    """A failure the CLI reports in one line and exits with ``exit_code``; ``code`` names it
    in ``--json`` output."""

    exit_code = 1
    code = "error"


class Unreachable(ConsoleError):
    """The server cannot be reached, or the connection broke."""

    exit_code = 3
    code = "unreachable"


class Refused(ConsoleError):
    """The server refused the request: the token (``status`` 401), the Host or the Origin."""

    exit_code = 3
    code = "refused"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProtocolFailure(ConsoleError):
    """The server answered something an MCP server should not."""

    code = "protocol_error"


class RpcError(ConsoleError):
    """A JSON-RPC error answer (``code``, ``message``, ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.rpc_code = code
        self.data = data

    @property
    def resource_not_found(self) -> bool:
        """-32602 with ``data.uri`` (2025-11-25 and later), or the older -32002."""
        if self.rpc_code == RESOURCE_NOT_FOUND:
            return True
        return (
            self.rpc_code == INVALID_PARAMS and isinstance(self.data, dict) and "uri" in self.data
        )


class ToolFailed(ConsoleError):
    """A tool answered ``isError``: ``code`` (``busy``, ``task_not_found``, …) and why."""

    def __init__(self, code: str, message: str, answer: JSON) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.answer = answer


def _refusal(response: httpx.Response, url: str) -> ConsoleError | None:
    status = response.status_code
    if status == 401:
        return Refused(
            f"the server at {url} refused the bearer token (HTTP 401); pass --token, set "
            "MCP_AUTH_TOKEN, or print the server's with `coding-agent token`",
            status,
        )
    if status in (403, 421):
        return Refused(
            f"the server at {url} refused the request (HTTP {status}): {_why(response)}", status
        )
    return None


def _why(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
        return str(body["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _sse_messages(text: str) -> list[JSON]:
    """The JSON-RPC messages of a complete SSE body (priming events carry none)."""
    messages: list[JSON] = []
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            payload = "\n".join(data).strip()
            message = orjson.loads(payload) if payload else None  # priming events are empty
            if isinstance(message, dict):
                messages.append(message)
            data = []
    return messages


class McpSession:
    """One initialized MCP session; open it with :func:`open_session`."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.headers: dict[str, str] = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        self._next_id = 0

    async def initialize(self, params: JSON) -> JSON:
        """The handshake: ``initialize``, the session's headers, ``notifications/initialized``."""
        result, response = await self._exchange("initialize", params)
        session_id = response.headers.get("mcp-session-id")
        if session_id:
            self.headers["mcp-session-id"] = session_id
        self.headers["mcp-protocol-version"] = str(result.get("protocolVersion", PROTOCOL_VERSION))
        await self.notify("notifications/initialized")
        return result

    async def request(self, method: str, params: JSON) -> JSON:
        """Send a request and return its ``result`` (raises :class:`RpcError` for an error)."""
        result, _ = await self._exchange(method, params)
        return result

    async def _exchange(self, method: str, params: JSON) -> tuple[JSON, httpx.Response]:
        self._next_id += 1
        request_id = self._next_id
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        response = await self._post(message)
        if response.status_code != 200:
            raise ProtocolFailure(
                f"{method}: the server answered HTTP {response.status_code}: {_why(response)}"
            )
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        try:
            if kind == "text/event-stream":
                answers = _sse_messages(response.text)
            else:
                answers = [orjson.loads(response.content)]
        except orjson.JSONDecodeError as exc:
            raise ProtocolFailure(f"{method}: the answer is not JSON ({exc})") from None
        for answer in answers:
            if isinstance(answer, dict) and answer.get("id") == request_id:
                return self._result(method, answer), response
        raise ProtocolFailure(
            f"{method}: the server's answer holds no reply to request {request_id}"
        )

    async def notify(self, method: str) -> None:
        """Send a notification (the server answers 202)."""
        response = await self._post({"jsonrpc": "2.0", "method": method})
        if response.status_code not in (200, 202):
            raise ProtocolFailure(f"{method}: the server answered HTTP {response.status_code}")

    async def call_tool(self, name: str, arguments: JSON) -> JSON:
        """A tool's structured answer ``{status, message, result}``; :class:`ToolFailed` when
        it answers with an error."""
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        answer = result.get("structuredContent")
        if not isinstance(answer, dict):
            raise ProtocolFailure(f"tools/call {name}: the answer has no structuredContent")
        if result.get("isError") or answer.get("status") == "error":
            code = str((answer.get("error") or {}).get("code", "error"))
            raise ToolFailed(code, str(answer.get("message", "")), answer)
        return answer

    async def read_json(self, uri: str) -> JSON:
        """A JSON resource's value."""
        result = await self.request("resources/read", {"uri": uri})
        try:
            text = result["contents"][0]["text"]
            value = orjson.loads(text)
        except (KeyError, IndexError, TypeError, orjson.JSONDecodeError):
            raise ProtocolFailure(f"resources/read {uri}: expected JSON text contents") from None
        if not isinstance(value, dict):
            raise ProtocolFailure(f"resources/read {uri}: expected a JSON object")
        return value

    async def listen(self, send: trio.MemorySendChannel[JSON]) -> None:
        """Send the server's messages on the session's GET stream to ``send`` until it ends or
        the caller cancels; a stream that cannot open or breaks just closes ``send``."""
        headers = {key: value for key, value in self.headers.items() if key != "content-type"}
        headers["accept"] = "text/event-stream"
        with send, contextlib.suppress(httpx.HTTPError, orjson.JSONDecodeError):
            timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=None)
            async with self.http.stream("GET", self.url, headers=headers, timeout=timeout) as got:
                if got.status_code != 200:
                    return
                buffer = ""
                text = cast("AsyncGenerator[str, None]", got.aiter_text())
                async with contextlib.aclosing(text) as chunks:
                    async for chunk in chunks:
                        buffer += chunk
                        *events, buffer = buffer.replace("\r\n", "\n").split("\n\n")
                        for event in events:
                            for message in _sse_messages(event):
                                await send.send(message)

    async def close(self) -> None:
        """End the session on the server (DELETE); failures do not matter any more."""
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(self.url, headers=self.headers, timeout=CLOSE_TIMEOUT_S)

    def _result(self, method: str, answer: JSON) -> JSON:
        error = answer.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            raise RpcError(code if type(code) is int else 0, str(message), error.get("data"))
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ProtocolFailure(f"{method}: the reply has no result object")
        return result

    async def _post(self, message: JSON) -> httpx.Response:
        try:
            response = await self.http.post(
                self.url, content=orjson.dumps(message), headers=self.headers
            )
        except httpx.TimeoutException as exc:
            raise Unreachable(
                f"the server at {self.url} did not answer in time ({exc!r})"
            ) from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the MCP server at {self.url}: {exc}") from None
        refusal = _refusal(response, self.url)
        if refusal is not None:
            raise refusal
        return response


@contextlib.asynccontextmanager
async def open_session(url: str, token: str) -> AsyncIterator[McpSession]:
    """An initialized session with the server at ``url``; ended (DELETE) when the block ends."""
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
    auth = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=timeout, headers=auth, trust_env=False) as http:
        session = McpSession(http, url)
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "coding-agent-cli", "version": "1"},
        }
        await session.initialize(params)
        try:
            yield session
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await session.close()
