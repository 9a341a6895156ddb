"""The OpenAI AI provider: chat replies from OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio).

Settings come from the core, `$env` references already resolved: `base_url` (default OpenAI's),
`api_key` (may be empty for local servers), `model`, `max_tokens` and optionally `max_retries`
(default 2, bounded to 0..5). `timeout` bounds the whole call: each of the 1 + max_retries
attempts waits at most its equal share. Timeouts, rate limits, connection failures and 5xx answers
raise a retryable AIProviderError after the SDK's bounded retries; a refused request (bad key, unknown
model) or an answer that is not a chat completion raises a non-retryable one. Error messages
never carry the key or the server's own text (which can echo parts of the key).
"""
import functools
import json
import logging
import time

import openai

from asthron.hookspecs import hookimpl
from asthron.providers.ai import AIProvider, AIProviderError, Chunk, Reply, ToolCall, Usage
from asthron.providers.subprocessors import Subprocessor

__version__ = "1.0.0"

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_RETRIES = 2
MAX_MAX_RETRIES = 5
# Local servers want no key, but the SDK refuses an empty one and would otherwise fall back to
# OPENAI_API_KEY from the environment and send that key to whatever server base_url names.
NO_KEY = "no-key"
RETRYABLE_STATUSES = {408, 409, 429}
STATUS_MESSAGES = {
    400: "refused the request (HTTP 400); check the model and the max tokens setting",
    401: "rejected the API key (HTTP 401)",
    403: "refused access (HTTP 403)",
    404: "does not know this model or URL (HTTP 404)",
    422: "could not process the request (HTTP 422)",
}


class OpenAIProvider(AIProvider):
    """Chat Completions over the official `openai` SDK, streaming, with tool calls and usage."""

    name = "openai"
    label = "OpenAI (and compatible servers)"

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        """Return a complete reply from one non-streaming Chat Completions request."""
        request = _request(messages=messages, model=model, settings=settings, tools=tools)
        client = _client(settings)
        with _errors_mapped():
            completion = client.chat.completions.create(**request, timeout=_attempt_timeout(client, timeout))
            return _reply_from(completion)

    def stream(self, *, messages, model, settings, tools=(), timeout=30.0):
        """Yield text chunks as they arrive, then one last chunk with tool calls, usage and finish reason."""
        request = _request(messages=messages, model=model, settings=settings, tools=tools)
        deadline = time.monotonic() + timeout
        client = _client(settings)
        with _errors_mapped():
            events = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True},
                                                    timeout=_attempt_timeout(client, timeout))
            assembler = _StreamAssembler()
            try:
                for event in events:
                    # The read timeout bounds each wait; this bounds a server that trickles forever.
                    if time.monotonic() > deadline:
                        raise AIProviderError(f"the AI server did not finish within {timeout:g} seconds",
                                              retryable=True)
                    text = assembler.add(event)
                    if text:
                        yield Chunk(text=text)
            finally:
                events.close()
            if not assembler.events:  # a 200 whose body held no `data:` events at all
                raise _malformed()
            yield assembler.last_chunk()


def _client(settings):
    base_url = (settings.get("base_url") or "").strip() or OPENAI_BASE_URL
    retries = settings.get("max_retries", DEFAULT_MAX_RETRIES)
    retries = DEFAULT_MAX_RETRIES if not isinstance(retries, int) else max(0, min(retries, MAX_MAX_RETRIES))
    return _cached_client(base_url, settings.get("api_key") or NO_KEY, retries)


def _attempt_timeout(client, timeout):
    # Retries must not multiply the caller's budget: a reply job waits at most `timeout` per call.
    return max(timeout / (client.max_retries + 1), 0.05)


@functools.lru_cache(maxsize=32)
def _cached_client(base_url, api_key, max_retries):
    # One client (and connection pool) per endpoint and key, shared by the worker's threads.
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries)


def _request(*, messages, model, settings, tools):
    request = {"model": model or settings.get("model"), "messages": [_wire_message(m) for m in messages]}
    if not request["model"]:
        raise AIProviderError("no model is configured for this AI connection")
    if tools:
        request["tools"] = [_wire_tool(t) for t in tools]
    max_tokens = settings.get("max_tokens")
    if max_tokens:
        request["max_tokens"] = int(max_tokens)
    return request


