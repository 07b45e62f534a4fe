"""
txcomet: server push for Twisted, every comet transport and WebSocket on
one event bus.

The public names are below; everything in a module whose name starts with
an underscore is private.  Fakes for tests are in L{txcomet.testing}, the
interfaces in L{txcomet.interfaces}.
"""

from txcomet._auth.authorizer import CometAuthorizer, authorizerFromConfig
from txcomet._client.client import CometClient
from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._model.event import Event
from txcomet._transports.http import CometRequest, redactedLogFormatter
from txcomet._bus.memory import InMemoryBus
from txcomet._bus.redis import RedisBus
from txcomet._server.resource import CometResource
from txcomet._server.service import Comet
from txcomet._sessions.hub import AllowAll
from txcomet._version import __version__


__all__ = [
    "AllowAll",
    "Comet",
    "CometAuthorizer",
    "CometClient",
    "CometConfig",
    "CometError",
    "CometRequest",
    "CometResource",
    "Event",
    "InMemoryBus",
    "RedisBus",
    "__version__",
    "authorizerFromConfig",
    "redactedLogFormatter",
]
