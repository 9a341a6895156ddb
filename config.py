"""Settings read from the environment, with safe defaults for the embedded demo."""
import os
from datetime import timedelta

BASE_DIR = os.path.abspath(os.path.dirname(__file__))
INSTANCE_DIR = os.environ.get("ASTHRON_INSTANCE_DIR", os.path.join(BASE_DIR, "instance"))

ASTHRON_ENV = os.environ.get("ASTHRON_ENV", "development")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "DATABASE_URL", "sqlite:///" + os.path.join(INSTANCE_DIR, "asthron.db")
)
SQLALCHEMY_TRACK_MODIFICATIONS = False
REDIS_URL = os.environ.get("REDIS_URL") or None

# Jobs (docs/jobs.md). Without REDIS_URL the web process runs outbox work itself: "thread" (a
# background thread, the default) or "inline" (right after the commit, before the caller returns).
ASTHRON_JOBS_EMBEDDED = os.environ.get("ASTHRON_JOBS_EMBEDDED", "thread")
ASTHRON_JOBS_SWEEP_SECONDS = int(os.environ.get("ASTHRON_JOBS_SWEEP_SECONDS", "30"))
# An enqueued entry no worker has taken after this long is handed to Redis again.
ASTHRON_JOBS_REDELIVER_SECONDS = int(os.environ.get("ASTHRON_JOBS_REDELIVER_SECONDS", "600"))

APP_NAME = "Asthron"
FAB_SECURITY_MANAGER_CLASS = "asthron.security.AsthronSecurityManager"
FAB_INDEX_VIEW = "asthron.views.dashboard.DashboardView"
FAB_ADD_SECURITY_API = False
FAB_API_SWAGGER_UI = False
FAB_UPDATE_PERMS = False  # `flask asthron init` writes permissions, not every start
FAB_CREATE_DB = False  # migrations own the schema; `flask asthron init` creates the roles
AUTH_ROLE_ADMIN = "Operator"
AUTH_ROLE_PUBLIC = "Public"
AUTH_USER_REGISTRATION = False
FAB_PASSWORD_HASH_METHOD = "scrypt"

# Sessions: server-side records make revocation possible; the cookie only carries its id.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = ASTHRON_ENV == "production"
REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
REMEMBER_COOKIE_HTTPONLY = True
REMEMBER_COOKIE_SAMESITE = "Lax"
PERMANENT_SESSION_LIFETIME = timedelta(hours=int(os.environ.get("ASTHRON_SESSION_ABSOLUTE_HOURS", "12")))
ASTHRON_SESSION_IDLE_MINUTES = int(os.environ.get("ASTHRON_SESSION_IDLE_MINUTES", "30"))

WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None

# Login attempts per username and per address; stored in Redis when configured.
ASTHRON_LOGIN_RATE_LIMIT = os.environ.get("ASTHRON_LOGIN_RATE_LIMIT", "5 per minute")
RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
RATELIMIT_HEADERS_ENABLED = True
# Reverse proxies in front of the app (nginx, a load balancer): how many X-Forwarded-For/-Proto hops to
# trust. 0 trusts none; behind a proxy, set it, or every visitor shares the proxy's address (and its limit).
ASTHRON_PROXY_COUNT = int(os.environ.get("ASTHRON_PROXY_COUNT", "0"))

# Visitor API (docs/widget.md): rate limits in the `limits` notation, counted in RATELIMIT_STORAGE_URI.
ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP = os.environ.get("ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP", "20 per minute")
ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION = os.environ.get("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION",
                                                                "20 per minute")
ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP = os.environ.get("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", "60 per minute")
ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE = os.environ.get("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE",
                                                           "600 per minute")
