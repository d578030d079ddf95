"""Message signing: HMAC-SHA256 over the whole envelope, so that only holders of a key
can put a task that runs into the broker.

Off by default. On when ``security.signing_keys`` names at least one key (key id ->
secret)::

    [security.signing_keys]
    "2026-12" = "a secret of at least 16 characters"   # the first signs
    "2026-06" = "the previous secret"                   # any verifies

The signature is the envelope's ``sig`` field, ``"<key id>:<hex digest>"``. It covers every
other field (task name, queue, id, arguments, options, enqueue time, attempt, due time,
headers, trace) as canonical bytes: the object without ``sig``, keys sorted at every level,
as :mod:`orjson` writes it. The producer signs the object it is about to send; a worker
parses the message and re-serialises the same object the same way, so the bytes match
whatever key order or spacing a message was stored with. A retry rewrites attempt, due
time and headers, and is signed again by the worker (the supervisor's hard time limit path
too); a dead-lettered task retried from the dead-letter queue keeps its message and its
signature.

A worker with signing on refuses, before anything of the message is used: a message
without ``sig``, one signed with a key id it does not have, and one whose digest does not
match. Each is dead-lettered with reason ``signature`` (error type ``BadSignature``),
counted in the queue's ``bad_signature`` counter and raises the ``bad_signature`` alert.
Rotation: add the new key first in the list on every worker (it verifies both), then on
the producers; remove the old key once no message signed with it is left.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from .message import RELEASE_FIELD, SIG_FIELD, UNSIGNED, BadMessage

_CANONICAL = orjson.OPT_SORT_KEYS


class BadSignature(BadMessage):
    """A message refused by signature verification (missing, unknown key id, mismatch).

    Its text says which check failed, never a secret or the expected digest."""


def canonical(d: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: ``d`` without ``sig`` (nor what the broker adds to a
    released workflow step, ``wf_in``: see message.py), keys sorted at every level."""
    if SIG_FIELD in d or RELEASE_FIELD in d:
        d = {k: v for k, v in d.items() if k not in UNSIGNED}
    return orjson.dumps(d, option=_CANONICAL)


def _mac(keyed: hmac.HMAC, data: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(data)
    return mac.digest()


class Signer:
    """Signs with the first key, verifies with any of them.

    ``keys`` maps key ids to secrets (text, used as UTF-8 bytes), in order of preference.
    """

    __slots__ = ("_keys", "_sign_id", "_sign_mac")

    def __init__(self, keys: Mapping[str, str | bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        # each key's HMAC keyed once; a message's MAC starts from a copy of it (cheaper than
        # keying again for each message)
        self._keys = {
            kid: hmac.new(
                secret.encode() if isinstance(secret, str) else bytes(secret),
                digestmod=hashlib.sha256,
            )
            for kid, secret in keys.items()
        }
        self._sign_id = next(iter(self._keys))
        self._sign_mac = self._keys[self._sign_id]

    def __repr__(self) -> str:
        # key ids only: the secrets never reach a repr, a log line or an error
        return f"Signer(key_ids={list(self._keys)})"

    @property
    def key_id(self) -> str:
        """The id of the key that signs."""
        return self._sign_id

    def signature(self, d: Mapping[str, Any]) -> str:
        """The ``sig`` value of the envelope ``d`` (its own ``sig`` ignored)."""
        return f"{self._sign_id}:{_mac(self._sign_mac, canonical(d)).hex()}"

    def sign(self, d: dict[str, Any]) -> dict[str, Any]:
        """Set ``d["sig"]``, replacing any signature it had; returns ``d``."""
        d[SIG_FIELD] = self.signature(d)
        return d

    def verify(self, d: Mapping[str, Any]) -> None:
        """Raise :class:`BadSignature`, naming the check that failed, unless ``d`` carries a
        valid signature by one of the keys."""
        sig = d.get(SIG_FIELD)
        if sig is None:
            raise BadSignature("message is not signed (signing is on: security.signing_keys)")
        if type(sig) is not str:
            raise BadSignature("message field 'sig' is not a string")
        kid, sep, hex_digest = sig.partition(":")
        try:
            given = bytes.fromhex(hex_digest) if sep and len(hex_digest) == 64 else b""
        except ValueError:
            given = b""
        if len(given) != 32:
            raise BadSignature("message field 'sig' is not '<key id>:<64 hex digits>'")
        keyed = self._keys.get(kid)
        if keyed is None:
            raise BadSignature(
                f"message is signed with key id {kid[:64]!r}, which is not in security.signing_keys"
            )
        try:
            data = canonical(d)
        except (TypeError, orjson.JSONEncodeError):  # nested too deep to write back
            raise BadSignature("message cannot be written as canonical bytes") from None
        if not hmac.compare_digest(_mac(keyed, data), given):
            raise BadSignature(
                f"signature does not match the message (key id {kid!r}): it was changed "
                "after signing, or signed with another secret"
            )
