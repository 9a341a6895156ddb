"""Jobs (filled in by the jobs layer)."""


def init_app(app):
    """Bind the job queue."""
