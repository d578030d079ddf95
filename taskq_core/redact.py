"""Hiding secrets wherever configuration is shown or logged."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL_IN_TEXT = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<auth>[^@/\s]*)@", re.I)
MASK = "***"


def redact_url(url: str) -> str:
    """``redis://user:secret@host/0`` -> ``redis://user:***@host/0``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    if parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{host}"
    else:
        # redis://token@host: a lone user part is a password for Redis
        netloc = f"{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask the credentials of every URL inside free text (error messages, log lines)."""

    def mask(m: re.Match[str]) -> str:
        auth = m.group("auth")
        user = auth.split(":", 1)[0] if ":" in auth else ""
        return f"{m.group('scheme')}{user + ':' if user else ''}{MASK}@"

    return _URL_IN_TEXT.sub(mask, text)
