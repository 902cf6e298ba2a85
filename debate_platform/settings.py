"""Settings, all overridable from the environment.

Defaults are the embedded demo: SQLite and Celery's filesystem broker under
``var/``, so one machine with only Python runs everything. Production sets
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis); see docker-compose.yml.
"""

import subprocess
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import envbool, envint, envrate, envstr, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# Recorded in every experiment's provenance at launch (judging.services.experiment_launch).
PLATFORM_VERSION = "0.2.0.dev0"
# The exact code: set PLATFORM_COMMIT where the tree has no .git (a Docker image); else read from git.
PLATFORM_COMMIT = envstr("PLATFORM_COMMIT", "")
if not PLATFORM_COMMIT and (BASE_DIR / ".git").exists():
    try:
        PLATFORM_COMMIT = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git installed: the version alone is recorded
        PLATFORM_COMMIT = ""
VAR_DIR = Path(envstr("DEBATE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DJANGO_DEBUG", False)
# The key signs sessions and password-reset links: never a public default. It comes from DJANGO_SECRET_KEY, or
# from the file DJANGO_SECRET_KEY_FILE (default var/secret_key, which `python3 dev.py demo` generates once and
# keeps); with neither, only DEBUG may run (on a key anyone can read); otherwise the platform refuses to start.
SECRET_KEY = secret_key(debug=DEBUG, key_file=Path(envstr("DJANGO_SECRET_KEY_FILE", str(VAR_DIR / "secret_key"))))
ALLOWED_HOSTS = envstr("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in envstr("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# ------------------------------------------------------- HTTPS (README, "Security settings") ----
# Off by default, so the demo runs on plain http://127.0.0.1; docker-compose.yml turns each on, for a
# deployment behind a TLS-terminating proxy.
# Session and CSRF cookies only over HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", False)
# Plain-HTTP requests are redirected to HTTPS.
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", False)
# Strict-Transport-Security: browsers use only HTTPS for this long (0: no header).
SECURE_HSTS_SECONDS = envint("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips a client's own): a request is
# secure when that header says https. Never turn this on where clients reach the server directly.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if envbool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "debate_platform",  # its ready(): the user cache's invalidation (debate_platform/auth.py), in every process
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",  # login throttling and lockout (see AXES_* below)
    "audit",  # the researchers' audit log (audit/)
    "judging",
    "generation",
    "results",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below WhiteNoise, so static files keep their caching: every page and JSON reply is no-store.
    "debate_platform.security.NoStoreMiddleware",
    "debate_platform.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last (django-axes' instructions): turns a locked-out login into the lockout reply.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "debate_platform.urls"
WSGI_APPLICATION = "debate_platform.wsgi.application"
ASGI_APPLICATION = "debate_platform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        # Persistent connections (checked before reuse): opening a PostgreSQL connection per request was
        # 40-50% of a live page's database time (issue 12's load test). 0 closes them after each request.
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# Served by an ASGI server (debate_platform/asgi.py sets DEBATE_ASGI; gunicorn.conf.py's uvicorn workers): Django
# runs each request's synchronous code in a thread of its own, so a connection kept by a thread (CONN_MAX_AGE)
# would be one per request; PostgreSQL connections come from a pool per process instead.
ASGI = envbool("DEBATE_ASGI", False)
# Requests a web process serves at once (debate_platform.concurrency): this many threads for ordinary requests, and
# as many streams being opened; the rest wait. Twice this, plus the three connections of each process's live change
# feed (judging/live_stream.py), must stay within the pool's.
ASGI_REQUESTS_AT_ONCE = envint("DEBATE_ASGI_REQUESTS_AT_ONCE", 2)
if ASGI and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool requires it: a connection goes back at a request's end
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DATABASE_POOL_MIN", 2),
        "max_size": envint("DATABASE_POOL_MAX", 16),
        "timeout": 10,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to the same file: wait for locks
    # instead of failing at once, and take the write lock when a transaction
    # starts (SQLite has no SELECT ... FOR UPDATE), so concurrent submits queue.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# ------------------------------------------- Abuse resistance (README, "Security settings") ----
# django-axes counts failed logins (the judge login, the admin login and HTTP Basic on the export URL: all
# authenticate with the request) and refuses a username or an address after DEBATE_LOGIN_FAILURE_LIMIT failures
# until DEBATE_LOGIN_COOLOFF_MINUTES have passed since the last one, the right password included. A researcher
# unlocks from the admin (Axes > Access attempts: delete the attempt) or with `manage.py axes_reset_username NAME`.
# The second backend checks passwords and reads each request's user (set below, with the cache).
AXES_FAILURE_LIMIT = envint("DEBATE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("DEBATE_LOGIN_COOLOFF_MINUTES", 15))
# Each entry locks on its own: a username (from any address) and an address (whatever usernames it tries).
# Many judges behind one NAT may want "username" alone. Combinations: "username+ip_address".
AXES_LOCKOUT_PARAMETERS = [
    p.split("+") if "+" in p else p for p in envstr("DEBATE_LOGIN_LOCKOUT_BY", "username,ip_address").split(",") if p
]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets that user's earlier failures
AXES_LOCKOUT_CALLABLE = "debate_platform.security.lockout_response"
# Behind DEBATE_PROXY_COUNT proxies the client's address is read from X-Forwarded-For (else every judge would
# share the proxy's address); 0: REMOTE_ADDR, where clients reach gunicorn directly.
PROXY_COUNT = envint("DEBATE_PROXY_COUNT", 0)
AXES_IPWARE_PROXY_COUNT = PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if PROXY_COUNT else ("REMOTE_ADDR",)

# Per-judge rate limits (judging/ratelimit.py): at most N posts per window of S seconds, "N/S". Beyond it the
# judge's page shows a 429 message saying how long to wait. Counted in the cache below.
RATE_LIMITS = {
    "move": envrate("DEBATE_RATE_LIMIT_MOVES", "30/60"),  # live moves: ask, continue, end, lean
    "verdict": envrate("DEBATE_RATE_LIMIT_VERDICTS", "10/60"),  # verdict posts, accepted or refused
    "join": envrate("DEBATE_RATE_LIMIT_JOINS", "60/600"),  # joins by invite links, per address (docs/recruitment.md)
}
# The cache holds the rate-limit counters: shared by every web process only in Redis (DJANGO_CACHE_URL=redis://
# ...; docker-compose sets it). The default, memory, is per process: right for the demo's single process.
_cache_url = envstr("DJANGO_CACHE_URL", "locmem://")
CACHES = {
    "default": (
        {"BACKEND": "debate_platform.cache.RedisCache", "LOCATION": _cache_url}
        if _cache_url.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Sessions read from the cache (written through to the database) where the cache is shared, so a live
# page's polls skip the session query; with a per-process cache a logout in one web process would not
# reach another's copy, so sessions then stay in the database.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if CACHES["default"]["BACKEND"].endswith("RedisCache")
    else "django.contrib.sessions.backends.db"
)
# Each request's user read from the cache too where it is shared (debate_platform/auth.py: dropped from it
# whenever the user is saved, else kept USER_CACHE_SECONDS); with a per-process cache, from the database (0).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password is checked
    "debate_platform.auth.CachedModelBackend",  # Django's ModelBackend, the user of each request cached
]
USER_CACHE_SECONDS = (
    envint("DEBATE_USER_CACHE_SECONDS", 60) if CACHES["default"]["BACKEND"].endswith("RedisCache") else 0
)

# Content-Security-Policy (django-csp): scripts only from this site's own files, never inline or eval; no
# plugins, frames or foreign form targets. The researchers' admin and results pages also allow inline styles
# (admin list colours, the analysis plots' SVG): debate_platform.security.ContentSecurityPolicyMiddleware.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "judging:queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only where collectstatic is run (production images); unset, nothing is collected.
STATIC_ROOT = envstr("DJANGO_STATIC_ROOT", "") or None
# Serve app static files (admin) straight from the finders: no collectstatic
# step for the demo; production may still run collectstatic.
WHITENOISE_USE_FINDERS = True

# ---------------------------------------------------------------- Celery ----
# Embedded default: kombu's filesystem transport. It needs no server, works
# across processes on one machine, and keeps messages on disk, so the demo's
# web process and worker share a queue with nothing else installed. Anything
# larger sets CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
_broker_dir = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir.mkdir(parents=True, exist_ok=True)  # the transport does not create its folder
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # control_folder defaults to ./control, which would litter the working directory.
    {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600)}
)
# Results live in the database (turns, trials); Celery keeps none.
CELERY_TASK_IGNORE_RESULT = True
# A model worker takes one task at a time and acknowledges it only when done:
# a worker killed mid-batch gets its task redelivered, and the conditional
# claim on each turn keeps the redelivery from writing twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Below the Redis visibility timeout, so a task is never redelivered while it still runs.
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 1800)
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With `celery beat` running (docker-compose does), unfinished work is
# re-sent periodically: the database, not the broker, says what is pending.
CELERY_BEAT_SCHEDULE = {
    "reconcile-generation": {
        "task": "generation.tasks.reconcile_generation",
        "schedule": float(envint("DEBATE_RECONCILE_SECONDS", 300)),
    },
}

# ------------------------------------------------------- Model generation ----
# Where bundled models are converted to (once) and cached.
MODEL_CACHE_DIR = Path(envstr("DEBATE_MODEL_CACHE_DIR", str(VAR_DIR / "models")))
# How many turns a worker generates together (best-of-N candidates run as extra rows of the batch).
GENERATION_BATCH_SIZE = envint("DEBATE_GENERATION_BATCH_SIZE", 8)
# Turns of live trials a worker writes beyond its batch: a judge waits on each, so a live turn takes one of these
# rows (before pausing a pre-generated one) rather than wait for a live turn to finish. Pre-generated turns never
# take them. The worker's most rows: (batch + these) times best-of-N.
GENERATION_LIVE_TURNS_BEYOND_BATCH = envint("DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH", 8)
if GENERATION_BATCH_SIZE < 1 or GENERATION_LIVE_TURNS_BEYOND_BATCH < 0:
    raise ImproperlyConfigured(
        f"DEBATE_GENERATION_BATCH_SIZE ({GENERATION_BATCH_SIZE}) must be at least 1 and "
        f"DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH ({GENERATION_LIVE_TURNS_BEYOND_BATCH}) at least 0"
    )
# A turn claimed longer ago than this (its worker presumably died) is put back
# to pending by the reconciler.
STALE_CLAIM_SECONDS = envint("DEBATE_STALE_CLAIM_SECONDS", 1800)
# A worker's generation session refreshes the claims it holds this often (seconds), from a thread of its own
# (generation/heartbeat.py), so a claim that stops being refreshed means its worker died.
CLAIM_HEARTBEAT_SECONDS = envint("DEBATE_CLAIM_HEARTBEAT_SECONDS", 2)
# A live trial's turn (a judge is waiting) whose claim was not refreshed for this long is released as a dead
# worker's (the attempt counted) and generated again: by the judge's own polling of the trial page, within
# seconds, and by the reconciler. Far above the heartbeat, so a busy machine never trips it (a false release
# costs an attempt; the old session's writes are refused by its claim token).
LIVE_DEAD_CLAIM_SECONDS = envint("DEBATE_LIVE_DEAD_CLAIM_SECONDS", 15)
if envstr("DEBATE_LIVE_STALE_CLAIM_SECONDS", ""):  # removed: ignoring it would silently change the timing
    raise ImproperlyConfigured(
        "DEBATE_LIVE_STALE_CLAIM_SECONDS (minutes before a live turn's claim was released) is replaced by "
        "DEBATE_LIVE_DEAD_CLAIM_SECONDS (seconds without a worker's heartbeat, default 15): unset it"
    )
if CLAIM_HEARTBEAT_SECONDS < 1 or LIVE_DEAD_CLAIM_SECONDS < 5 * CLAIM_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"DEBATE_LIVE_DEAD_CLAIM_SECONDS ({LIVE_DEAD_CLAIM_SECONDS}) must be at least 5 times "
        f"DEBATE_CLAIM_HEARTBEAT_SECONDS ({CLAIM_HEARTBEAT_SECONDS}, at least 1): a claim missing only a beat or "
        "two belongs to a busy worker, not a dead one"
    )
