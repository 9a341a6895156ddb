"""The AI provider contract: messages in, a reply (whole or streamed) with tool calls and token usage out."""
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

ROLES = ("system", "user", "assistant", "tool")


class AIProviderError(Exception):
    """The provider could not produce a reply; the core keeps the visitor's message and hands off.

    :param retryable: True when trying again later may succeed (timeouts, rate limits, 5xx).
    """

    def __init__(self, message, *, retryable=False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Tool:
    """An action the model may propose; the server validates and runs it.

    :param name: the tool's name, e.g. "capture_lead".
    :param description: what it does, for the model.
    :param parameters: a JSON Schema object describing its arguments.
    """

    name: str
    description: str
    parameters: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model proposed.

    :param id: the provider's id for the call, echoed back in the tool's result message.
    :param name: the tool's name.
    :param arguments: the decoded arguments (not yet validated).
    """

    id: str
    name: str
    arguments: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One message of the conversation sent to the model.

    :param role: "system", "user", "assistant" or "tool".
    :param content: the text.
    :param tool_calls: for an assistant message, the calls it proposed.
    :param tool_call_id: for a tool message, the call it answers.
    """

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"Message.role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")


@dataclass(frozen=True)
class Usage:
    """Tokens a reply used, for metering.

    :param input_tokens: tokens in the prompt.
    :param output_tokens: tokens generated.
    """

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens

    def __add__(self, other):
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class Reply:
    """A complete reply.

    :param text: the reply text (may be empty when the model only calls tools).
    :param tool_calls: the tool calls the model proposed.
    :param usage: tokens used.
    :param model: the model that answered, as the provider names it.
    :param finish_reason: "stop", "tool_calls", "length" or the provider's own reason.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    model: str | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed reply; the last chunk has a finish_reason and usually the usage.

    :param text: text to append.
    :param tool_calls: complete tool calls that arrived with this chunk.
    :param usage: token usage, when the provider reports it.
    :param finish_reason: set on the last chunk.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None


def collect(chunks: Iterable[Chunk], *, model=None) -> Reply:
    """Assemble a streamed reply into one Reply."""
    text, calls, usage, finish = [], [], Usage(), "stop"
    for chunk in chunks:
        text.append(chunk.text)
        calls.extend(chunk.tool_calls)
        if chunk.usage is not None:
            usage = usage + chunk.usage
        finish = chunk.finish_reason or finish
    return Reply(text="".join(text), tool_calls=tuple(calls), usage=usage, model=model, finish_reason=finish)


class AIProvider(ABC):
    """A source of chat replies (an API, a local model, the offline demo responder).

    Subclasses set `name` (unique among installed providers) and implement `reply`; a provider
    that can stream overrides `stream` too. Raise AIProviderError on failure, and respect `timeout`.
    """

    name: ClassVar[str]
    label: ClassVar[str] = ""

    def models(self) -> tuple[str, ...]:
        """Return the model names this provider offers (empty when it takes any name)."""
        return ()

    @abstractmethod
    def reply(self, *, messages: list[Message], model: str, settings: Mapping, tools: tuple[Tool, ...] = (),
              timeout: float = 30.0) -> Reply:
        """Return a complete reply to `messages`.

        :param messages: the conversation, oldest first, starting with the system prompt.
        :param model: the model to use.
        :param settings: the workspace's settings for this provider, `$env` references already resolved.
        :param tools: the tools the model may call.
        :param timeout: seconds before giving up with a retryable AIProviderError.
        """

    def stream(self, *, messages: list[Message], model: str, settings: Mapping, tools: tuple[Tool, ...] = (),
               timeout: float = 30.0) -> Iterator[Chunk]:
        """Yield the reply in chunks; the default yields one chunk made from `reply` (same arguments)."""
        whole = self.reply(messages=messages, model=model, settings=settings, tools=tools, timeout=timeout)
        yield Chunk(text=whole.text, tool_calls=whole.tool_calls, usage=whole.usage,
                    finish_reason=whole.finish_reason)
