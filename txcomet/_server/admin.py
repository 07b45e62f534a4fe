# -*- test-case-name: tests.server.test_admin,tests.system.test_admin_browser -*-
"""
The admin page at C{<prefix>/admin}: the nodes' live figures, the active
channels, a channel's presence and history, and actions (publish,
disconnect a user, unsubscribe a user).

The figures reach the page over txcomet's own data channels, as any
event does: the page subscribes (on whatever transport its client picks)
to the reserved channel L{ADMIN_CHANNEL}, and L{AdminFeed} publishes there
once a second, while some page on this node listens, what the cluster's
nodes answer to its C{figures} question.

Who may use it: the page needs the API key (the browser asks for it as a
Basic password; any user name) or, with no key set, a client on this
machine.  The page it serves carries an admin ticket (L{AdminTickets}): a
signed, expiring pass that lets that page, and nothing else, subscribe to
L{ADMIN_CHANNEL} and call the server API (header C{X-Admin-Ticket}).  The
key itself never reaches the page's script.
"""

import base64
import hashlib
import hmac
import html
import os
import secrets
from typing import Any, Dict, Optional

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import Request

from txcomet._model.channels import RESERVED
from txcomet._model.errors import CometError
from txcomet._model.stats import ERRORS, PUBLISHED, tallies
from txcomet._server.static import STATIC, staticFile
from txcomet._sessions.cluster import channelCounts, nodeInfo
from txcomet._transports.http import JSONResource, setNoCache

#: The channel the page's figures arrive on (reserved: no one else may
#: subscribe to it).
ADMIN_CHANNEL = RESERVED + "/admin/live"

#: Seconds an admin ticket is good for.
TICKET_LIFETIME = 12 * 3600.0

#: The environment variable through which the supervisor hands its workers the
#: secret tickets are signed with, when no API key is set.
TICKET_SECRET_ENV = "TXCOMET_ADMIN_TICKET_SECRET"


