"""Django settings for the test suite: SQLite by default, PostgreSQL when CM_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-secret"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The browser tests' live server serves the admin's styles and scripts from the apps' static files.
    "django.contrib.staticfiles",
    "container_manager",
]
STATIC_URL = "static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict[str, object]:
    url = os.environ.get("CM_TEST_DATABASE_URL")
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "test.sqlite3",
            # A file, not memory, so worker subprocesses share the test database (one per session).
            "TEST": {"NAME": str(BASE_DIR / f"test_{os.getpid()}.sqlite3")},
            # A test database need not survive a power cut; WAL lets the worker write while tests read.
            "OPTIONS": {"init_command": "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;"},
        }
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        # One test database per pytest session, so two runs on one server never drop each other's.
        # Worker subprocesses are handed the live name (connection.settings_dict["NAME"]).
        "TEST": {"NAME": f"test_{name}_{os.getpid()}"},
        "USER": parsed.username or "",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
    }


DATABASES = {"default": _database()}

# This machine's dockerd (and CI's) does not remap users, and jobs must run on it: the one setting
# that differs from the defaults. Tests of the requirement turn it on (tests/integration/docker/
# test_user_namespaces.py, against a second engine started with --userns-remap=default).
CONTAINER_MANAGER = {"REQUIRE_USER_NAMESPACES": False}
