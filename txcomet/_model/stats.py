# -*- test-case-name: tests.server.test_metrics,tests.fastpath.test_roster -*-
"""
What txcomet counts as it works, for its Prometheus metrics
(L{txcomet._server.metrics} serves them at C{<prefix>/metrics}).

Two kinds of counting, by how hot the path is:

  - Request-shaped work (control requests, errors, closes, resumes,
    authorization failures, publishes) counts with C{prometheus_client}'s
    own counters and histogram, in L{REGISTRY}: a few microseconds per
    request, next to the request's own hundreds.
  - Fan-out counts in plain integers (L{tally}): a roster adds a whole
    batch's deliveries in one addition, a stream one per event it writes;
    the metrics read them when scraped.  A C{prometheus_client} counter
    takes a lock and a method call per increment, which at hundreds of
    thousands of deliveries a second would be a cost fan-out cannot carry.

The counters are per process (a process is one node: with C{--workers},
each worker counts its own), as Prometheus clients are.
"""

from typing import Any, Dict

from prometheus_client import CollectorRegistry, Counter, Histogram

from txcomet._model.errors import CometError

#: txcomet's own registry: its metrics stay apart from an application's
#: (which may serve prometheus_client's default registry itself).
REGISTRY = CollectorRegistry(auto_describe=True)

class Count:
    """
    One plain counter, for paths too hot for a C{prometheus_client}
    counter's lock and calls.
    """

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


#: Events handed to the bus for publishing (publish API, server API,
#: control channel, Bayeux, Python); one the bus then refuses is also an
#: C{unavailable} error.  Counted on the publish path, which fan-out's
#: figures include.
PUBLISHED = Count()
CONTROL_REQUESTS = Counter(
    "txcomet_control_requests", "Control operations, by op and result (ok, or the error code).",
    ["op", "result"], registry=REGISTRY,
)
CONTROL_SECONDS = Histogram(
    "txcomet_control_request_seconds", "Time to answer a control operation, by op.", ["op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
ERRORS = Counter("txcomet_errors", "Error answers sent, by error code.", ["code"], registry=REGISTRY)
CLOSES = Counter(
    "txcomet_session_closes", "Sessions closed, by reason (slow_consumer counts slow-consumer closes).",
    ["reason"], registry=REGISTRY,
)
RESUMES = Counter(
    "txcomet_resumes", "Resumes (a data channel with last, a subscribe with since), by whether every event was recovered.",
    ["recovered"], registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "txcomet_authorization_failures", "Refused joins, subscriptions and publishes, by reason (the error code).",
    ["reason"], registry=REGISTRY,
)
GAPS = Counter("txcomet_bus_gaps", "Times the bus found it may have lost events on their way to this node.", registry=REGISTRY)


class Tally:
    """
    Deliveries and bytes written by one transport, as plain integers.
    """

    __slots__ = ("deliveries", "bytes")

    def __init__(self) -> None:
        self.deliveries = 0
        self.bytes = 0


_TALLIES: Dict[str, Tally] = {}


def tally(transport: str) -> Tally:
    """
    The L{Tally} of C{transport} (its name: C{sse}, C{ws}, ...), made on
    first use; hold on to it rather than asking per delivery.
    """
    found = _TALLIES.get(transport)
    if found is None:
        found = _TALLIES[transport] = Tally()
    return found


def tallies() -> Dict[str, Tally]:
    """
    Every transport's L{Tally} so far.
    """
    return dict(_TALLIES)


#: The error codes that are an authorization's refusal.
REFUSALS = frozenset(["forbidden", "invalid_token", "token_expired", "unauthorized"])


def forbidden(message: str) -> Any:
    """
    The C{forbidden} L{CometError} an authorizer's "no" becomes, counted
    in L{AUTH_FAILURES}.
    """
    AUTH_FAILURES.labels("forbidden").inc()
    return CometError("forbidden", message)


def countRefusals(d: Any) -> Any:
    """
    Count, in L{AUTH_FAILURES}, a refusal C{d} (an authorizer's
    L{Deferred}) fails with, by its code; the failure goes on as it was.
    """

    def refused(failure: Any) -> Any:
        code = getattr(failure.value, "code", None)
        if code in REFUSALS:
            AUTH_FAILURES.labels(code).inc()
        return failure

    return d.addErrback(refused)
