"""docs/configuration.md, generated from the settings model:
``python -m taskq_core.config --markdown [--output FILE]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..settings import Settings, is_secret_field
from .keys import (
    RESERVED_ENV,
    RESERVED_ENV_PREFIXES,
    KeyDoc,
    section_model,
    settings_keys,
)


def _default_text(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


_INTRO = """\
# Configuration

<!-- Generated from taskq_core/settings.py by `python -m taskq_core.config --markdown`;
     tests/config/test_docs.py fails when this file and the model disagree. -->

Every setting of taskq lives in one validated object, `taskq_core.Settings`. Values come
from these sources; a higher one wins, key by key:

1. built-in defaults (below);
2. one configuration file: the file named by `--config` or `TASKQ_CONFIG`, else
   `taskq.toml`, `taskq.yaml` (or `taskq.yml`) in the working directory, else the
   `[tool.taskq]` table of `pyproject.toml` there (two of `taskq.toml` / `taskq.yaml` in one
   directory is an error: keep one);
3. `TASKQ_*` environment variables, nested keys joined by `__`
   (`TASKQ_WORKER__CONCURRENCY=16`); lists and tables are written as JSON
   (`TASKQ_QUEUES='["high","default"]'`);
4. explicit arguments: `TaskQueue.from_config(worker={"concurrency": 4})` and the flags of
   `taskq worker`.

`TaskQueue.from_config(**overrides)` is the one way to build a TaskQueue that reads every
source; the `taskq` commands use it when no `--app` is given. `TaskQueue("redis://...",
**options)` and `TaskQueue(settings=Settings(...))` take only the defaults and their
arguments, so code under test is never changed by a stray variable. When `TASKQ_*`
variables are set all the same, such a TaskQueue warns (`taskq_core.UnusedConfigWarning`,
naming the variables), and `taskq ... --app MODULE:ATTR` prints `warning: TASKQ_... is set
but ignored` for an application built that way
(tests/config/test_unused_env.py).

```toml
# taskq.toml (in pyproject.toml, the same keys go under [tool.taskq] / [tool.taskq.worker])
broker_url = "redis://:s3cret@redis.internal:6379/0"
queues = ["high", "default", "low"]

[worker]
concurrency = 32
```

```yaml
# taskq.yaml
broker_url: redis://:s3cret@redis.internal:6379/0
worker:
  concurrency: 32
```

Validation happens at load. An unknown key, a wrong type or an out-of-range value is an
error (`taskq_core.ConfigurationError`) that names the key, the value, where it came from
(file and line, environment variable, or argument) and what is allowed; every problem is
listed at once:

```text
invalid configuration (2 problems):
  - worker.concurrency = 0 (from taskq.toml, line 5): Input should be greater than or equal
    to 1; allowed: an integer from 1 to 10000
  - worker.lease = 3 (from environment variable TASKQ_WORKER__LEASE): unknown key (did you
    mean 'lease_seconds'?); allowed: keys of worker: concurrency, sync_threads, ...
```

A `TASKQ_*` variable that names no key is an error too (a typo is never silently ignored),
except {reserved}.

Secrets are never shown: the password in `broker_url` (any URL's credentials) and the whole
value of a secret key (one marked secret in the model, or named like a password or token;
the table says which) are replaced by `***` in every repr, log line, error message and
`taskq config show`.

`taskq config show` prints the effective value of every key with its source;
`taskq config check` validates and exits with status 3 listing the problems. It also warns
(exit status 0) about a `rediss://` broker whose certificate is not verified
(`broker.tls_verify = false` or `?ssl_cert_reqs=none`) and a Redis off this machine reached
without a password.

TLS: a `rediss://` `broker_url` connects with TLS, verifying the server's certificate and
host name (`broker.tls_verify`, on by default) against `broker.tls_ca_file` or the system's
CA store; `broker.tls_cert_file` and `broker.tls_key_file` give a client certificate. The
`broker.tls_*` keys with a `redis://` URL are an error. Every Redis client taskq makes
(blocking, asyncio, health probes) gets them. See docs/security.md.
"""


def markdown() -> str:
    """docs/configuration.md: every key with its default, variable, allowed values, meaning."""
    reserved = [f"`{n}`" for n in RESERVED_ENV] + [f"`{p}*`" for p in RESERVED_ENV_PREFIXES]
    intro = _INTRO.replace("{reserved}", ", ".join(reserved[:-1]) + " and " + reserved[-1])
    out = [intro.rstrip("\n")]
    groups: dict[str, list[KeyDoc]] = {}
    for doc in settings_keys():
        groups.setdefault(doc.path[0] if len(doc.path) > 1 else "", []).append(doc)
    for section, docs in groups.items():
        if section:
            info = Settings.model_fields[section]
            model = section_model(info)
            about = (model.__doc__ or "").strip().splitlines() if model else []
            out.append(f"\n## `{section}`\n")
            if about:
                out.append(about[0] + "\n")
        else:
            out.append("\n## Top level\n")
        out.append("| key | default | environment variable | allowed | meaning |")
        out.append("|---|---|---|---|---|")
        for d in docs:
            meaning = d.description
            if is_secret_field(d.path[-1], d.field):
                meaning += " Secret: always shown as `***`."
            cells = [
                f"`{d.key}`",
                f"`{_default_text(d.default)}`",
                f"`{d.env}`",
                d.allowed,
                meaning,
            ]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m taskq_core.config --markdown [--output FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m taskq_core.config")
    parser.add_argument("--markdown", action="store_true", help="print docs/configuration.md")
    parser.add_argument("--output", help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    text = markdown()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


__all__ = ["main", "markdown"]
