"""Hiding secrets wherever configuration is shown or logged.

A broker URL carries credentials in three places, all masked here:

* the userinfo: ``redis://user:secret@host`` -> ``redis://user:***@host``; a lone user part
  (``redis://token@host``) is masked whole, since some servers take it as a password;
* query parameters that name a credential (``?password=...``, ``ssl_password``, any name
  containing ``pass``, ``secret``, ``token``, ``credential``, ``auth`` or ``key``);
* an unencoded reserved character in a password (``redis://:pa/ss@host``, ``:p@ss@host``,
  ``:p?ss@host``, ``:p#ss@host``): URL parsers (``urllib``, so redis-py) end the host part
  at the first ``/ ? #`` and the userinfo at the last ``@`` before it, so the rest of such a
  password would show in the path or query. When an ``@`` follows the host part anywhere
  but in the value of a credential parameter (``?password=a@b``), everything up to the last
  ``@`` is taken as userinfo: that may hide a harmless ``?client_name=a@b`` too, but never
  shows a credential.

Log records of the ``taskq`` loggers are masked as they are created
(:func:`install_log_redaction`), so every handler gets them masked, whoever configured it.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

MASK = "***"
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*://", re.I)
#: a URL in free text: its scheme, then everything up to white space
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.\-]*://\S+", re.I)
#: query parameter names whose values are credentials
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|credential|auth|key", re.I)
#: ``password=...`` / ``'password': '...'`` outside a URL (a client's keyword arguments)
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>\b\w*(?:password|passwd|secret)\w*\b['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<value>[^\s'\",&})\]]+)",
    re.I,
)


def _redact_query(query: str) -> str:
    """``a=1&password=x`` -> ``a=1&password=***``."""
    out = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        out.append(f"{name}={MASK}" if eq and _SECRET_PARAM.search(name) else part)
    return "&".join(out)


def _stray_at(tail: str) -> bool:
    """True if ``tail`` (what follows the host) holds an ``@`` that is not inside the value
    of a credential parameter: then it ends a password that holds an unencoded ``/ ? #``."""
    path, _, rest = tail.partition("?")
    query, _, fragment = rest.partition("#")
    if "@" in path or "@" in fragment:
        return True
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if "@" in part and not (eq and "@" not in name and _SECRET_PARAM.search(name)):
            return True
    return False


#: where a credential parameter's value starts: ``?password=`` / ``&token=``
_SECRET_VALUE_START = re.compile(r"[?&]([^=&?#]*)=")


def _userinfo_end(rest: str) -> int:
    """The ``@`` that ends the userinfo of ``rest`` (the URL after its scheme) when the
    password holds unencoded ``/ ? #``: the last one that is not inside the value of a
    credential parameter (``?password=p@ss``, whose ``@`` would cut the password in two)."""
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) > 0:
        before = rest[:at]
        starts = [m for m in _SECRET_VALUE_START.finditer(before) if _SECRET_PARAM.search(m[1])]
        if not starts or "&" in before[starts[-1].end() :]:
            return at
    return rest.rfind("@")


def _mask_userinfo(auth: str) -> str:
    user, colon, _password = auth.partition(":")
    if colon and user and not re.search(r"[/?#@]", user):
        return f"{user}:{MASK}@"
    return f"{MASK}@"


def redact_url(url: str) -> str:
    """``url`` with every credential masked (see the module docstring); other text as it is."""
    m = _SCHEME.match(url)
    if m is None:
        return redact_text(url)
    scheme, rest = m.group(0), url[m.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if _stray_at(tail):
        # a password with an unencoded / ? or #: everything up to the last @ that is not in
        # a credential parameter's value is userinfo
        at = _userinfo_end(rest)
        scheme += _mask_userinfo(rest[:at])
        rest = rest[at + 1 :]
    elif "@" in authority:
        at = authority.rfind("@")
        scheme += _mask_userinfo(authority[:at])
        rest = authority[at + 1 :] + tail
    path, q, query = rest.partition("?")
    if q:
        query, h, fragment = query.partition("#")
        # a connection URL's fragment means nothing, but an unencoded # in a password
        # parameter's value starts one: it may be the rest of that password
        rest = f"{path}?{_redact_query(query)}{h}{MASK if fragment else ''}"
    return scheme + rest


def redact_text(text: str) -> str:
    """Mask the credentials of every URL inside free text (error messages, log lines), and
    the values of ``password=...`` style assignments."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _SECRET_ASSIGNMENT.sub(lambda m: m.group("name") + MASK, text)


# -- log records


def redact_record(record: logging.LogRecord) -> None:
    """Mask credentials in ``record`` itself: its message (arguments merged in, so that no
    handler can format them unmasked), its traceback and its stack."""
    try:
        message = record.getMessage()
    except Exception:
        return  # a bad format string: the handler reports it, as logging does
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        # Formatter.format uses exc_text when set, so the traceback is only shown masked
        record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)))
        record.exc_text = record.exc_text.rstrip("\n")
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


class _RedactingRecordFactory:
    """The log record factory, wrapped: records of the ``taskq`` loggers are redacted as they
    are created, before any filter, handler or formatter sees them."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if record.name == "taskq" or record.name.startswith("taskq."):
            redact_record(record)
        return record


def install_log_redaction() -> None:
    """Redact every record of the ``taskq`` loggers at creation (done when taskq_core is
    imported; idempotent).

    Not a handler's formatter nor a filter on the ``taskq`` logger: an application adds its
    own handlers (Django's ``LOGGING``, ``logging.basicConfig``), and a logger's filters do
    not see its children's records (``taskq.worker``), so both would let lines through
    unmasked. A factory set later with ``logging.setLogRecordFactory`` must call the one it
    replaces (``logging.getLogRecordFactory()``), as the logging documentation asks.
    """
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))
