"""Hiding secrets wherever configuration is shown or logged.

A broker URL carries credentials in three places, all masked here:

* the userinfo: ``redis://user:secret@host`` -> ``redis://user:***@host``; a lone user part
  (``redis://token@host``) is masked whole, since some servers take it as a password;
* query parameters that name a credential (``?password=...``, ``ssl_password``, any name
  containing ``pass``, ``secret``, ``token``, ``credential``, ``auth`` or ``key``);
* an unencoded reserved character in a password (``redis://:pa/ss@host``, ``:p@ss@host``,
  ``:p?ss@host``, ``:p#ss@host``): URL parsers (``urllib``, so redis-py) end the userinfo
  at the first ``/ ? #`` and at the last ``@``, so the rest of such a password would show in
  the path or query. Everything up to the last ``@`` of the URL is taken as userinfo, which
  may hide a path with an ``@`` in it but never shows a credential.
"""

from __future__ import annotations

import re

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


def redact_url(url: str) -> str:
    """``url`` with every credential masked (see the module docstring); other text as it is."""
    m = _SCHEME.match(url)
    if m is None:
        return redact_text(url)
    scheme, rest = m.group(0), url[m.end() :]
    at = rest.rfind("@")
    if at >= 0:
        auth, rest = rest[:at], rest[at + 1 :]
        user, colon, _password = auth.partition(":")
        if colon and user and not re.search(r"[/?#@]", user):
            scheme += f"{user}:{MASK}@"
        else:
            scheme += f"{MASK}@"
    # the query of what is left (the host, port, path and parameters)
    path, q, query = rest.partition("?")
    if q:
        query, h, fragment = query.partition("#")
        rest = f"{path}?{_redact_query(query)}{h}{fragment}"
    return scheme + rest


def redact_text(text: str) -> str:
    """Mask the credentials of every URL inside free text (error messages, log lines), and
    the values of ``password=...`` style assignments."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _SECRET_ASSIGNMENT.sub(lambda m: m.group("name") + MASK, text)
