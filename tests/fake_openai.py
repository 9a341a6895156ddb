"""A real local HTTP server speaking the OpenAI Chat Completions wire format, scripted per test.

`POST /v1/chat/completions` answers with the next scripted behaviour (or the default text reply):
JSON for `"stream": false`, `data: {chunk}` server-sent events ending in `data: [DONE]` for
`"stream": true`, with role/content deltas, tool calls split across chunks and, when asked for
with `stream_options.include_usage`, a final usage chunk. Every request is recorded (path,
headers, decoded body) so tests can assert prompts and the Authorization header.
"""
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PLUGINS_DIR = Path(__file__).resolve().parents[1] / "plugins"


@dataclass
class Behaviour:
    """One scripted answer: a reply (text and/or tool calls), an HTTP error, a slow answer or garbage."""

    text: str = ""
    tool_calls: tuple = ()  # ({"id", "name", "arguments": str}, ...)
    usage: tuple = (11, 7)  # (prompt tokens, completion tokens)
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    garbage: bool = False


def text(content, *, usage=(11, 7)):
    """Answer with `content`, streamed a few characters per chunk."""
    return Behaviour(text=content, usage=usage)


def tool_call(name, arguments, *, call_id="call_abc123", content="", usage=(20, 9)):
    """Answer with one tool call; `arguments` is the raw JSON text, streamed in pieces."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return Behaviour(text=content, usage=usage, tool_calls=({"id": call_id, "name": name, "arguments": arguments},))


def malformed_tool_arguments(name="capture_lead"):
    """Answer with a tool call whose arguments are cut-off JSON."""
    return tool_call(name, '{"email": "ann@example.com", "name": ')


def slow(seconds, content="too late"):
    """Wait `seconds` before answering (longer than the client's timeout)."""
    return Behaviour(text=content, delay=seconds)


def status(code, *, retry_after=None):
    """Answer with an OpenAI-style error body and HTTP status `code` (429, 500, 401, ...)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Behaviour(status=code, headers=headers)


def garbage():
    """Answer 200 with a body that is neither JSON nor server-sent events."""
    return Behaviour(garbage=True)


class FakeOpenAI:
    """The server, run in a thread on 127.0.0.1 on a free port; `script` queues behaviours."""

    model = "fake-gpt"

    def __init__(self):
        self.queue = deque()
        self.default = text("Hello from the fake model.")
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self):
        """Return the base URL a client is configured with (".../v1")."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self):
        """Start serving in the background; return self."""
        self.thread.start()
        return self

    def stop(self):
        """Stop serving and release the port (slow answers are cut short)."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *behaviours):
        """Queue behaviours for the next requests, in order."""
        with self.lock:
            self.queue.extend(behaviours)

    def next_behaviour(self):
        """Return the next scripted behaviour, or the default when the script is used up."""
        with self.lock:
            return self.queue.popleft() if self.queue else self.default

    def record(self, entry):
        """Remember one request."""
        with self.lock:
            self.requests.append(entry)


def _handler_for(fake):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake.record({"path": self.path, "headers": headers, "body": body})
            if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
                return self._json(404, _error("Unknown request", "invalid_request_error"))
            behaviour = fake.next_behaviour()
            if behaviour.delay and fake.stopping.wait(behaviour.delay):
                return None
            try:
                self._answer(behaviour, body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass
            return None

        def _answer(self, behaviour, body):
            if behaviour.status != 200:
                kind = "rate_limit_error" if behaviour.status == 429 else "server_error"
                return self._json(behaviour.status, _error(f"Scripted HTTP {behaviour.status}", kind),
                                  headers=behaviour.headers)
            if behaviour.garbage:
                return self._raw(200, b"<html><body>Bad gateway-ish nonsense</body></html>", "text/html")
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._stream(_chunks(behaviour, body.get("model") or fake.model, include_usage))
            return self._json(200, _completion(behaviour, body.get("model") or fake.model))

        def _json(self, code, payload, headers=None):
            self._raw(code, json.dumps(payload).encode(), "application/json", headers)

        def _raw(self, code, data, content_type, headers=None):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, chunks):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _error(message, kind):
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _usage(behaviour):
    prompt, completion = behaviour.usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(behaviour):
    return "tool_calls" if behaviour.tool_calls else "stop"


def _completion(behaviour, model):
    message = {"role": "assistant", "content": behaviour.text or None}
    if behaviour.tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in behaviour.tool_calls]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(behaviour)}],
            "usage": _usage(behaviour)}


def _chunks(behaviour, model, include_usage):
    """Yield the chunk objects of a streamed answer, in the order OpenAI sends them."""
    def chunk(delta, finish=None):
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for start in range(0, len(behaviour.text), 4):
        yield chunk({"content": behaviour.text[start:start + 4]})
    for index, call in enumerate(behaviour.tool_calls):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["name"], "arguments": ""}}]})
        for start in range(0, len(call["arguments"]), 5):
            yield chunk({"tool_calls": [{"index": index,
                                         "function": {"arguments": call["arguments"][start:start + 5]}}]})
    yield chunk({}, finish=_finish(behaviour))
    if include_usage:
        yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
               "model": model, "choices": [], "usage": _usage(behaviour)}


@pytest.fixture
def fake_openai():
    """A started FakeOpenAI server, stopped after the test."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def openai_plugin():
    """Load plugins/openai_provider.py by path, as the app does; return its module; unregister it after."""
    from asthron import plugins

    assert plugins.load_folder(str(PLUGINS_DIR), allow=plugins.allowed_names("openai_provider")) == \
        ["openai_provider"]
    yield plugins.pm.get_plugin("openai_provider")
    plugins.unregister("openai_provider")
    sys.modules.pop(f"{plugins.FOLDER_PACKAGE}.openai_provider", None)