def _wire_message(message):
    wire = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [{"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))}}
                              for c in message.tool_calls]
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_tool(tool):
    parameters = dict(tool.parameters) or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": parameters}}


def _reply_from(completion):
    if isinstance(completion, (str, bytes)) or not getattr(completion, "choices", None):
        raise _malformed()
    try:
        choice = completion.choices[0]
        calls = tuple(_tool_call(c.id, c.function.name, c.function.arguments, i)
                      for i, c in enumerate(choice.message.tool_calls or ()))
        return Reply(text=choice.message.content or "", tool_calls=calls, usage=_usage(completion.usage),
                     model=completion.model, finish_reason=choice.finish_reason or "stop")
    except (AttributeError, TypeError, IndexError, KeyError) as exc:
        raise _malformed() from exc


def _usage(usage):
    if usage is None:
        return Usage()
    return Usage(input_tokens=int(usage.prompt_tokens or 0), output_tokens=int(usage.completion_tokens or 0))


def _tool_call(call_id, name, arguments, index):
    if not name:
        raise AIProviderError("the model proposed a tool call without a tool name")
    try:
        decoded = json.loads(arguments) if arguments and arguments.strip() else {}
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise AIProviderError(f"the model proposed a call to tool {name!r} whose arguments are not a JSON object")
    return ToolCall(id=call_id or f"call_{index}", name=name, arguments=decoded)


class _StreamAssembler:
    """Collect streamed deltas: tool calls arrive in pieces (id, name, then arguments bit by bit)."""

    def __init__(self):
        self.calls = {}  # index -> {"id", "name", "arguments"}
        self.usage = None
        self.finish_reason = None
        self.events = 0

    def add(self, event):
        """Take one ChatCompletionChunk; return the text it adds."""
        if isinstance(event, (str, bytes)):
            raise _malformed()
        self.events += 1
        try:
            if event.usage is not None:
                self.usage = _usage(event.usage)
            text = []
            for choice in event.choices or ():
                self.finish_reason = choice.finish_reason or self.finish_reason
                delta = choice.delta
                if delta is None:
                    continue
                text.append(delta.content or "")
                for piece in delta.tool_calls or ():
                    self._add_call_piece(piece)
            return "".join(text)
        except (AttributeError, TypeError) as exc:
            raise _malformed() from exc

    def _add_call_piece(self, piece):
        index = piece.index if piece.index is not None else self._index_for(piece.id)
        call = self.calls.setdefault(index, {"id": None, "name": None, "arguments": []})
        call["id"] = call["id"] or piece.id
        if piece.function is not None:
            call["name"] = call["name"] or piece.function.name
            call["arguments"].append(piece.function.arguments or "")

    def _index_for(self, call_id):
        # Some compatible servers omit `index`; match by id, else it is a new call.
        for index, call in self.calls.items():
            if call_id and call["id"] == call_id:
                return index
        return len(self.calls)

    def last_chunk(self):
        """Return the closing chunk: the complete tool calls, the usage and the finish reason."""
        calls = tuple(_tool_call(c["id"], c["name"], "".join(c["arguments"]), i)
                      for i, c in sorted(self.calls.items()))
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        return Chunk(tool_calls=calls, usage=self.usage, finish_reason=finish)


class _errors_mapped:
    """Turn SDK and decoding errors into AIProviderError with a safe message and the right retryability."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (AIProviderError, GeneratorExit)):
            return False
        mapped = _map_error(exc)
        if mapped is None:
            return False
        log.warning("AI request failed (%s): %s", type(exc).__name__, mapped)
        # Not chained: the SDK's exception text can quote the server's answer, which may echo the key.
        raise mapped from None


def _map_error(exc):
    if isinstance(exc, openai.APITimeoutError):
        return AIProviderError("the AI server did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return AIProviderError("could not connect to the AI server", retryable=True)
    if isinstance(exc, openai.APIResponseValidationError):
        return _malformed()
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in RETRYABLE_STATUSES or status >= 500:
            return AIProviderError(f"the AI server is busy or failing (HTTP {status})", retryable=True)
        return AIProviderError("the AI server " + STATUS_MESSAGES.get(status, f"refused the request (HTTP {status})"))
    if isinstance(exc, openai.APIError):
        # An error event in the middle of a stream: the server failed, a later try may work.
        return AIProviderError("the AI server reported an error while answering", retryable=True)
    if isinstance(exc, ValueError):  # JSON that does not decode, or pydantic refusing the shape
        return _malformed()
    if isinstance(exc, openai.OpenAIError):
        return AIProviderError("the AI client could not send the request")
    return None


def _malformed():
    return AIProviderError("the AI server answered with something that is not a chat completion")


@hookimpl
def register_ai_providers(register):
    register(OpenAIProvider())


@hookimpl
def register_subprocessors(register):
    register(Subprocessor(
        name="OpenAI, L.L.C.",
        purpose="AI processing of chat messages",
        data_categories=("chat messages", "visitor-provided contact details", "workspace knowledge base"),
        location="United States",
        dpa_url="https://openai.com/policies/data-processing-addendum",
    ))
