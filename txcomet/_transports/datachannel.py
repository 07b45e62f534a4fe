# -*- test-case-name: tests.test_interfaces,tests.transports.test_heartbeat,tests.transports.test_oneshot_wire -*-
"""
The data channel half of every HTTP transport.

L{DataChannelResource} does what all data channel endpoints share: read
C{session=ID} or C{channel=NAME} (repeatable) and C{last=ID} (or the
C{Last-Event-ID} header), join-listen when channels are named, attach the
data channel, and turn every failure into a clear error.  A transport
subclasses it with only its framing and how it holds the request: an
L{HTTPDataChannel} subclass.

Polling and long-polling live here too; they answer a JSON array.
"""

from typing import AbstractSet, Any, Dict, List, Optional, Sequence

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from txcomet._model.channels import validatePattern
from txcomet._model.errors import CometError
from txcomet._model.event import Event, parsePosition
from txcomet._model.wire import closeMessage
from txcomet._transports.heartbeat import Beating, HeartbeatTimer
from txcomet._transports.http import (
    JSONResource,
    applyCORS,
    asCometError,
    finishWhole,
    forwardedHeaders,
    queryArgs,
    requestToken,
    setNoCache,
    singleArg,
    writeError,
)
from txcomet._sessions.session import Session
from txcomet._sessions.states import OLDEST
from txcomet._sessions.hub import Hub
from txcomet.interfaces import IDataChannel, IEvent, IFraming

log = Logger()


@implementer(IFraming)
class OneEventArrayFraming:
    """
    A polling answer that holds one event: C{[EVENT]} and a line break.
    """

    name = "json-array-1"

    def frameEvent(self, event: IEvent) -> bytes:
        return b"[" + event.json + b"]\n"


ONE_EVENT_ARRAY = OneEventArrayFraming()


class DataChannelParams:
    """
    What a data channel request asked for.

    @ivar session: the session id, or C{None} for join-listen.
    @ivar channels: the channels to join-listen on (empty with a session).
    @ivar last: the id of the last event the client saw, or C{None}.
    @ivar args: all query parameters, for the transport's own.
    """

    def __init__(self, session: Optional[str], channels: List[str], last: Optional[str], args) -> None:
        self.session = session
        self.channels = channels
        self.last = last
        self.args = args

    @classmethod
    def fromRequest(
        cls, request: Request, maxChannels: int, known: Optional[AbstractSet[str]] = None
    ) -> "DataChannelParams":
        """
        Read the parameters of C{request}; with C{known}, a parameter not
        in it is an C{invalid_request} (a misspelt one would be ignored).
        """
        return cls.fromArgs(queryArgs(request), request.getHeader("Last-Event-ID"), maxChannels, known)

    @classmethod
    def fromArgs(
        cls,
        args: Dict[str, List[str]],
        lastEventId: Optional[str],
        maxChannels: int,
        known: Optional[AbstractSet[str]] = None,
    ) -> "DataChannelParams":
        """
        Validate decoded query parameters and the C{Last-Event-ID} header
        (C{None} when absent): the one definition of a data channel's
        parameters, for transports that do not see a L{Request} (WebSocket).
        """
        if known is not None and not known.issuperset(args):
            unknown = sorted(set(args) - known)
            if unknown:
                raise CometError(
                    "invalid_request",
                    "Unknown parameter %r; this endpoint takes %s."
                    % (unknown[0][:40], ", ".join(sorted(known))),
                )
        session = singleArg(args, "session")
        channels = args.get("channel", [])
        # The header wins: a browser's EventSource sends it when it
        # reconnects, newer than any last= or lastEventId= in its URL.
        queryLast = singleArg(args, "last") or singleArg(args, "lastEventId")
        last = (lastEventId or "").strip() or queryLast
        if session is not None and channels:
            raise CometError("invalid_request", "Give session=ID or channel=NAME, not both.")
        if session is None and not channels:
            raise CometError(
                "invalid_request", "Give session=ID, or one or more channel=NAME to join-listen."
            )
        if len(channels) > maxChannels:
            raise CometError("too_many_subscriptions")
        if last is not None:
            parsePosition(last)
        return cls(session, channels, last, args)


