"""Logging that never carries a secret: a filter masks secret-looking values in every record."""
import logging
import re

_SECRET_PATTERN = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)([^\s\"',&]+)")


class RedactSecrets(logging.Filter):
    """Replace the value after a secret-looking key with asterisks."""

    def filter(self, record):
        message = record.getMessage()
        masked = _SECRET_PATTERN.sub(r"\1********", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def init_app(app):
    """Attach the redacting filter to the app's and the root logger's handlers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers + app.logger.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
