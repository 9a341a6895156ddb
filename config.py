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