ASTHRON_WIDGET_LIMIT_READS_PER_IP = os.environ.get("ASTHRON_WIDGET_LIMIT_READS_PER_IP", "600 per minute")
# Live streams end after this many seconds (the browser reconnects) and send a keepalive comment meanwhile.
ASTHRON_SSE_MAX_SECONDS = int(os.environ.get("ASTHRON_SSE_MAX_SECONDS", "25"))
ASTHRON_SSE_KEEPALIVE_SECONDS = int(os.environ.get("ASTHRON_SSE_KEEPALIVE_SECONDS", "15"))

# Plugins: a comma-separated allow-list of plugin names; empty means all that are installed.
ASTHRON_PLUGINS = os.environ.get("ASTHRON_PLUGINS", "")
ASTHRON_PLUGINS_DIR = os.environ.get("ASTHRON_PLUGINS_DIR", os.path.join(BASE_DIR, "plugins"))

# Leads: the region (ISO 3166 alpha-2, e.g. "GB") a phone number without a +country code is read in,
# for workspaces whose widget settings name none. Empty: such numbers must carry their country code.
ASTHRON_LEADS_PHONE_REGION = os.environ.get("ASTHRON_LEADS_PHONE_REGION", "").strip().upper()
# Largest CSV file the leads import accepts, in bytes (the admin says so on the form).
ASTHRON_LEAD_IMPORT_MAX_BYTES = int(os.environ.get("ASTHRON_LEAD_IMPORT_MAX_BYTES", str(2 * 1024 * 1024)))
# No request body is read beyond this (Flask answers 413 before parsing): the largest upload is a lead import.
MAX_CONTENT_LENGTH = int(os.environ.get("ASTHRON_MAX_REQUEST_BYTES", str(ASTHRON_LEAD_IMPORT_MAX_BYTES + 64 * 1024)))

# Email notifications (docs/notifications.md). The transport a workspace uses unless its email
# settings name another, that transport's settings (JSON; secrets as {"$env": "VAR"}), the sender
# address used when a workspace sets none, and the admin's public URL for links in emails.
ASTHRON_EMAIL_TRANSPORT = os.environ.get("ASTHRON_EMAIL_TRANSPORT", "outbox")
ASTHRON_EMAIL_TRANSPORT_SETTINGS = os.environ.get("ASTHRON_EMAIL_TRANSPORT_SETTINGS", "{}")
ASTHRON_EMAIL_FROM_ADDRESS = os.environ.get("ASTHRON_EMAIL_FROM_ADDRESS", "notifications@asthron.localhost")
ASTHRON_BASE_URL = os.environ.get("ASTHRON_BASE_URL", "http://127.0.0.1:5000")

# Calendar sync (docs/calendar.md). ASTHRON_ENCRYPTION_KEY is a Fernet key (`python -c "from
# cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`) that encrypts stored
# OAuth tokens; unset, one is derived from SECRET_KEY (then a new SECRET_KEY disconnects calendars).
ASTHRON_ENCRYPTION_KEY = os.environ.get("ASTHRON_ENCRYPTION_KEY", "")
ASTHRON_ENCRYPTION_KEY_PREVIOUS = os.environ.get("ASTHRON_ENCRYPTION_KEY_PREVIOUS", "")  # while rotating
# How far ahead busy times are read, how often, and how far back the private feed lists bookings.
# Computed free slots are kept in Redis this long, and dropped at once when availability changes
# (docs/booking.md); 0 turns the cache off. Without REDIS_URL there is no cache.
ASTHRON_SLOTS_CACHE_SECONDS = int(os.environ.get("ASTHRON_SLOTS_CACHE_SECONDS", "120"))
ASTHRON_CALENDAR_BUSY_DAYS = int(os.environ.get("ASTHRON_CALENDAR_BUSY_DAYS", "60"))
ASTHRON_CALENDAR_REFRESH_MINUTES = int(os.environ.get("ASTHRON_CALENDAR_REFRESH_MINUTES", "15"))
ASTHRON_CALENDAR_FEED_PAST_DAYS = int(os.environ.get("ASTHRON_CALENDAR_FEED_PAST_DAYS", "30"))
