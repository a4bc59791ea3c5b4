"""Keep secrets out of messages: one place that redacts text and registers secrets with Airflow.

Example::

    secrets = mask_secrets([conn.password, token])
    raise MyError(redact(f"push to {url} failed: {stderr}", secrets))
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MIN_SECRET_CHARS", "URL_USERINFO_RE", "mask_secrets", "redact", "strip_userinfo", "url_secrets"]

# Shorter values are not replaced: redacting "a" or "no" would garble every message.
MIN_SECRET_CHARS = 3
# `scheme://userinfo@` anywhere in a text (git, DVC and HTTP clients quote URLs in their errors).
URL_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


def _usable(values: Iterable[str | None], min_chars: int = MIN_SECRET_CHARS) -> list[str]:
    """Distinct non-trivial values, longest first (so a secret containing another is replaced whole)."""
    return sorted({v for v in values if v and len(v) >= min_chars}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with each secret, and the userinfo of any URL, replaced by ``***``."""
    for value in _usable(secrets):
        text = text.replace(value, "***")
    return URL_USERINFO_RE.sub(r"\1***@", text)


def strip_userinfo(url: str) -> str:
    """``https://user:pw@host/x`` -> ``https://***@host/x``; paths are returned unchanged."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return url


def url_secrets(url: str) -> list[str]:
    """The secret part of a URL's userinfo: the password, or a bare user name (a token)."""
    parts = urlsplit(url or "")
    if parts.password:
        return [parts.password]
    if parts.username:  # https://TOKEN@host/repo.git: the user name is the token
        return [parts.username]
    return []


def mask_secrets(values: Iterable[str | None]) -> list[str]:
    """Register values with Airflow's secrets masker; returns those registered (longest first).

    Values shorter than Airflow's ``[logging] min_length_masked_secret`` are skipped here: the
    masker would refuse them anyway, with a warning in the task log for each.
    """
    from airflow.sdk.configuration import conf
    from airflow.sdk.log import mask_secret

    usable = _usable(values, conf.getint("logging", "min_length_masked_secret", fallback=5))
    for value in usable:
        mask_secret(value)
    return usable
