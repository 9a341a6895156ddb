"""AI replies to visitor messages: budget, provider, prompt, streamed tokens, tools, the stored reply, usage.

`answer(conversation_id, message_id)` is the body of the `ai.reply` job. It runs inside the job's
transaction (the runner commits) and under a tenant scope of the conversation's workspace only.
Providers receive `settings` with the connection's `base_url` and `api_key` (resolved from its
`$env` reference), `max_tokens`, and the retrieved `knowledge` and `qualification_questions`.

Failures: a retryable AIProviderError is raised again so the outbox retries with back-off; on the
last attempt, or for a non-retryable or malformed answer, or when the monthly token budget is
spent, the visitor gets a fallback reply and the conversation goes to a person. The visitor's
message is never touched.
"""
import json
import logging
from dataclasses import dataclass

from sqlalchemy import select

from asthron import tenancy
from asthron.extensions import db
from asthron.jobs import runner
from asthron.models.chat import (
    AIConnection,
    Conversation,
    ConversationOwner,
    Message,
    MessageRole,
)
from asthron.models.tenancy import Workspace, WorkspaceStatus
from asthron.providers import secrets
from asthron.providers.ai import AIProviderError, Chunk, Usage, collect
from asthron.providers.ai import Message as PromptMessage
from asthron.registry import ai_providers
from asthron.services import conversations, prompts, streams, tools, usage, widget_settings

log = logging.getLogger(__name__)

FALLBACK_TEXT = "Sorry, I can't answer right now — a person from the team will get back to you."
AFTER_TOOLS_TEXT = "Thank you — the team has been told."
PROVIDER_TIMEOUT = 30.0  # seconds per provider call; the job's own timeout is longer
MAX_TOOL_CALLS = 4  # per reply; more is a confused model, not a busy visitor
MAX_REPLY_CHARS = 8000
BUDGET_REASON = "The monthly AI token budget is spent."
FAILURE_REASON = "The AI could not answer; a person should reply."


@dataclass(frozen=True)
class Target:
    """The provider to call, with its model and settings for this workspace."""

    name: str
    provider: object
    model: str
    options: dict


@dataclass(frozen=True)
class Outcome:
    """A finished answer: the text to store, its token usage and the tools that ran."""

    text: str
    usage: Usage
    tools_run: tuple = ()


def answer(conversation_id, message_id):
    """Reply to visitor message `message_id` of conversation `conversation_id`, once."""
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        return
    with tenancy.scoped(workspace_scope(conversation.workspace_id)):
        message = _pending_visitor_message(conversation, message_id)
        if message is None:
            return
        settings = widget_settings.current(conversation.workspace_id)
        if _budget_spent(conversation.workspace_id, settings):
            fall_back(conversation, message, settings, reason=BUDGET_REASON)
            return
        try:
            target = resolve_target(settings)
            outcome = _generate(conversation, message, settings, target)
        except AIProviderError as exc:
            if exc.retryable and not runner.is_last_attempt():
                raise
            log.warning("AI reply to message %s of %s failed (retryable=%s): %s", message_id, conversation_id,
                        exc.retryable, exc)
            fall_back(conversation, message, settings, reason=FAILURE_REASON)
            return
        if _taken_meanwhile(conversation, outcome):
            log.info("AI reply to message %s of %s dropped: a person took the conversation", message_id,
                     conversation_id)
            usage.record(conversation.workspace_id, usage.REPLY, conversation_id=conversation.id,
                         provider=target.name, model=target.model, input_tokens=outcome.usage.input_tokens,
                         output_tokens=outcome.usage.output_tokens)  # the tokens were spent all the same
            return
        _store(conversation, message, settings, target, outcome)


def _taken_meanwhile(conversation, outcome):
    """Say whether staff took or closed the conversation while the provider was answering (the AI stays silent)."""
    owner = db.session.scalar(select(Conversation.owner).where(Conversation.id == conversation.id))
    handed_off_here = "handoff" in outcome.tools_run  # this reply itself asked for a person: it still tells the visitor
    return owner in (ConversationOwner.human, ConversationOwner.closed) and not handed_off_here


def workspace_scope(workspace_id):
    """Return a tenant scope that sees one workspace and its data, nothing else."""
    ids = frozenset({workspace_id})
    return tenancy.Scope(agency_ids=frozenset(), admin_agency_ids=frozenset(), workspace_ids=ids,
                         data_workspace_ids=ids)


def _pending_visitor_message(conversation, message_id):
    """Return the visitor message to answer, or None when there is nothing to do (idempotent re-runs)."""
    if conversation.owner != ConversationOwner.ai:
        return None
    workspace = db.session.get(Workspace, conversation.workspace_id)
    if workspace is None or workspace.status != WorkspaceStatus.active:
        return None
    message = db.session.execute(select(Message).where(
        Message.id == message_id, Message.conversation_id == conversation.id,
        Message.workspace_id == conversation.workspace_id)).scalar()
    if message is None or message.role != MessageRole.visitor or already_answered(conversation, message_id):
        return None
    return message


