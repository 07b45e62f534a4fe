# -*- test-case-name: tests.server.test_health,tests.system.test_multinode -*-
"""
C{GET <mount>/health}: whether this node serves, for load balancers and
Kubernetes probes.  200 C{{"ok": true}} when the service has started and
its bus can distribute events; else 503 C{unavailable} with the reason.
"""

from typing import Any, Callable

from twisted.web.server import Request

from txcomet._model.errors import CometError
from txcomet._transports.http import JSONResource, writeError, writeJSON
from txcomet.interfaces import IBusHealth


class HealthResource(JSONResource):
    """
    The health check of one node (see the module docstring).

    @param ready: says whether the service has started (and not stopped).
    """

    isLeaf = True
    headIsGet = True

    def __init__(self, hub: Any, ready: Callable[[], bool]) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        self.ready = ready

    def problem(self) -> Any:
        if not self.ready():
            return "the node is starting or stopping"
        health = IBusHealth(self.hub.bus, None)
        return health.problem() if health is not None else None

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        problem = self.problem()
        if problem is not None:
            return writeError(
                request,
                CometError("unavailable", "Not serving: %s." % (problem,), details={"reason": problem}),
            )
        return writeJSON(request, 200, {"ok": True})