# OpenAI-compatible servers: per-request timeout and retries (with exponential backoff).
OPENAI_TIMEOUT_SECONDS = envint("DEBATE_OPENAI_TIMEOUT_SECONDS", 120)
OPENAI_MAX_RETRIES = envint("DEBATE_OPENAI_MAX_RETRIES", 4)
# "auto" = CUDA when the worker process sees a GPU, else CPU.
GENERATION_DEVICE = envstr("DEBATE_GENERATION_DEVICE", "auto")
# Static KV cache, which lets generate() compile its decoding step: "off" (default), "auto" (on CUDA
# only) or "on". It pays where batch shapes repeat; every new shape recompiles (~30 s for an 8B model),
# so measure with benchmarks/gpu_generation.py before turning it on for a workload.
GENERATION_STATIC_CACHE = envstr("DEBATE_GENERATION_STATIC_CACHE", "off")
# Continuous batching (inference/continuous.py): turns join a worker's running batch
# between decoding steps, so a live judge's question never waits for a whole batch. Off: padded
# batches through generate(), which can use the static cache above.
GENERATION_CONTINUOUS = envbool("DEBATE_GENERATION_CONTINUOUS", True)
# Prompt tokens one continuous-batching prefill takes at most (at least one request): when many
# turns arrive at once, the first start writing sooner. Larger suits a GPU, where prefill is cheap.
GENERATION_PREFILL_TOKENS = envint("DEBATE_GENERATION_PREFILL_TOKENS", 2048)
# A prompt longer than that is prefilled in chunks of this many tokens, one per step, taking turns with
# the running rows' decoding; a judge's question waits for at most one chunk (docs/limits.md).
GENERATION_PREFILL_CHUNK_TOKENS = envint("DEBATE_GENERATION_PREFILL_CHUNK_TOKENS", 512)
# The chunks of pre-generated prompts while live debates are under way on the worker (a live turn came in the
# last 5 minutes): a judge's question waits for the chunk being run, so smaller ones (docs/limits.md; 64 rather
# than 128 brought a question beside a 170k-character passage from 2.2x to 1.4x idle: docs/benchmarks.md).
GENERATION_PREFILL_CHUNK_TOKENS_BESIDE_LIVE = envint("DEBATE_GENERATION_PREFILL_CHUNK_TOKENS_BESIDE_LIVE", 64)
# Pre-generated prompts longer than one prefill run in a batch of their own, the long lane (inference/lanes.py), so
# live rows do not attend over a long passage's padding at every step (on two CPU cores a live token every 59 ms
# instead of 187 ms beside a 7,500-token row: docs/benchmarks.md). Off: one batch. The price is a second forward
# pass per token while both lanes run; benchmarks/gpu_generation.py measures both and recommends one for a GPU.
GENERATION_LONG_LANE = envbool("DEBATE_GENERATION_LONG_LANE", True)
# Memory (MB) a worker keeps per local model for recent prompts' key/value caches, so that a debater's next
# round prefills only its new text (inference/prefix_cache.py); 0 turns prefix reuse off. SmolLM2-135M
# needs ~46 KB a token in float32 (1 GB: ~22k tokens); an 8B Llama in bf16 128 KB.
GENERATION_PREFIX_CACHE_MB = envint("DEBATE_GENERATION_PREFIX_CACHE_MB", 1024)
# A worker's generation task hands over to a fresh task after this long (seconds), so no task runs
# near the broker's visibility timeout however long an experiment keeps it busy.
GENERATION_SESSION_SECONDS = envint("DEBATE_GENERATION_SESSION_SECONDS", 600)
# Local models a worker keeps loaded per device (a debater, its best-of-N scorer and an adversary: 3); the
# least recently used is dropped when another must load, and loaded again if it is needed again.
MODELS_PER_DEVICE = envint("DEBATE_MODELS_PER_DEVICE", 3)

