"""The settings object: one validated model for every knob taskq has.

Sources, lowest precedence first: built-in defaults < ``taskq.toml`` / ``taskq.yaml`` /
``[tool.taskq]`` in ``pyproject.toml`` < ``TASKQ_*`` environment variables (nested keys
with ``__``, e.g. ``TASKQ_WORKER__CONCURRENCY=16``) < explicit arguments.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .redact import MASK, redact_text, redact_url
from .validation import MAX_QUEUE_NAME, check_capability, check_queue_name, check_url_userinfo

#: set by config.load_settings: builds the file sources below the environment
EXTRA_SOURCES: ContextVar[
    Callable[[type[BaseSettings]], tuple[PydanticBaseSettingsSource, ...]] | None
] = ContextVar("taskq_extra_sources", default=None)


#: ids of the live Settings objects that config.load made (see Settings.from_config)
_FROM_CONFIG: set[int] = set()

#: names of settings whose whole value is a secret (tokens, passwords); URL-valued settings
#: keep their shape and lose only their credentials
_SECRET_NAME = re.compile(r"password|passwd|secret|token|api_?key|credential|signing_keys", re.I)


def is_secret_field(name: str, field: FieldInfo | None = None) -> bool:
    """True for a setting whose value must never be shown: a ``SecretStr``, a field marked
    ``json_schema_extra={"secret": True}``, or one named like a password or token."""
    if field is not None:
        if field.annotation in (SecretStr, SecretBytes):
            return True
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret") is True:
            return True
    return bool(_SECRET_NAME.search(name))


def redact_setting(name: str, value: Any, field: FieldInfo | None = None) -> Any:
    """``value`` of the setting ``name`` as it may be shown: secrets masked, URL credentials
    removed (recursively through lists and tables)."""
    if value is None or value == "":
        return value
    if is_secret_field(name, field) or isinstance(value, SecretStr | SecretBytes):
        # a table of secrets (security.signing_keys) keeps its key ids, not their secrets
        return {str(k): MASK for k in value} if isinstance(value, dict) else MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [redact_setting(name, v) for v in value]
    if isinstance(value, dict):
        return {k: redact_setting(str(k), v) for k, v in value.items()}
    return value


def _redacted_repr_args(model: BaseModel, args: Any) -> Any:
    fields = type(model).model_fields
    for name, value in args:
        if isinstance(value, BaseModel) or name is None:
            yield name, value
        else:
            yield name, redact_setting(name, value, fields.get(name))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __repr_args__(self) -> Any:
        return _redacted_repr_args(self, super().__repr_args__())


class BrokerSettings(_Section):
    """Connection to the broker."""

    max_connections: int = Field(
        64, ge=1, le=10_000, description="Connections in the pool of each process."
    )
    socket_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description=(
            "Seconds before a broker call with no answer times out (Redis; PostgreSQL,"
            " whose statement_timeout is 0.8 of it)."
        ),
    )
    min_replicas_acked: int = Field(
        0,
        ge=0,
        le=16,
        description=(
            "Replicas that must have an enqueue before it returns (WAIT, same round trip);"
            " fewer within replica_ack_timeout raises NotReplicated. 0: the master's"
            " acknowledgement only (an enqueue can be lost in a failover: docs/scaling.md)."
        ),
    )
    replica_ack_timeout: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds an enqueue waits for min_replicas_acked replicas.",
    )
    tls_ca_file: str | None = Field(
        None,
        description="CA certificates (PEM) that sign the Redis server's certificate "
        "(rediss:// only); default: the system's CA store.",
    )
    tls_cert_file: str | None = Field(
        None, description="Client certificate (PEM) for Redis's tls-auth-clients (rediss:// only)."
    )
    tls_key_file: str | None = Field(
        None, description="Private key (PEM) of tls_cert_file (rediss:// only)."
    )
    tls_verify: bool = Field(
        True,
        description="Verify the Redis server's certificate and host name (rediss:// only); "
        "turn off only for a throwaway test server.",
    )

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        # checked here so that a missing file is a configuration error naming the key, not
        # an SSL error at the first connection
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"broker.{info.field_name}: no such file: {value!r}")
        return value

    @field_validator("tls_key_file")
    @classmethod
    def _key_needs_cert(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("tls_cert_file") is None:
            raise ValueError("broker.tls_key_file needs broker.tls_cert_file")
        return value


class WorkerSettings(_Section):
    """One worker process."""

    concurrency: int = Field(
        16, ge=1, le=10_000, description="Tasks run at once by one worker process."
    )
    sync_threads: int | None = Field(
        None, ge=1, le=1000, description="Threads for sync tasks; default: concurrency."
    )
    prefetch: int | None = Field(
        None,
        ge=0,
        le=10_000,
        description=(
            "Tasks leased ahead of free slots, so the next batch is on its way while this"
            " one runs; default: while tasks average under 5 ms, what the slots get through"
            " in about 5 ms (at least concurrency, at most 16 x concurrency), none for longer"
            " tasks (they are never held back behind others). 0: never."
        ),
    )
    lease_seconds: float = Field(
        15.0, ge=1, le=3600, description="How long a fetched task stays leased without renewal."
    )
    renew_interval: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Seconds between lease renewals; default: lease_seconds / 3.",
    )
    grace_period: float = Field(
        10.0, ge=0, le=86_400, description="Seconds running tasks get to finish after SIGTERM."
    )
    abort_grace: float = Field(
        10.0,
        gt=0,
        le=86_400,
        description=(
            "Seconds a running task asked to abort (handle.abort()) gets to stop by itself;"
            " under the supervisor, its process is killed after that and the task recorded"
            " as aborted."
        ),
    )
    idle_wait: float = Field(
        1.0,
        ge=0.1,
        le=60,
        description=(
            "Longest blocking wait of an idle worker before it waits again (enqueues wake it"
            " at once either way): a process that has slept for seconds can take several ms"
            " to wake on a virtual machine. Each wait costs one round trip."
        ),
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        le=1000,
        description="Deliveries without an outcome before a task is dead-lettered as poison.",
    )
    queues: list[str] | None = Field(
        None,
        description="Queues a worker serves, highest first; default: the top-level queues.",
    )
    capabilities: list[str] = Field(
        default_factory=list,
        description=(
            "What this worker has (gpu, eu, ...): besides its queues it runs the tasks that"
            " require some of these and nothing else (@tq.task(requires=...))."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Worker log level."
    )
    log_format: Literal["console", "json"] = Field("console", description="Worker log format.")

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return sorted({check_capability(c) for c in value})

    @field_validator("renew_interval")
    @classmethod
    def _renew_below_lease(cls, value: float | None, info: ValidationInfo) -> float | None:
        # a field validator (lease_seconds is validated first) so the error names this key
        lease = info.data.get("lease_seconds")
        if value is not None and lease is not None and value >= lease:
            raise ValueError(
                f"worker.renew_interval ({value}) must be shorter than "
                f"worker.lease_seconds ({lease})"
            )
        return value

    @property
    def renew_every(self) -> float:
        return self.renew_interval if self.renew_interval is not None else self.lease_seconds / 3


class RetrySettings(_Section):
    """Default retry policy of every task (each task may override it)."""

    max_retries: int = Field(3, ge=0, le=1000, description="Retries after the first failure.")
    backoff: float = Field(
        1.0,
        ge=0,
        le=86_400,
        description="Delay before the first retry, in seconds; doubles each time.",
    )
    backoff_max: float = Field(
        600.0, ge=0, le=7 * 86_400, description="Cap on one retry delay, in seconds."
    )
    jitter: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fraction of each delay drawn at random (0: none, 1: full jitter).",
    )


class MonitoringSettings(_Section):
    """Metrics, heartbeats, task logs, health checks, memory trend, SLA rules and alerts.

    An SLA threshold set to ``None`` turns its rule off.
    """

    metrics: bool = Field(
        True,
        description="Record per-task counters and wait/run time histograms in the broker "
        "(written with each settle round trip).",
    )
    task_logs: bool = Field(
        True, description="Log one line per task outcome (logger taskq.tasks, level INFO)."
    )
    log_args: bool = Field(
        False, description="Include task arguments in task log lines (they may hold personal data)."
    )
    log_results: bool = Field(
        False, description="Include task results in task log lines (they may hold personal data)."
    )
    tracing: bool = Field(
        False, description="Trace enqueues and executions with OpenTelemetry (extra: otel)."
    )
    health_timeout: float = Field(
        0.5,
        gt=0,
        le=10,
        description="Seconds a health check waits for the broker before reporting it unhealthy.",
    )
    rtt_warn_ms: float = Field(
        100.0, gt=0, le=60_000, description="Broker round trip (ms) above which health degrades."
    )
    memory_warn_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description=(
            "Share of Redis's maxmemory in use above which health degrades (at maxmemory,"
            " enqueues fail with BrokerFull)."
        ),
    )
    durability_warn: bool = Field(
        True,
        description=(
            "Degrade health when Redis's persistence (appendonly, save) can lose tasks on a"
            " restart; turn off for a Redis run without persistence on purpose."
        ),
    )
    memory_window: float = Field(
        3600.0,
        ge=10,
        le=7 * 86_400,
        description="Seconds of RSS samples a worker keeps to compute its memory trend.",
    )
    leak_min_samples: int = Field(
        10, ge=3, le=10_000, description="RSS samples needed before a leak can be reported."
    )
    leak_mb_per_hour: float = Field(
        50.0, gt=0, description="Steady RSS growth (MB per hour) reported as a memory leak."
    )
    leak_min_growth_mb: float = Field(
        32.0, ge=0, description="Least RSS growth (MB) over the window reported as a leak."
    )
    alert_interval: float = Field(
        30.0,
        ge=1,
        le=86_400,
        description="Seconds between alert evaluations (one process evaluates for the cluster).",
    )
    alert_history: int = Field(
        200, ge=1, le=100_000, description="Alert events (fired, cleared) kept in the history."
    )
    alert_webhook: str | None = Field(
        None,
        pattern=r"^https?://",
        description="URL that receives each alert event as a JSON POST (kept secret).",
        json_schema_extra={"secret": True},
    )
    sla_window: float = Field(
        300.0,
        ge=1,
        le=7 * 86_400,
        description="Seconds over which SLA percentiles and error rates are computed.",
    )
    max_wait_p95: float | None = Field(
        60.0, gt=0, description="Alert when a queue's 95th percentile wait (s) exceeds this."
    )
    max_runtime_p95: float | None = Field(
        300.0, gt=0, description="Alert when a task's 95th percentile run time (s) exceeds this."
    )
    max_error_rate: float | None = Field(
        0.1,
        ge=0,
        le=1,
        description="Alert when the share of failed executions of a queue exceeds this.",
    )
    error_rate_min_tasks: int = Field(
        20, ge=1, description="Executions in the window before the error rate is judged."
    )
    max_backlog: int | None = Field(
        10_000, ge=1, description="Alert when a queue holds more ready tasks than this."
    )
    max_oldest_age: float | None = Field(
        300.0, gt=0, description="Alert when a queue's oldest ready task waited longer (s)."
    )
    max_worker_rss_mb: float | None = Field(
        1024.0, gt=0, description="Alert when a worker's resident memory (MB) exceeds this."
    )
    alert_no_worker: bool = Field(
        True, description="Alert when tasks wait in a queue that no live worker serves."
    )


class HttpSettings(_Section):
    """The monitoring and admin routes that the web integrations mount."""

    prefix: str = Field(
        "/tasks",
        pattern=r"^/[A-Za-z0-9_.~/\-]*$",
        description="Path under which the routes are mounted.",
    )
    public_read: bool = Field(
        True,
        description="Serve the aggregate read routes (status, summed metrics, Prometheus) "
        "without auth; health routes are always open.",
    )
    expose_private: list[Literal["results", "errors", "hosts", "config"]] = Field(
        default_factory=list,
        description="Private route classes to serve without auth: results (task results), "
        "errors (error messages, task lists), hosts (hosts, pids, workers, alerts), config "
        "(configuration, versions, registry). Default: none; they need the auth callable.",
    )
    show_arguments: bool = Field(
        False,
        description="GET /jobs/{id} (and the dashboard's look-up) shows a task's arguments to "
        "requests that may read it. Off by default: arguments often carry personal data and "
        "secrets, and no route sends them.",
    )


class SupervisorSettings(_Section):
    """The process supervisor and its autoscaler (``taskq worker --processes N|auto``).

    See docs/autoscaling.md for the signals, the decision rule and how to tune them.
    """

    min_processes: int = Field(
        1, ge=1, le=1024, description="Fewest worker processes the autoscaler keeps."
    )
    max_processes: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Most worker processes the autoscaler starts; default: the CPU count.",
    )
    cluster_max_processes: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Most worker processes of all supervisors together; each live supervisor "
        "takes an equal share. None: only each supervisor's own maximum applies.",
    )
    interval: float = Field(
        2.0, gt=0, le=3600, description="Seconds between two autoscaler readings."
    )
    poll_interval: float = Field(
        0.25,
        gt=0,
        le=60,
        description="Seconds between the supervisor's checks of hard timeouts, memory and "
        "dead processes.",
    )
    readings_up: int = Field(
        2, ge=1, le=1000, description="Consecutive readings that must call for more processes."
    )
    readings_down: int = Field(
        5, ge=1, le=1000, description="Consecutive readings that must call for fewer processes."
    )
    cooldown_up: float = Field(
        10.0, ge=0, le=86_400, description="Seconds after a scale-up before the next one."
    )
    cooldown_down: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Seconds after any scaling before a scale-down.",
    )
    step_up: int = Field(1, ge=1, le=1024, description="Processes added by one scale-up.")
    step_down: int = Field(1, ge=1, le=1024, description="Processes retired by one scale-down.")
    signals_to_agree: int = Field(
        2,
        ge=1,
        le=3,
        description="Load signals (backlog, oldest wait, utilisation) that must agree to scale.",
    )
    backlog_seconds_up: float = Field(
        10.0,
        gt=0,
        le=86_400,
        description="Priority-weighted seconds of waiting work per slot above which the "
        "backlog calls for more processes.",
    )
    assumed_runtime: float = Field(
        1.0,
        gt=0,
        le=86_400,
        description="Run time (s) assumed for a queue's tasks until one has been measured.",
    )
    max_wait_up: float = Field(
        10.0,
        gt=0,
        le=86_400,
        description="Seconds the oldest ready task may wait before it calls for more processes.",
    )
    utilisation_up: float = Field(
        0.85, gt=0, le=1, description="Busy share of slots above which to add processes."
    )
    utilisation_down: float = Field(
        0.3, ge=0, lt=1, description="Busy share of slots below which to retire processes."
    )
    max_error_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of executions that raised (over error_window) above which the "
        "autoscaler refuses to add processes.",
    )
    error_min_executions: int = Field(
        10, ge=1, le=1_000_000, description="Executions in the window before the error rate counts."
    )
    error_window: float = Field(
        60.0,
        ge=1,
        le=86_400,
        description="Seconds over which the error rate and the mean run time are measured.",
    )
    memory_reserve_mb: float = Field(
        256.0,
        ge=0,
        description="Memory (MB) left available on the machine after a scale-up, or it is refused.",
    )
    queue_weights: dict[str, float] = Field(
        default_factory=lambda: {"high": 4.0, "default": 1.0, "low": 0.25},
        description="Weight of one waiting task of each queue in the backlog (others: 1).",
    )
    adaptive: bool = Field(
        False,
        description="Let utilisation_up and max_error_rate learn from what scaling achieved "
        "and from the usual error rate, within adaptive_bound.",
    )
    adaptive_step: float = Field(
        0.05, gt=0, le=0.5, description="How far one adaptive adjustment moves a threshold."
    )
    adaptive_bound: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="Farthest an adaptive threshold may move from its configured value.",
    )
    hard_timeout: float | None = Field(
        None,
        gt=0,
        le=7 * 86_400,
        description="Default hard time limit of a task (s): past it the supervisor kills its "
        "process; none by default.",
    )
    max_tasks_per_process: int | None = Field(
        None,
        ge=1,
        le=100_000_000,
        description="Tasks after which a process is replaced (leak protection); none by default.",
    )
    max_memory_mb: float | None = Field(
        None,
        ge=16,
        le=1_048_576,
        description="Resident memory (MB) above which a process is replaced; none by default.",
    )
    retire_timeout: float | None = Field(
        None,
        gt=0,
        le=7 * 86_400,
        description="Seconds a retiring process may keep running tasks before it hands them "
        "back; none: it waits for them.",
    )
    restart_backoff: float = Field(
        1.0,
        ge=0,
        le=3600,
        description=(
            "Delay (s) before restarting a crashed process. A process that died while running"
            " tasks restarts after this delay every time (the poison rule bounds how often a"
            " task can kill one); for one that died with no task running it doubles per"
            " crash in a row, up to restart_backoff_max."
        ),
    )
    restart_backoff_max: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Cap on the restart delay (s); a process that lived longer resets it.",
    )
    start_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a new process has to start before it is killed as a crash.",
    )

    @field_validator("max_processes")
    @classmethod
    def _max_above_min(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_processes")
        if value is not None and low is not None and value < low:
            raise ValueError(
                f"supervisor.max_processes ({value}) is below supervisor.min_processes ({low})"
            )
        return value

    @field_validator("utilisation_down")
    @classmethod
    def _down_below_up(cls, value: float, info: ValidationInfo) -> float:
        up = info.data.get("utilisation_up")
        if up is not None and value >= up:
            raise ValueError(
                f"supervisor.utilisation_down ({value}) must be below "
                f"supervisor.utilisation_up ({up})"
            )
        return value

    @field_validator("queue_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        value = {check_queue_name(name): weight for name, weight in value.items()}
        for name, weight in value.items():
            if not (0 < weight <= 1000):
                raise ValueError(
                    f"supervisor.queue_weights[{name!r}] must be above 0 and at most 1000, "
                    f"got {weight!r}"
                )
        return value

    @field_validator("restart_backoff_max")
    @classmethod
    def _backoff_cap(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("restart_backoff")
        if base is not None and value < base:
            raise ValueError(
                f"supervisor.restart_backoff_max ({value}) is below "
                f"supervisor.restart_backoff ({base})"
            )
        return value


_KEY_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MIN_SECRET = 16


class SecuritySettings(_Section):
    """Message signing (see docs/security.md)."""

    signing_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "HMAC-SHA256 message signing keys, key id -> secret (at least 16 characters):"
            " the first signs, any verifies; when set, workers dead-letter unsigned,"
            " tampered and unknown-key messages. Empty: signing off."
        ),
        json_schema_extra={"secret": True},
    )

    @field_validator("signing_keys")
    @classmethod
    def _keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for kid, secret in value.items():
            if not _KEY_ID.fullmatch(kid):
                raise ValueError(
                    f"security.signing_keys: key id {kid[:80]!r} must be 1 to 64 letters,"
                    " digits or _ . -"
                )
            if len(secret.get_secret_value()) < MIN_SECRET:
                # the secret's length only, never the secret
                raise ValueError(
                    f"security.signing_keys[{kid!r}]: the secret must be at least {MIN_SECRET}"
                    f" characters, got {len(secret.get_secret_value())}"
                )
        return value


class Settings(BaseSettings):
    """Every setting of taskq; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="TASKQ_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        validate_assignment=True,
    )

    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description=(
            "redis://, rediss://, unix://, redis+sentinel://host:port,.../service[/db],"
            " redis+cluster://host:port,..., postgresql://user@host:port/db[?schema=taskq]"
            " (docs/postgres.md) or memory:// URL."
        ),
    )
    key_prefix: str = Field(
        "taskq",
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="Prefix of every Redis key (on PostgreSQL: the namespace of every row).",
    )
    queues: list[str] = Field(
        default_factory=lambda: ["high", "default", "low"],
        min_length=1,
        description="Known queues, highest priority first.",
    )
    default_queue: str = Field("default", description="Queue of tasks that name none.")
    imports: list[str] = Field(
        default_factory=list, description="Modules imported at worker start to register tasks."
    )
    max_payload_bytes: int = Field(
        512 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest encoded task message (its JSON, before any compression).",
    )
    compress_above: int | None = Field(
        None,
        ge=256,
        le=64 * 1024 * 1024,
        description="Messages longer than this many bytes are stored zstd-compressed when that "
        "is smaller (Redis memory, network); every worker reads them. None: never.",
    )
    message_format: Literal["compact", "full"] = Field(
        "compact",
        description="How task messages are stored: 'compact' (a JSON array without the id and "
        "queue, which the message is stored under: about 100 bytes less Redis memory per "
        "task) or 'full' (a JSON object with every field named). Every worker reads both; set "
        "'full' while workers of taskq 0.1, which read only that, still run "
        "(docs/delivery.md, 'Message format').",
    )
    result_ttl: float = Field(
        86_400.0, gt=0, le=365 * 86_400, description="Seconds results and errors are kept."
    )
    idempotency_ttl: float = Field(
        86_400.0, gt=0, le=365 * 86_400, description="Seconds an idempotency key is remembered."
    )
    task_timeout: float | None = Field(
        None,
        gt=0,
        le=7 * 86_400,
        description="Default soft time limit of a task, in seconds; none by default.",
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: list[str]) -> list[str]:
        value = [check_queue_name(q) for q in value]
        if len(set(value)) != len(value):
            raise ValueError("queues must not repeat a name")
        return value

    @field_validator("default_queue")
    @classmethod
    def _default_queue(cls, value: str) -> str:
        return check_queue_name(value)

    @field_validator("broker_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(
            (
                "redis://",
                "rediss://",
                "unix://",
                "memory://",
                "redis+sentinel://",
                "rediss+sentinel://",
                "redis+cluster://",
                "rediss+cluster://",
                "postgresql://",
                "postgres://",
            )
        ):
            raise ValueError(
                "broker_url must start with redis://, rediss://, unix://, redis+sentinel://, "
                f"redis+cluster://, postgresql:// or memory://, got {redact_url(value)!r}"
            )
        check_url_userinfo(value)
        if value.startswith(("redis+sentinel://", "rediss+sentinel://")):
            from .brokers.sentinel import parse

            parse(value)  # the addresses, the service name and the database, checked now
        if value.startswith(("redis+cluster://", "rediss+cluster://")):
            from .brokers.cluster import parse as parse_cluster

            parse_cluster(value)  # the node addresses, checked now
        if value.startswith(("postgresql://", "postgres://")):
            from .brokers.postgres.url import parse_url

            try:
                parse_url(value)  # the connection string and the schema name, checked now
            except Exception as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("broker")
    @classmethod
    def _tls_needs_rediss(cls, value: BrokerSettings, info: ValidationInfo) -> BrokerSettings:
        url = info.data.get("broker_url")
        tls = [f"broker.{k}" for k in ("tls_ca_file", "tls_cert_file", "tls_key_file")]
        given = [k for k in tls if getattr(value, k.split(".")[1]) is not None]
        if not value.tls_verify:
            given.append("broker.tls_verify")
        if url is not None and given and not url.startswith(("rediss://", "rediss+sentinel://")):
            raise ValueError(
                f"{', '.join(given)} only apply to TLS: broker_url must start with rediss://"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) alone takes defaults and its arguments; config.load_settings adds the
        # environment and files, so a TaskQueue built in code is never changed by stray
        # TASKQ_* variables
        extra = EXTRA_SOURCES.get()
        if extra is None:
            return (init_settings,)
        return (init_settings, env_settings, *extra(settings_cls))

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # one error type for every bad configuration, naming key, value (redacted),
            # source and what is allowed; `from None` keeps pydantic's unredacted text out
            from .config import explain

            raise explain(exc) from None

    def __repr_args__(self) -> Any:
        return _redacted_repr_args(self, super().__repr_args__())

    @property
    def from_config(self) -> bool:
        """True when these settings were read from files and ``TASKQ_*`` variables
        (:func:`taskq_core.config.load_settings`), False when built from arguments alone."""
        return id(self) in _FROM_CONFIG

    def mark_from_config(self) -> None:
        """Record that these settings read every source (called by config.load)."""
        # kept outside the model (a private attribute would take part in ==)
        _FROM_CONFIG.add(id(self))
        weakref.finalize(self, _FROM_CONFIG.discard, id(self))

    def worker_queues(self) -> list[str]:
        return list(self.worker.queues or self.queues)


__all__ = [
    "MAX_QUEUE_NAME",
    "BrokerSettings",
    "HttpSettings",
    "MonitoringSettings",
    "RetrySettings",
    "SecuritySettings",
    "Settings",
    "SupervisorSettings",
    "WorkerSettings",
    "is_secret_field",
    "redact_setting",
]
