"""The offline AI provider: answers from the workspace's knowledge base, with no key and no network.

The core retrieves the knowledge for the visitor's message and passes it in `settings`:
`{"knowledge": [{"title", "body"}, ...] (best first, already filtered for relevance),
"qualification_questions": [str, ...], "max_tokens": int}`. The provider answers with the best
passage, asks the next qualification question not yet asked, says plainly when it does not know and
offers a person, and proposes `handoff` (the visitor asks for a person) and `capture_lead` (the
visitor gives an email address or phone number) as tool calls, like a real model would. It streams one
chunk per word and counts a word as a token, so metering and budgets work. It never sleeps.
"""
import json
import re

from asthron.hookspecs import hookimpl
from asthron.providers.ai import AIProvider, Chunk, Reply, ToolCall, Usage

MODEL = "knowledge-base"
DONT_KNOW = "I'm sorry, I don't know the answer to that."
OFFER_PERSON = "Would you like me to ask a person from the team to help you?"
GREETING = "Hello! How can I help you today?"
ANYTHING_ELSE = "Is there anything else I can help you with?"
HANDED_OFF = "I've asked a person from the team to join this conversation."
LEAD_SAVED = "Thank you, I've passed your details to the team; they will get back to you."

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d ().\-/]{5,22}\d")
_NAME = re.compile(r"\b(?i:my name is|i am|i'm) ([A-Z][\w'-]+(?: [A-Z][\w'-]+)?)")
_PERSON = re.compile(r"\b(human|person|real person|someone|somebody|agent|operator|staff|team member|"
                     r"representative|talk to (a|an|the)|speak (to|with))\b", re.IGNORECASE)
_YES = re.compile(r"^\s*(yes|yeah|yep|sure|ok|okay|please|yes please)\b", re.IGNORECASE)
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\W*$", re.IGNORECASE)


def count_tokens(text):
    """Return an approximate token count: one per word."""
    return len(str(text).split())


class OfflineProvider(AIProvider):
    """Answers from retrieved knowledge; proposes tools; knows what it does not know."""

    name = "offline"
    label = "Offline (knowledge base, no AI service)"

    def models(self):
        return (MODEL,)

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        available = {tool.name for tool in tools}
        if messages and messages[-1].role == "tool":
            text, calls = _after_tools(messages), ()
        else:
            text, calls = _answer(messages, settings, available)
        text = _limit(text, settings.get("max_tokens"))
        usage = Usage(input_tokens=sum(count_tokens(m.content) for m in messages), output_tokens=count_tokens(text))
        return Reply(text=text, tool_calls=calls, usage=usage, model=model or MODEL,
                     finish_reason="tool_calls" if calls else "stop")

    def stream(self, *, messages, model, settings, tools=(), timeout=30.0):
        whole = self.reply(messages=messages, model=model, settings=settings, tools=tools, timeout=timeout)
        words = whole.text.split(" ") if whole.text else []
        for word in words[:-1]:
            yield Chunk(text=word + " ")
        yield Chunk(text=words[-1] if words else "", tool_calls=whole.tool_calls, usage=whole.usage,
                    finish_reason=whole.finish_reason)


def _answer(messages, settings, available):
    """Return (text, tool calls) for the visitor's latest message."""
    visitor = next((m.content for m in reversed(messages) if m.role == "user"), "")
    previous = _last_assistant(messages)
    calls = _proposed_calls(visitor, previous, available)
    if calls:
        return "", calls
    questions = [q for q in settings.get("qualification_questions") or () if isinstance(q, str) and q.strip()]
    next_question = _next_question(messages, questions)
    if previous and any(q in previous for q in questions):
        # The visitor is answering our question: thank them and go on.
        return " ".join(["Thank you!", next_question or ANYTHING_ELSE]), ()
    knowledge = [k for k in settings.get("knowledge") or () if isinstance(k, dict) and k.get("body")]
    if knowledge:
        return " ".join(filter(None, [knowledge[0]["body"].strip(), next_question])), ()
    if _GREETING.match(visitor):
        return GREETING, ()
    offer = OFFER_PERSON if "handoff" in available else "Please leave your email address and the team will reply."
    return f"{DONT_KNOW} {offer}", ()


def _proposed_calls(visitor, previous, available):
    calls = []
    if "handoff" in available and (_PERSON.search(visitor) or (previous and previous.endswith(OFFER_PERSON)
                                                               and _YES.match(visitor))):
        calls.append(ToolCall(id="call_handoff", name="handoff",
                              arguments={"reason": "The visitor asked for a person."}))
    if "capture_lead" in available:
        details = _contact_details(visitor)
        if details:
            calls.append(ToolCall(id="call_capture_lead", name="capture_lead", arguments=details))
    return tuple(calls)


def _contact_details(text):
    details = {}
    email = _EMAIL.search(text)
    if email:
        details["email"] = email.group(0)
        text = text.replace(email.group(0), " ")
    phone = _PHONE.search(text)
    if phone and len(re.sub(r"\D", "", phone.group(0))) >= 6:
        details["phone"] = phone.group(0).strip()
    name = _NAME.search(text)
    if details and name:
        details["name"] = name.group(1)
    return details


def _after_tools(messages):
    """Return the text that follows the tool results at the end of `messages`."""
    names = {}
    for message in messages:
        for call in message.tool_calls:
            names[call.id] = call.name
    sentences = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        sentences.insert(0, _tool_sentence(names.get(message.tool_call_id), message.content))
    return " ".join(filter(None, sentences))


def _tool_sentence(name, content):
    try:
        result = json.loads(content)
    except (TypeError, ValueError):
        result = {}
    if not result.get("ok"):
        error = str(result.get("error") or "something went wrong")
        return f"Sorry, I couldn't do that: {error} Could you check it?"
    return {"handoff": HANDED_OFF, "capture_lead": LEAD_SAVED}.get(name, "Done.")


def _last_assistant(messages):
    for message in reversed(messages[:-1]):
        if message.role == "assistant":
            return message.content
    return None


def _next_question(messages, questions):
    asked = " ".join(m.content for m in messages if m.role == "assistant")
    return next((q for q in questions if q not in asked), None)


def _limit(text, max_tokens):
    if not max_tokens or count_tokens(text) <= int(max_tokens):
        return text
    return " ".join(text.split()[: int(max_tokens)])


@hookimpl
def register_ai_providers(register):
    register(OfflineProvider())
