"""AI jobs: answer a visitor's message (the logic lives in asthron.services.replies)."""
from asthron.jobs.registry import job

# Bounded: a visitor waits for the answer, so three quick tries, then the fallback reply.
REPLY_MAX_ATTEMPTS = 3
REPLY_BACKOFF = 2  # seconds before the second attempt, doubled before the third


@job("ai", max_attempts=REPLY_MAX_ATTEMPTS, backoff=REPLY_BACKOFF, timeout=120)
def reply(conversation_id, message_id):
    """Answer visitor message `message_id` of conversation `conversation_id`."""
    from asthron.services import replies

    replies.answer(conversation_id, message_id)