@implementer(IDataChannel)
class HTTPDataChannel(Beating):
    """
    A data channel on one HTTP request.  The base class answers one JSON
    array (C{[event, ...]}) and ends: polling and long-polling.

    Subclasses for streaming transports set C{oneShot = False}, write a
    prelude in L{begin} and frame each event in L{writeEvents}.

    Heartbeats: every C{heartbeat} seconds, a channel that wrote nothing in
    the last interval writes a heartbeat (for a one-shot channel, the empty
    answer C{[]} that ends it): the rule of L{Beating}, on the resource's
    L{HeartbeatTimer}, shared by its channels.
    """

    oneShot = True
    contentType = b"application/json; charset=utf-8"

    @property
    def transportName(self) -> str:
        return self.resource.transportName or "http"

    def __init__(self, resource: "DataChannelResource", request: Request, params: DataChannelParams) -> None:
        self.resource = resource
        self.hub: Hub = resource.hub
        self.request = request
        self.params = params
        self.session: Optional[Session] = None
        self.position: Optional[str] = None
        self.ended = False
        # Whether the client has gone, and whether the response was
        # finished (as a RequestTracker would know; one finish notice for
        # both keeps a held connection's state small).
        self._gone = False
        self._finished = False
        watchFinish = getattr(request, "watchFinish", None)
        if watchFinish is not None:
            watchFinish(self._requestDone)
        else:
            request.notifyFinish().addBoth(self._requestDone)

    # lifecycle

    def setHeaders(self) -> None:
        """
        Set the response headers; nothing is written yet.
        """
        request = self.request
        request.setHeader(b"Content-Type", self.contentType)
        setNoCache(request)
        applyCORS(request, self.hub.config)

    def setPosition(self, position: str) -> None:
        """
        Say where this response starts, in the C{X-Comet-Position} header:
        the C{last} a client that receives no event from it resumes with
        (join-listen: the position at subscription; with a session: the
        C{last} given, or the session's L{Session.resumePoint}).
        """
        self.position = position
        self.request.setHeader(b"X-Comet-Position", position.encode("utf-8"))

    def begin(self, session: Session) -> None:
        """
        Called just before the channel is attached to C{session}: start the
        heartbeat.  Streaming channels write their prelude here.
        """
        self.session = session
        self.startBeating()

    # Beating

    @property
    def heartbeats(self) -> HeartbeatTimer:
        return self.resource.heartbeats

    @property
    def beating(self) -> bool:
        return not self.ended

    def rosterWrote(self) -> bool:
        """
        Whether a roster wrote to this channel since the last call (see
        L{txcomet._fastpath.roster.Roster}); never, here.
        """
        return False

    def _requestDone(self, result: Any) -> None:
        if isinstance(result, Failure):
            self._gone = True
        self.ended = True
        self.stopBeating()
        if self.session is not None:
            self.session.detach(self)

    @property
    def gone(self) -> bool:
        """
        Whether the client has disconnected.
        """
        return self._gone

    def end(self, body: bytes = b"") -> None:
        """
        Write C{body} and finish the response (unless the client has gone).
        """
        if self.ended:
            return
        self.ended = True
        self.stopBeating()
        if self._gone or self._finished:
            return
        self._finished = True
        request = self.request
        if self.oneShot:
            # The whole answer is known.
            finishWhole(request, body)
        else:
            request.write(body)
            request.finish()

    # IDataChannel, as one JSON array

    def writeEvents(self, events: Sequence[Event]) -> None:
        if len(events) == 1:
            # The usual answer: the same bytes for every subscriber of the
            # event, so they are made once per event.
            self.end(events[0].framed(ONE_EVENT_ARRAY))
        else:
            self.end(b"[" + b",".join([e.json for e in events]) + b"]\n")

    def writeHeartbeat(self) -> None:
        if self.session is not None:
            self.session.detach(self)
        self.end(b"[]\n")

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        self.end(b"[" + closeMessage(reason, reconnect) + b"]\n")


