"""WSGI entry point: `gunicorn wsgi:app` or `flask --app wsgi ...`."""
import gc

from asthron.app import create_app

app = create_app()
# The app's ~300,000 start-up objects live as long as the process. Leaving them out of the garbage
# collector's full passes turns a ~200 ms pause every few hundred requests into ~2 ms.
gc.freeze()
