"""A real CalDAV server for tests: Radicale run as a subprocess on a free port, and the CalDAV plugin.

`radicale` starts `python -m radicale` with a temporary storage folder and an htpasswd file with
plain passwords, waits until it answers and stops it after the test session. `caldav_plugin` loads
plugins/caldav_calendar.py by path, as the app does, and unregisters it after the test.
"""
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGINS_DIR = Path(__file__).resolve().parents[1] / "plugins"
USER, PASSWORD = "alice", "radicale-pass-7431"


@dataclass
class Radicale:
    """A running Radicale: its base URL and one user's credentials."""

    url: str
    username: str
    password: str

    def client(self, password=None):
        """Return a caldav client signed in as the test user."""
        import caldav

        return caldav.DAVClient(url=self.url, username=self.username, password=password or self.password)

    def new_calendar(self):
        """Create a fresh calendar for one test; return its URL."""
        name = f"bookings-{uuid.uuid4().hex[:8]}"
        return str(self.client().principal().make_calendar(name=name).url)


def free_port():
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_answers(port, process, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Radicale exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Radicale did not start listening in time")


@pytest.fixture(scope="session")
def radicale(tmp_path_factory):
    """Run Radicale for the session; yield a Radicale handle."""
    folder = tmp_path_factory.mktemp("radicale")
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    (folder / "config").write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {folder / 'users'}\n"
        "htpasswd_encryption = plain\n"
        "[storage]\n"
        f"filesystem_folder = {folder / 'collections'}\n"
        "[rights]\n"
        "type = owner_only\n"
        "[logging]\n"
        "level = warning\n")
    log = open(folder / "radicale.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(folder / "config")],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_answers(port, process)
        yield Radicale(url=f"http://127.0.0.1:{port}/", username=USER, password=PASSWORD)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def caldav_plugin():
    """Load plugins/caldav_calendar.py by path, as the app does; return its module; unregister it after."""
    from asthron import plugins

    assert plugins.load_folder(str(PLUGINS_DIR), allow=plugins.allowed_names("caldav_calendar")) == \
        ["caldav_calendar"]
    yield plugins.pm.get_plugin("caldav_calendar")
    plugins.unregister("caldav_calendar")
    sys.modules.pop(f"{plugins.FOLDER_PACKAGE}.caldav_calendar", None)