class DataChannelResource(JSONResource):
    """
    The resource of one HTTP data channel transport.

    @cvar channelClass: the L{HTTPDataChannel} subclass to make per request.
    @cvar joinListenSince: where a join-listen request with no C{last}
        starts: C{None} for new events only, L{OLDEST} for the retained
        history first.
    @cvar answerAtOnce: whether an attached channel that got nothing to
        write is answered with a heartbeat at once (short polling).
    """

    isLeaf = True
    channelClass = HTTPDataChannel
    #: The query parameters this endpoint takes (C{_} is for cache busters).
    parameters: AbstractSet[str] = frozenset(["session", "channel", "last", "lastEventId", "token", "_"])
    #: The transport's name (its path under the mount point), set by
    #: L{txcomet._server.resource.CometResource.addTransport}.
    transportName: Optional[str] = None
    joinListenSince: Optional[str] = None
    answerAtOnce = False

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        #: The heartbeat timer of this resource's channels.
        self.heartbeats = HeartbeatTimer(hub.clock, hub.config.heartbeat)

    def checkRequest(self, request: Request, params: DataChannelParams) -> None:
        """
        Validate transport-specific parameters (raise L{CometError}) before
        anything is joined or attached.
        """

    def render_GET(self, request: Request) -> Any:
        params = DataChannelParams.fromRequest(request, self.config.maxSubscriptions, self.parameters)
        self.checkRequest(request, params)
        if params.session is not None:
            if params.session not in self.hub.sessions and self.hub.router is not None:
                # Another node may hold it: move it here first.
                d = self.hub.findSession(params.session)
                d.addCallback(self._listenMoved, request, params)
                d.addErrback(self._joinFailed, request)
                return NOT_DONE_YET
            session = self.hub.getSession(params.session)
            channel = self.channelClass(self, request, params)
            channel.setHeaders()
            channel.setPosition(params.last or session.resumePoint)
            self._listen(session, channel, params.last)
            return NOT_DONE_YET
        d = self._joinListen(request, params)
        d.addErrback(self._joinFailed, request)
        return NOT_DONE_YET

    def _listenMoved(self, session: Session, request: Request, params: DataChannelParams) -> None:
        if request._disconnected:
            return
        channel = self.channelClass(self, request, params)
        channel.setHeaders()
        channel.setPosition(params.last or session.resumePoint)
        self._listen(session, channel, params.last)

    def render_HEAD(self, request: Request) -> bytes:
        """
        The headers a C{GET} would be answered with, at once: a probe (a
        load balancer's health check, say) is neither subscribed nor held.
        """
        params = DataChannelParams.fromRequest(request, self.config.maxSubscriptions, self.parameters)
        self.checkRequest(request, params)
        for name in params.channels:
            validatePattern(name)
        if params.session is not None:
            self.hub.getSession(params.session)
        self.channelClass(self, request, params).setHeaders()
        return b""

    def _listen(self, session: Session, channel: HTTPDataChannel, last: Optional[str]) -> None:
        channel.begin(session)
        session.attach(channel, last)
        if self.answerAtOnce and not channel.ended:
            channel.writeHeartbeat()

    @inlineCallbacks
    def _joinListen(self, request: Request, params: DataChannelParams):
        origin = request.getHeader("Origin")
        credentials = {
            "origin": origin,
            "auth": requestToken(request, params.args),
            "transport": self.transportName,
            "headers": forwardedHeaders(request, self.config),
        }
        since = params.last if params.last is not None else self.joinListenSince
        session, position, recovered = yield self.hub.joinListen(params.channels, since, credentials)
        try:
            if request._disconnected:
                session.close(None)
                return
            channel = self.channelClass(self, request, params)
            channel.setHeaders()
            channel.setPosition(position)
            expires = getattr(session.grant, "expires", None)
            if expires is not None:
                request.setHeader(b"X-Comet-Token-Expires", b"%d" % (expires,))
            if params.last is not None:
                # Resuming through history: say whether it was complete, so
                # a gap is never silent.
                request.setHeader(b"X-Comet-Recovered", b"true" if recovered else b"false")
            self._listen(session, channel, None)
        except BaseException:
            session.close(None)
            raise

    def _joinFailed(self, failure: Failure, request: Request) -> None:
        if request._disconnected or request.finished:
            return
        error = asCometError(failure, "join-listen")
        request.write(writeError(request, error, getattr(request, "cometCallback", None)))
        request.finish()


class PollResource(DataChannelResource):
    """
    C{GET /comet/poll}: short polling.  Answers at once with the queued
    events as a JSON array (C{[]} when there are none).  Join-listen with
    no C{last} answers with the channels' retained history.
    """

    joinListenSince = OLDEST
    answerAtOnce = True


class LongPollResource(DataChannelResource):
    """
    C{GET /comet/longpoll}: long-polling.  Held until there is something to
    send (answered as a JSON array) or the heartbeat interval passes
    (answered C{[]}); the client asks again with its last event id.
    """
