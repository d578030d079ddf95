"""Checks a long-running process makes before it starts work.

A worker whose Redis password is wrong, or whose ACL user may not run taskq's commands,
would otherwise log the same broker error every second for ever (and under the
supervisor, be restarted for ever). :func:`check_broker` turns those refusals into one
:class:`~taskq_core.errors.BrokerRefused` at start-up, which the CLI reports with exit code
4. A broker that cannot be reached at all is left to the worker, which waits for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from .errors import BrokerRefused
from .redact import redact_text, redact_url

if TYPE_CHECKING:
    from .app import TaskQueue
    from .brokers.redis import RedisBroker

#: seconds the start-up check waits for Redis
CHECK_TIMEOUT = 5.0
#: the exit code of a refused worker (``taskq worker``'s code for the broker, docs/cli.md)
REFUSED_EXIT = 4


def check_broker(app: TaskQueue) -> None:
    """Raise :class:`BrokerRefused` if Redis refuses the credentials of ``app``'s broker, or
    refuses its user the commands a worker needs (loading taskq's scripts); otherwise (also
    when Redis cannot be reached) return."""
    from .brokers.cluster import is_cluster_url
    from .brokers.redis import RedisBroker

    broker = app.broker
    if not isinstance(broker, RedisBroker):
        return
    where = redact_url(broker.url)
    probe = broker.probe(CHECK_TIMEOUT)
    try:
        probe.client.ping()
        # the scripts every state change runs; EVALSHA of a loaded script needs the same
        # ACL category (@scripting), so a user refused here could settle nothing
        probe.load_scripts()
    except AuthenticationError as exc:
        raise BrokerRefused(
            f"Redis at {where} refused the credentials: {redact_text(str(exc))} "
            "(check the user name and password of broker_url)"
        ) from None
    except NoPermissionError as exc:
        raise BrokerRefused(
            f"Redis at {where} refused a command to this user: {redact_text(str(exc))} "
            "(see the ACL in docs/security.md)"
        ) from None
    except RedisError:
        return  # not reachable now: the worker retries as it always does
    if not is_cluster_url(broker.url) and _cluster_enabled(probe):
        raise BrokerRefused(
            f"Redis at {where} is a Redis Cluster node: name the Cluster with a "
            "redis+cluster://host:port,... URL (a redis:// URL reaches one node, which "
            "refuses every key of a slot it does not hold; docs/scaling.md)"
        )


def _cluster_enabled(probe: RedisBroker) -> bool:
    try:
        info = probe.client.info("cluster")
    except RedisError:  # refused to this user, or gone: nothing known
        return False
    return bool(int(info.get("cluster_enabled", 0) or 0))


def check_broker_or_exit(app: TaskQueue) -> None:
    """:func:`check_broker` for a command that starts a worker outside taskq's CLI (``flask
    taskq worker``, ``manage.py taskq_worker``): a refusal prints the line ``taskq worker``
    prints and exits with the same code, :data:`REFUSED_EXIT`."""
    try:
        check_broker(app)
    except BrokerRefused as exc:
        # the text is built from redacted parts already; redacted again as every error line
        print(f"error: {redact_text(str(exc))}", file=sys.stderr, flush=True)
        raise SystemExit(REFUSED_EXIT) from None