# Active time (docs/throughput.md, "What counts as active"): while the trial page is visible and the judge
# has done something (pointer, key, scroll, selection, touch) within JUDGE_IDLE_SECONDS, the page sends a
# heartbeat every JUDGE_BEAT_SECONDS and the server adds the time since the previous one by its own clock.
# Five minutes without input still count: a judge reads a whole transcript (about 750 words at the default
# limits: 3 minutes at 250 words a minute) and then weighs it, touching nothing; one minute (the old window)
# cut real reading short. Longer without any input, the judge has more likely gone.
JUDGE_IDLE_SECONDS = envint("DEBATE_JUDGE_IDLE_SECONDS", 300)
JUDGE_BEAT_SECONDS = envint("DEBATE_JUDGE_BEAT_SECONDS", 15)
# A live trial's page follows a stream of server-sent events (judging/live_stream.py) instead of polling every
# 0.4 s: on where the web server is an ASGI server (above), off under WSGI, where a held stream takes a worker.
LIVE_PUSH = envbool("DEBATE_LIVE_PUSH", ASGI)
# How often each web process's change feed reads the trials its live pages follow (one query for all of them).
LIVE_FEED_TICK_SECONDS = float(envstr("DEBATE_LIVE_FEED_TICK_SECONDS", "0.25"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("DJANGO_LOG_LEVEL", "INFO")},
}
