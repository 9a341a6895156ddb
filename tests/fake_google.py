"""A local HTTP server answering in Google's documented OAuth2 and Calendar API v3 formats, for tests.

- `GET /o/oauth2/v2/auth`: the consent page; it "consents" at once (or denies, when told to) and
  redirects to `redirect_uri` with `code` and `state`, as Google does.
- `POST /token`: the `authorization_code` grant (checks the client, the redirect URI and the PKCE
  S256 verifier; a code works once) and the `refresh_token` grant; errors are
  `{"error": "invalid_grant", "error_description": ...}` with HTTP 400, like Google's.
- `POST /calendar/v3/freeBusy`, `POST|PUT|DELETE /calendar/v3/calendars/{calendarId}/events[/{eventId}]`
  with a Bearer access token: Google's JSON resources and error bodies (`{"error": {"errors":
  [{"domain", "reason", "message"}], "code", "message"}}`), 409 `duplicate` for an id already used
  (also by a deleted event), 410 `deleted` for deleting a deleted event, 404 `notFound`.
`fail_next(status, reason)` scripts the next API answer; `requests` records what was asked.
"""
import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

CLIENT_ID = "1234567890-test.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-test-client-secret"
SCOPE = "https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy"
MESSAGES = {"duplicate": "The requested identifier already exists.", "deleted": "Resource has been deleted",
            "notFound": "Not Found", "authError": "Invalid Credentials", "backendError": "Backend Error",
            "rateLimitExceeded": "Rate Limit Exceeded", "forbidden": "Forbidden"}


class FakeGoogle:
    """The server state: codes, tokens, calendars of events, scripted failures and a request log."""

    def __init__(self):
        self.codes = {}  # code -> {"challenge", "redirect_uri"}
        self.access_tokens = {}  # token -> expiry (epoch seconds)
        self.refresh_tokens = set()
        self.events = {}  # (calendar id, event id) -> event resource
        self.extra_busy = {}  # calendar id -> [(start iso, end iso)]
        self.calendars = {"primary"}
        self.failures = []
        self.deny = False
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def fail_next(self, status, reason):
        """Answer the next Calendar API request with an error."""
        self.failures.append((status, reason))

    def grants(self, kind):
        """Return the token requests of one grant type."""
        return [r for r in self.requests if r["path"] == "/token" and r["form"].get("grant_type") == kind]

    def live_events(self, calendar="primary"):
        """Return {event id: event} of the events not deleted."""
        return {eid: e for (cal, eid), e in self.events.items() if cal == calendar and e["status"] != "cancelled"}

    def issue_access_token(self, lifetime=3599):
        token = "ya29.a0" + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.time() + lifetime
        return token


def _error(code, reason, status_text=None):
    body = {"error": {"errors": [{"domain": "global", "reason": reason, "message": MESSAGES.get(reason, reason)}],
                      "code": code, "message": MESSAGES.get(reason, reason)}}
    if status_text:
        body["error"]["status"] = status_text
    return code, body