class AdminTickets:
    """
    Issues and checks admin tickets: C{<expiry>.<signature>}, an HMAC-SHA256
    of the expiry under a key derived from the API key (so every node with
    the same key accepts them), or, without one, from a secret of this
    process group.
    """

    def __init__(self, config: Any, clock: Any) -> None:
        self.clock = clock
        if config.apiKey:
            seed = b"txcomet admin tickets\x00" + config.apiKey.encode("utf-8")
        else:
            secret = os.environ.get(TICKET_SECRET_ENV)
            if not secret:
                secret = os.environ[TICKET_SECRET_ENV] = secrets.token_urlsafe(32)
            seed = b"txcomet admin tickets, no key\x00" + secret.encode("utf-8")
        self._key = hashlib.sha256(seed).digest()

    def _sign(self, expiry: str) -> str:
        digest = hmac.new(self._key, expiry.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def issue(self) -> str:
        expiry = "%d" % (self.clock.seconds() + TICKET_LIFETIME,)
        return expiry + "." + self._sign(expiry)

    def valid(self, ticket: Any) -> bool:
        if not isinstance(ticket, str) or ticket.count(".") != 1 or len(ticket) > 200:
            return False
        expiry, signature = ticket.split(".")
        if not expiry.isdigit() or not expiry.isascii():
            return False
        if not hmac.compare_digest(self._sign(expiry).encode("ascii"), signature.encode("ascii", "replace")):
            return False
        return int(expiry) > self.clock.seconds()


def basicPassword(request: Request) -> Optional[str]:
    """
    The password of C{Authorization: Basic}, if the request has one.
    """
    scheme, _, encoded = (request.getHeader("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def figures(comet: Any, version: str) -> dict:
    """
    This node's answer to the C{figures} question: what the page shows of
    it, with its cumulative counts (the page turns them into rates).
    """
    info = nodeInfo(comet.hub, comet.cluster, version)
    counted = tallies()
    errors = 0
    for family in ERRORS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                errors += int(sample.value)
    info["worker"] = comet.hub.sessionPrefix.rstrip(".") or None
    info["deliveries"] = {name: t.deliveries for name, t in counted.items()}
    info["published"] = PUBLISHED.n
    info["errors"] = errors
    info["channelCounts"] = channelCounts(comet.hub)
    return info


class AdminFeed(Service):
    """
    Once a second, while a page on this node listens, ask every node for
    its figures and publish them on L{ADMIN_CHANNEL}.
    """

    log = Logger()
    interval = 1.0
    #: The most channels one update lists (the busiest).
    channelsShown = 100

    def __init__(self, comet: Any) -> None:
        self.comet = comet
        self._loop: Optional[LoopingCall] = None
        self._asking = False

    def startService(self) -> None:
        Service.startService(self)
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.comet.hub.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def watched(self) -> bool:
        """
        Whether a session of this node listens to L{ADMIN_CHANNEL}.
        """
        return any(ADMIN_CHANNEL in s.subscriptions for s in list(self.comet.hub.sessions.values()))

    def tick(self) -> None:
        if self._asking or not self.watched():
            return
        self._asking = True
        d = self.comet.cluster.ask("figures")

        def publish(answered: Any) -> Any:
            answers, missing = answered
            nodes = []
            channels: Dict[str, int] = {}
            for answer in answers.values():
                if not isinstance(answer, dict):
                    continue
                for name, n in (answer.pop("channelCounts", None) or {}).items():
                    if name != ADMIN_CHANNEL:
                        channels[name] = channels.get(name, 0) + n
                nodes.append(answer)
            nodes.sort(key=lambda n: (str(n.get("worker")), str(n.get("node"))))
            busiest = sorted(channels.items(), key=lambda item: (-item[1], item[0]))[: self.channelsShown]
            update = {
                "at": self.comet.hub.clock.seconds(),
                "nodes": nodes,
                "missing": missing,
                "channels": [{"channel": name, "subscribers": n} for name, n in busiest],
                "channelCount": len(channels),
            }
            return self.comet.hub.bus.publish(ADMIN_CHANNEL, update, store=False)

        def done(result: Any) -> None:
            self._asking = False
            if hasattr(result, "check") and not result.check(CometError):
                self.log.failure("The admin feed failed", result)

        d.addCallback(publish).addBoth(done)


class AdminPage(JSONResource):
    """
    C{GET <prefix>/admin}: the page, with a fresh admin ticket in it.
    """

    isLeaf = True
    headIsGet = True

    def __init__(self, comet: Any, tickets: AdminTickets) -> None:
        super().__init__()
        self.comet = comet
        self.config = comet.hub.config
        self.tickets = tickets

    def render_GET(self, request: Request) -> bytes:
        from txcomet._server.api import checkAccess, keyMatches

        key = self.config.apiKey
        if not (key and keyMatches(basicPassword(request), [key])):
            try:
                checkAccess(request, [key] if key else [], "The admin page")
            except CometError:
                if key:
                    # Let the browser ask for the key.
                    request.setHeader(b"WWW-Authenticate", b'Basic realm="txcomet admin (the API key is the password)"')
                raise
        with open(os.path.join(STATIC, "admin.html"), encoding="utf-8") as f:
            page = f.read()
        page = page.replace("{{ticket}}", html.escape(self.tickets.issue(), quote=True))
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"X-Frame-Options", b"DENY")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        setNoCache(request)
        return page.encode("utf-8")


def installAdmin(comet: Any, version: str) -> AdminFeed:
    """
    Serve the admin page at C{<prefix>/admin} of C{comet}, let its tickets
    through the server API and onto L{ADMIN_CHANNEL}, and teach the
    cluster to answer C{figures}; returns the feed, for the service to
    start and stop.
    """
    tickets = comet.adminTickets = AdminTickets(comet.hub.config, comet.hub.clock)
    comet.resource.putChild(b"admin", AdminPage(comet, tickets))
    comet.resource.putChild(b"admin.js", staticFile("admin.js", comet.hub.config))
    comet.resource.putChild(b"admin.css", staticFile("admin.css", comet.hub.config))
    comet.hub.admitReserved = lambda channel, token: channel == ADMIN_CHANNEL and tickets.valid(token)
    comet.cluster.answerers["figures"] = lambda params: figures(comet, version)
    return AdminFeed(comet)
