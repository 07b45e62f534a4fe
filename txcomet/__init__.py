"""
txcomet: server push for Twisted, every comet transport and WebSocket on
one event bus.

The public names are below; everything in a module whose name starts with
an underscore is private.  Fakes for tests are in L{txcomet.testing}, the
interfaces in L{txcomet.interfaces}.
"""

from ._client import CometClient
from ._config import CometConfig
from ._errors import CometError
from ._event import Event
from ._http import CometRequest
from ._memory import InMemoryBus
from ._redis import RedisBus
from ._resource import CometResource
from ._service import Comet
from ._session import AllowAll

__version__ = "0.1.0"

__all__ = [
    "AllowAll",
    "Comet",
    "CometClient",
    "CometConfig",
    "CometError",
    "CometRequest",
    "CometResource",
    "Event",
    "InMemoryBus",
    "RedisBus",
    "__version__",
]