def _handler_for(server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, body=None, headers=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            entry = {"method": self.command, "path": urlparse(self.path).path, "headers": dict(self.headers),
                     "query": {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}, "form": {},
                     "json": None}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                entry["form"] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            elif raw:
                entry["json"] = json.loads(raw)
            with server.lock:
                server.requests.append(entry)
            return entry

        def do_GET(self):
            request = self._record()
            if request["path"] != "/o/oauth2/v2/auth":
                return self._reply(404, {"error": "not_found"})
            q = request["query"]
            target = q["redirect_uri"]
            if server.deny:
                denied = urlencode({"error": "access_denied", "state": q["state"]})
                return self._reply(302, headers={"Location": f"{target}?{denied}"})
            code = "4/0A" + secrets.token_urlsafe(16)
            server.codes[code] = {"challenge": q.get("code_challenge"), "redirect_uri": target,
                                  "method": q.get("code_challenge_method")}
            location = f"{target}?{urlencode({'state': q['state'], 'code': code, 'scope': SCOPE})}"
            self._reply(302, headers={"Location": location})

        def do_POST(self):
            request = self._record()
            if request["path"] == "/token":
                return self._reply(*self._token(request))
            self._api(request)

        def do_PUT(self):
            self._api(self._record())

        def do_DELETE(self):
            self._api(self._record())

        def _client_ok(self, request):
            auth = request["headers"].get("Authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            else:
                client_id, secret = request["form"].get("client_id"), request["form"].get("client_secret")
            return client_id == CLIENT_ID and secret == CLIENT_SECRET

        def _token(self, request):
            form = request["form"]
            if not self._client_ok(request):
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            if form.get("grant_type") == "authorization_code":
                issued = server.codes.pop(form.get("code"), None)
                verifier = form.get("code_verifier") or ""
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if issued is None or issued["redirect_uri"] != form.get("redirect_uri") \
                        or issued["method"] != "S256" or issued["challenge"] != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                refresh = "1//0g" + secrets.token_urlsafe(24)
                server.refresh_tokens.add(refresh)
                return 200, {"access_token": server.issue_access_token(), "expires_in": 3599,
                             "refresh_token": refresh, "scope": SCOPE, "token_type": "Bearer"}
            if form.get("grant_type") == "refresh_token":
                if form.get("refresh_token") not in server.refresh_tokens:
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                return 200, {"access_token": server.issue_access_token(), "expires_in": 3599, "scope": SCOPE,
                             "token_type": "Bearer"}
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}

        def _api(self, request):
            token = request["headers"].get("Authorization", "").removeprefix("Bearer ")
            if server.access_tokens.get(token, 0) < time.time():
                return self._reply(*_error(401, "authError", "UNAUTHENTICATED"))
            if server.failures:
                status, reason = server.failures.pop(0)
                return self._reply(*_error(status, reason))
            parts = request["path"].strip("/").split("/")
            if parts == ["calendar", "v3", "freeBusy"]:
                return self._reply(200, self._freebusy(request["json"]))
            if parts[:3] == ["calendar", "v3", "calendars"] and len(parts) >= 5 and parts[4] == "events":
                return self._reply(*self._events(request, parts[3], parts[5] if len(parts) > 5 else None))
            self._reply(*_error(404, "notFound"))

        def _freebusy(self, body):
            calendars = {}
            for item in body["items"]:
                cid = item["id"]
                if cid not in server.calendars:
                    calendars[cid] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                    continue
                busy = [(e["start"]["dateTime"], e["end"]["dateTime"]) for e in server.live_events(cid).values()]
                busy += server.extra_busy.get(cid, [])
                inside = [(s, e) for s, e in busy if _t(s) < _t(body["timeMax"]) and _t(e) > _t(body["timeMin"])]
                calendars[cid] = {"busy": [{"start": s, "end": e} for s, e in sorted(inside, key=lambda p: _t(p[0]))]}
            return {"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
                    "calendars": calendars}

        def _events(self, request, calendar_id, event_id):
            if calendar_id not in server.calendars:
                return _error(404, "notFound")
            key = (calendar_id, event_id)
            if request["method"] == "POST":
                key = (calendar_id, request["json"].get("id"))
                if key in server.events:
                    return _error(409, "duplicate")
                server.events[key] = _resource(request["json"], key[1])
                return 200, server.events[key]
            if key not in server.events:
                return _error(404, "notFound")
            if request["method"] == "PUT":
                server.events[key] = _resource(request["json"], event_id)
                return 200, server.events[key]
            if server.events[key]["status"] == "cancelled":
                return _error(410, "deleted")
            server.events[key]["status"] = "cancelled"
            return 204, None

    return Handler


def _resource(body, event_id):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"kind": "calendar#event", "etag": f'"{secrets.randbelow(10**15)}"', "id": event_id,
            "status": body.get("status", "confirmed"), "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": now, "updated": now, "summary": body.get("summary", ""),
            "description": body.get("description", ""), "location": body.get("location", ""),
            "start": body["start"], "end": body["end"], "iCalUID": f"{event_id}@google.com", "sequence": 0,
            "extendedProperties": body.get("extendedProperties", {})}


def _t(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def fake_google(monkeypatch):
    """Run the fake Google for one test and point the Google plugin's endpoints and client at it."""
    server = FakeGoogle()
    server.thread.start()
    monkeypatch.setenv("GOOGLE_CALENDAR_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GOOGLE_CALENDAR_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("GOOGLE_OAUTH_AUTHORIZE_URL", server.url + "/o/oauth2/v2/auth")
    monkeypatch.setenv("GOOGLE_OAUTH_TOKEN_URL", server.url + "/token")
    monkeypatch.setenv("GOOGLE_CALENDAR_API_URL", server.url)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def google_plugin():
    """Load plugins/google_calendar.py by path, as the app does; return its module; unregister it after."""
    import sys

    from asthron import plugins
    from tests.caldav_server import PLUGINS_DIR

    assert plugins.load_folder(str(PLUGINS_DIR), allow=plugins.allowed_names("google_calendar")) == \
        ["google_calendar"]
    yield plugins.pm.get_plugin("google_calendar")
    plugins.unregister("google_calendar")
    sys.modules.pop(f"{plugins.FOLDER_PACKAGE}.google_calendar", None)
