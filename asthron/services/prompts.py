"""Prompts for AI replies, built from the conversation's own workspace and nothing else.

Everything here is read by `workspace_id` of the conversation: its widget settings, its knowledge
(retrieved for the visitor's message), its qualification questions and its recent messages. The
reply job also runs these reads under a tenant scope of that one workspace, so a mistake here still
could not reach another workspace's rows.
"""
from dataclasses import dataclass, field

from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import Message, MessageRole
from asthron.models.tenancy import Workspace
from asthron.providers.ai import Message as PromptMessage
from asthron.services import knowledge

HISTORY_MESSAGES = 20  # recent messages sent to the model; older ones add cost, not answers
MESSAGE_CHARS = 4000
INSTRUCTIONS_CHARS = 8000
ROLE_MAP = {MessageRole.visitor: "user", MessageRole.assistant: "assistant", MessageRole.staff: "assistant",
            MessageRole.system: "system"}
TOOL_GUIDANCE = {
    "capture_lead": "When the visitor gives an email address or a phone number, call capture_lead with them.",
    "handoff": "When the visitor asks for a person, or you cannot help, call handoff.",
}


@dataclass(frozen=True)
class Prompt:
    """What a provider receives: the messages, and the retrieved passages and questions for its settings."""

    messages: list
    passages: list = field(default_factory=list)
    qualification_questions: list = field(default_factory=list)


def build(conversation, message, settings, *, tools=()):
    """Return the Prompt answering visitor `message` of `conversation` under its workspace's `settings`."""
    workspace_id = conversation.workspace_id
    passages = knowledge.search(workspace_id, message.text)
    questions = [q.strip() for q in (settings.qualification_questions or []) if isinstance(q, str) and q.strip()]
    questions += lead_questions(workspace_id, tools=tools)
    workspace = db.session.get(Workspace, workspace_id)
    system = system_prompt(settings, workspace_name=workspace.name if workspace else "", passages=passages,
                           questions=questions, tools=tools)
    return Prompt(messages=[PromptMessage("system", system)] + history(conversation, message),
                  passages=passages, qualification_questions=questions)


def lead_questions(workspace_id, *, tools=()):
    """Return the workspace's lead fields that carry a question, worded for the model, with the key to save under."""
    from asthron.services import leads

    saves = any(tool.name == "capture_lead" for tool in tools)
    return [f"{f.question.strip()} (capture_lead field \"{f.key}\")" if saves else f.question.strip()
            for f in leads.fields(workspace_id) if (f.question or "").strip()]


def system_prompt(settings, *, workspace_name, passages, questions, tools):
    """Return the system message: who the assistant is, the workspace's instructions, knowledge, questions, tools."""
    parts = [(f"You are {settings.assistant_name or 'the assistant'}, answering visitors on the website of "
              f"{workspace_name}. Reply in the visitor's language, briefly and politely.")]
    if (settings.instructions or "").strip():
        parts.append("Instructions from the team:\n" + settings.instructions.strip()[:INSTRUCTIONS_CHARS])
    if passages:
        entries = "\n\n".join(f"[{n}] {p.title}\n{p.body}" for n, p in enumerate(passages, 1))
        parts.append("Answer only from this knowledge:\n" + entries)
    else:
        parts.append("No knowledge matches this question.")
    parts.append("If the knowledge does not answer the question, say plainly that you do not know and offer "
                 "to ask a person from the team. Never invent prices, times or promises.")
    if questions:
        parts.append("When it fits, ask the visitor these questions, one at a time, skipping those already "
                     "answered:\n" + "\n".join(f"- {q}" for q in questions))
    guidance = [TOOL_GUIDANCE[t.name] for t in tools if t.name in TOOL_GUIDANCE]
    if guidance:
        parts.append("Tools:\n" + "\n".join(guidance))
    return "\n\n".join(parts)


def history(conversation, message):
    """Return the conversation's recent messages up to and including `message`, oldest first, as prompt messages."""
    rows = db.session.execute(
        select(Message).where(Message.conversation_id == conversation.id,
                              Message.workspace_id == conversation.workspace_id, Message.id <= message.id,
                              Message.role != MessageRole.note)  # internal staff notes stay out of the prompt
        .order_by(Message.id.desc()).limit(HISTORY_MESSAGES)).scalars().all()
    return [_prompt_message(row) for row in reversed(rows)]


def _prompt_message(row):
    text = (row.text or "")[:MESSAGE_CHARS]
    if row.role == MessageRole.staff:
        # The model should know a person said it, and who, so it does not contradict them.
        text = f"[{row.author or 'Team member'}, from the team] {text}"
    return PromptMessage(ROLE_MAP[row.role], text)
