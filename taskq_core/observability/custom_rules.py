"""The rules of custom metrics (:mod:`.custom`): what a name, a label set and a bucket list
may be, checked before anything is buffered, and the declaration of a metric as it is
stored; the limits are documented in docs/monitoring.md, "Custom metrics"."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ..errors import InvalidMetric

#: the Prometheus name of a custom metric is this prefix and its name
PROMETHEUS_PREFIX = "taskq_custom_"
KINDS = ("counter", "gauge", "histogram")
MAX_NAME = 100
MAX_HELP = 500
MAX_LABELS = 5
MAX_LABEL_VALUE = 100
#: label sets per metric (the cardinality guard)
MAX_SERIES = 1000
MAX_METRICS = 200
MAX_BUCKETS = 50
#: prometheus_client's default histogram buckets (seconds)
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: name endings Prometheus and OpenMetrics give a meaning to
RESERVED_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info")
#: label names a histogram or summary exposition uses itself
RESERVED_LABELS = ("le", "quantile")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# -- declarations


def check_name(name: object) -> str:
    """``name`` if it is a valid custom metric name, else :class:`InvalidMetric`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidMetric(
            f"metric name {name!r}: use letters, digits and _ only, not starting with a digit"
        )
    if len(name) > MAX_NAME:
        raise InvalidMetric(
            f"metric name {name[:30]!r}...: at most {MAX_NAME} characters, got {len(name)}"
        )
    for suffix in RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise InvalidMetric(
                f"metric name {name!r} ends with {suffix!r}, a suffix Prometheus reads: taskq "
                f"adds _total, _bucket, _sum and _count itself (name it {name[: -len(suffix)]!r})"
            )
    return name


def _check_help(name: str, text: object) -> str:
    if not isinstance(text, str):
        raise InvalidMetric(f"metric {name!r}: help must be a string, got {type(text).__name__}")
    if len(text) > MAX_HELP:
        raise InvalidMetric(f"metric {name!r}: help of at most {MAX_HELP} characters")
    return text


def _check_labels(name: str, labels: object) -> tuple[str, ...]:
    if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise InvalidMetric(
            f"metric {name!r}: labels must be a tuple of label names, got {labels!r}"
            + (f" (write labels=({labels!r},))" if isinstance(labels, str) else "")
        )
    out = tuple(labels)
    if len(out) > MAX_LABELS:
        raise InvalidMetric(f"metric {name!r}: at most {MAX_LABELS} labels, got {len(out)}")
    for label in out:
        if not isinstance(label, str) or not _NAME.fullmatch(label) or len(label) > MAX_NAME:
            raise InvalidMetric(
                f"metric {name!r}: label name {label!r}: use letters, digits and _ only, "
                f"not starting with a digit, at most {MAX_NAME} characters"
            )
        if label.startswith("__") or label in RESERVED_LABELS:
            raise InvalidMetric(
                f"metric {name!r}: label name {label!r} is reserved by Prometheus"
                " (le, quantile and names starting with __)"
            )
    if len(set(out)) != len(out):
        raise InvalidMetric(f"metric {name!r}: label names repeat: {', '.join(out)}")
    return out


def _check_buckets(name: str, buckets: object) -> tuple[float, ...]:
    if isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence):
        raise InvalidMetric(f"metric {name!r}: buckets must be a sequence of numbers")
    out: list[float] = []
    for b in buckets:
        if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b) or b <= 0:
            raise InvalidMetric(
                f"metric {name!r}: bucket bound {b!r} must be a finite number above 0"
                " (+Inf is added)"
            )
        out.append(float(b))
    if not 1 <= len(out) <= MAX_BUCKETS:
        raise InvalidMetric(f"metric {name!r}: 1 to {MAX_BUCKETS} buckets, got {len(out)}")
    if any(a >= b for a, b in itertools.pairwise(out)):
        raise InvalidMetric(f"metric {name!r}: bucket bounds must increase: {out}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a metric is: kind, name, help, label names and (histograms) bucket bounds."""

    kind: str
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @classmethod
    def make(
        cls, kind: str, name: object, help: object, labels: object, buckets: object = ()
    ) -> Declaration:
        """A checked declaration (:class:`InvalidMetric` naming what is wrong)."""
        if kind not in KINDS:
            raise InvalidMetric(f"metric kind {kind!r}: one of {', '.join(KINDS)}")
        n = check_name(name)
        return cls(
            kind,
            n,
            _check_help(n, help),
            _check_labels(n, labels),
            _check_buckets(n, buckets) if kind == "histogram" else (),
        )

    def encode(self) -> str:
        return orjson.dumps(
            {"kind": self.kind, "help": self.help, "labels": self.labels, "buckets": self.buckets}
        ).decode()

    @classmethod
    def decode(cls, name: str, raw: str) -> Declaration | None:
        """A stored declaration; None when it is not one taskq would write."""
        try:
            d = orjson.loads(raw)
            return cls.make(d["kind"], name, d["help"], d["labels"], d["buckets"])
        except (orjson.JSONDecodeError, InvalidMetric, KeyError, TypeError):
            return None

    def describe(self) -> str:
        shape = f"a {self.kind} with labels ({', '.join(self.labels)})"
        return shape + (f" and buckets {list(self.buckets)}" if self.buckets else "")


def labels_text(values: Sequence[str]) -> str:
    """How a label set is written in field names: the JSON array of its values."""
    return orjson.dumps(list(values)).decode()


def le_text(bound: float) -> str:
    """A bucket's stored bound (``repr``: distinct for distinct floats), ``+Inf`` last."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))