def already_answered(conversation, message_id):
    """Say whether a reply (or fallback) to `message_id` is already stored."""
    later = db.session.execute(select(Message.meta).where(
        Message.conversation_id == conversation.id, Message.id > message_id,
        Message.role.in_([MessageRole.assistant, MessageRole.system]))).scalars()
    return any(isinstance(meta, dict) and meta.get("reply_to") == message_id for meta in later)


def _budget_spent(workspace_id, settings):
    left = usage.budget_left(workspace_id, settings.monthly_token_budget)
    return left is not None and left <= 0


def resolve_target(settings):
    """Return the workspace's provider, model and provider settings; raise AIProviderError if unusable."""
    name = settings.ai_provider or "offline"
    try:
        provider = ai_providers.get(name)
    except LookupError:
        raise AIProviderError(f"the AI provider {name!r} is not installed", retryable=False) from None
    options, connection = {}, None
    if settings.ai_connection_id:
        connection = db.session.get(AIConnection, settings.ai_connection_id)
        if connection is None or not connection.enabled:
            raise AIProviderError("the workspace's AI connection is missing or disabled", retryable=False)
        try:
            options = secrets.resolve({"base_url": connection.base_url, "api_key": connection.api_key_ref})
        except secrets.SecretError as exc:  # names the variable, never a value
            raise AIProviderError(str(exc), retryable=False) from None
    model = settings.model or (connection.default_model if connection else None) or \
        next(iter(provider.models()), None) or name
    options["max_tokens"] = settings.max_reply_tokens
    return Target(name=name, provider=provider, model=model, options=options)


def _generate(conversation, message, settings, target):
    """Stream the answer, run the tools it proposes, and stream one follow-up with their results."""
    offered = tools.enabled(settings)
    prompt = prompts.build(conversation, message, settings, tools=offered)
    options = {**target.options, "knowledge": [p.as_dict() for p in prompt.passages],
               "qualification_questions": list(prompt.qualification_questions)}
    first = _stream(target, prompt.messages, options, offered, conversation.id, message.id)
    if not first.tool_calls:
        if not first.text.strip():
            raise AIProviderError("the provider returned an empty answer", retryable=False)
        return Outcome(first.text, first.usage)
    calls = first.tool_calls[:MAX_TOOL_CALLS]
    results = [tools.run(conversation, settings, call) for call in calls]
    follow_up = prompt.messages + [PromptMessage("assistant", first.text, tool_calls=tuple(calls))] + [
        PromptMessage("tool", json.dumps(result), tool_call_id=call.id) for call, result in zip(calls, results)]
    # One follow-up only, offered no tools: the loop is bounded whatever the model proposes.
    second = _stream(target, follow_up, options, (), conversation.id, message.id)
    text = " ".join(part.strip() for part in (first.text, second.text) if part.strip()) or AFTER_TOOLS_TEXT
    return Outcome(text, first.usage + second.usage, tuple(c.name for c in calls))


def _stream(target, messages, options, offered, conversation_id, reply_to):
    """Call the provider, publishing each chunk's text as a token event; return the assembled Reply."""
    chunks = []
    try:
        for chunk in target.provider.stream(messages=messages, model=target.model, settings=options,
                                            tools=offered, timeout=PROVIDER_TIMEOUT):
            if not isinstance(chunk, Chunk):
                raise AIProviderError("the provider streamed something that is not a Chunk", retryable=False)
            if chunk.text:
                streams.publish(conversation_id, {"type": "token", "reply_to": reply_to, "text": chunk.text})
            chunks.append(chunk)
    except AIProviderError:
        raise
    except Exception as exc:  # a plugin's own bug or an unwrapped network error: retry, then fall back
        raise AIProviderError(f"the provider {target.name!r} failed: {type(exc).__name__}", retryable=True) from exc
    return collect(chunks, model=target.model)


def _store(conversation, message, settings, target, outcome):
    """Store the reply (published after commit) and its usage row."""
    conversations.add_message(conversation, "assistant", outcome.text[:MAX_REPLY_CHARS],
                              author=settings.assistant_name,
                              meta={"reply_to": message.id, "provider": target.name, "model": target.model,
                                    "tools": list(outcome.tools_run)})
    usage.record(conversation.workspace_id, usage.REPLY, conversation_id=conversation.id, provider=target.name,
                 model=target.model, input_tokens=outcome.usage.input_tokens,
                 output_tokens=outcome.usage.output_tokens)


def fall_back(conversation, message, settings, *, reason):
    """Store the fallback reply and hand the conversation to a person."""
    conversations.add_message(conversation, "assistant", FALLBACK_TEXT, author=settings.assistant_name,
                              meta={"reply_to": message.id, "fallback": True})
    tools.flag_for_human(conversation, reason)
