# -*- test-case-name: tests.sessions.test_session,tests.sessions.test_closed,tests.sessions.test_ratelimit,tests.auth.test_authorizer -*-
"""
The hub: the sessions of one txcomet server, joined to its bus, with the one
L{ControlDispatcher} every transport runs control operations through, the
authorizer, and what it remembers of sessions it closed.
"""

from collections import OrderedDict
from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, fail, inlineCallbacks, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.channels import isPattern, isReserved, validateChannel
from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError, sessionClosed
from txcomet._model.event import encodeJSON
from txcomet._model.stats import CLOSES, PUBLISHED, countRefusals, forbidden
from txcomet._fastpath.turn import Turn
from txcomet._bus.memory import InMemoryBus
from txcomet._sessions import handover
from txcomet._sessions.control import ControlDispatcher
from txcomet._sessions.redisrouter import RedisSessionRouter
from txcomet._sessions.session import _UNREMEMBERED, Session
from txcomet.interfaces import IAuthorizer, IEncodedPublisher, IEventBus, IGrant, ISessionRouter, ITokenAuthorizer

#: The session routers, each registered (on import) as the adapter from
#: its bus to L{ISessionRouter}, which is how the hub finds them.
ROUTERS = (RedisSessionRouter,)

#: The everyday close reasons, counted in the metrics but not logged; any
#: other (slow_consumer, kicked or a revocation's own reason,
#: token_expired, replay_unavailable, ...) gets an info line.
QUIET_CLOSES = frozenset([None, "left", "expired", "shutdown", "replaced", "recycle"])

#: At most this many closed sessions are remembered for
#: C{CometConfig.closedSessionMemory} seconds (about 100 bytes each).
CLOSED_SESSIONS_KEPT = 100000


@implementer(IAuthorizer)
class AllowAll:
    """
    The default authorizer: anyone may join, subscribe and publish.
    """

    def authorizeJoin(self, credentials: dict) -> bool:
        return True

    def authorizeSubscribe(self, session: Any, pattern: str) -> bool:
        return True

    def authorizePublish(self, session: Any, channel: str) -> bool:
        return True



class Hub:
    """
    Owns the sessions of one txcomet server and connects them to its bus.

    @ivar bus: the L{IEventBus} (an L{InMemoryBus} unless given).
    @ivar config: the L{CometConfig}.
    @ivar clock: the L{IReactorTime} every timer runs on.
    @ivar authorizer: the L{IAuthorizer}.
    @ivar sessions: session id -> L{Session}, the open sessions.
    @ivar turn: the L{Turn} that batches what one reactor turn writes to a
        connection beyond its first event.
    @ivar sessionPrefix: what this hub's session ids start with: empty, or,
        with several worker processes, the worker's number and a C{.}
        (which random ids never contain), so any worker can tell whose
        session a request is for.
    """

    log = Logger()
    sessionPrefix = ""

    @staticmethod
    def admitReserved(channel: str, token: Optional[str]) -> bool:
        """
        Whether a session may subscribe to the reserved C{channel} with
        C{token}: never, unless the server sets this (the admin page's
        channel, with its ticket; see L{txcomet._server.admin}).
        """
        return False

    def __init__(
        self,
        bus: Optional[IEventBus] = None,
        config: Optional[CometConfig] = None,
        clock: Any = None,
        authorizer: Optional[IAuthorizer] = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config if config is not None else CometConfig()
        self.bus = bus if bus is not None else InMemoryBus(self.config.historyLength)
        self.clock = clock
        self.authorizer = authorizer if authorizer is not None else AllowAll()
        #: The authorizer as an L{ITokenAuthorizer}, or C{None}.
        self.policy: Optional[ITokenAuthorizer] = ITokenAuthorizer(self.authorizer, None)
        self.sessions: Dict[str, Session] = {}
        #: session id -> (close reason, reconnect, when): sessions the
        #: server closed lately, oldest first (see L{closedError})
        self._closed: "OrderedDict[str, tuple]" = OrderedDict()
        self.turn = Turn(self.clock)
        #: The bus's L{txcomet._bus.subscribers.LocalSubscribers}, whose
        #: rosters take fan-out's shortest way; C{None} for a bus without.
        self.rosters = getattr(self.bus, "localSubscribers", None)
        #: The bus as an L{ISessionRouter}, when it can reach sessions held
        #: by other nodes sharing it (the Redis bus), else C{None}.
        #: The one L{ControlDispatcher}: the control channel, WebSocket
        #: control messages and requests forwarded by other nodes all run
        #: their operations through it.
        self.dispatcher = ControlDispatcher(self)
        self.router: Optional[ISessionRouter] = ISessionRouter(self.bus, None)
        self._encodedPublisher = IEncodedPublisher(self.bus, None)
        if self.router is not None:
            self.router.bindHub(self)

    def start(self) -> Deferred:
        """
        Start the bus.
        """
        return maybeDeferred(self.bus.start)

    def stop(self) -> Deferred:
        """
        Close every session (reason C{shutdown}) and stop the bus.
        """
        self.closeAll("shutdown")
        return maybeDeferred(self.bus.stop)

    def closeAll(self, reason: str) -> None:
        """
        Close every open session with C{reason}.
        """
        for session in list(self.sessions.values()):
            session.close(reason)

    def checkSize(self, data: Any) -> bytes:
        """
        Encode C{data} and raise L{CometError} C{too_large} if it is larger
        than C{maxMessageSize}, or C{malformed_json} if it cannot be
        encoded (a lone surrogate in a string).
        """
        try:
            encoded = encodeJSON(data)
        except UnicodeEncodeError:
            # json.loads lets "\ud800" through as a lone surrogate.
            raise CometError(
                "malformed_json", "The data holds a lone surrogate (\\ud800-\\udfff), which is not text."
            )
        except ValueError:
            # From Python code: JSON has no NaN or infinities.
            raise CometError("malformed_json", "The data holds NaN or an infinity, which JSON cannot carry.")
        except RecursionError:
            raise CometError("malformed_json", "The data is nested too deeply to encode.")
        if len(encoded) > self.config.maxMessageSize:
            raise CometError(
                "too_large",
                "The message is %d bytes; at most %d are allowed."
                % (len(encoded), self.config.maxMessageSize),
            )
        return encoded

    @inlineCallbacks
    def joinListen(self, channels: Any, since: Optional[str], credentials: dict, control: bool = False):
        """
        Join-listen, for every transport that offers it (C{?channel=NAME}
        on an HTTP data channel or a WebSocket handshake): an ephemeral
        session subscribed to C{channels}, each from C{since} (an event id,
        L{txcomet._sessions.states.OLDEST} or C{None}).  Nothing can attach
        to the session again or resume it (its id is never given out), so
        it keeps no replay buffer, unless C{control}: its client can send
        control operations on the same connection (WebSocket), and a
        C{subscribe} with C{since} there leaves out what the buffer says it
        had.  If a subscription is refused the session is closed and the
        error raised.

        @return: a L{Deferred} firing with C{(session, position,
            recovered)}: the position of the first channel's
            subscription, and whether every channel's history reached back
            to C{since}.
        """
        session = yield self.join(ephemeral=True, credentials=credentials)
        session.keepsReplay = control
        position = None
        recovered = True
        try:
            for name in channels:
                ack = yield session.subscribe(name, since)
                if position is None:
                    position = ack["position"]
                if ack.get("recovered") is False:
                    recovered = False
        except BaseException:
            session.close(None)
            raise
        return session, position, recovered

    @inlineCallbacks
    def join(
        self,
        user: Optional[str] = None,
        info: Optional[dict] = None,
        ephemeral: bool = False,
        credentials: Optional[dict] = None,
        presence: Optional[bool] = None,
    ):
        """
        Make a session, if the authorizer allows it.

        @param presence: whether the session is listed in presence and
            announced with join/leave notices on the channels it subscribes
            to; by default, when it has a C{user}.

        @return: a L{Deferred} firing with the L{Session}.
        """
        if credentials is None:
            credentials = {}
        credentials = dict(credentials, user=user, info=info)
        allowed = yield countRefusals(maybeDeferred(self.authorizer.authorizeJoin, credentials))
        if not allowed:
            raise forbidden("Joining is not allowed.")
        grant = IGrant(allowed, None)
        if grant is not None:
            # Who the authorizer says the client is wins over what it said.
            user, info = grant.user, grant.info
        session = Session(self, user=user, info=info, ephemeral=ephemeral, presence=presence)
        self.sessions[session.id] = session
        if not ephemeral:
            session._expiry = self.clock.callLater(self.config.sessionTimeout, session._expire)
        if grant is not None:
            session.grant = grant
            grant.bind(session)
            try:
                for channel in grant.channels:
                    yield session.subscribe(channel)
            except BaseException:
                session.close(None)
                raise
        return session

    @inlineCallbacks
    def authorizeSubscribe(self, session: Session, pattern: str, since: Optional[str], token: Optional[str]):
        """
        Ask the authorizer whether C{session} may subscribe to C{pattern}
        (with a channel C{token}, and reading history from C{since});
        L{CometError} C{forbidden} if not.
        """
        policy = self.policy
        if token is not None:
            if policy is None:
                raise CometError("invalid_request", "This server takes no channel tokens.")
            allowed = yield countRefusals(maybeDeferred(policy.authorizeChannelToken, session, pattern, token))
        else:
            allowed = yield countRefusals(maybeDeferred(self.authorizer.authorizeSubscribe, session, pattern))
        if not allowed:
            raise forbidden("Subscribing to %r is not allowed." % (pattern,))
        if since is not None and policy is not None:
            allowed = yield countRefusals(maybeDeferred(policy.authorizeHistory, session, pattern))
            if not allowed:
                raise forbidden("Reading the history of %r is not allowed." % (pattern,))

    @inlineCallbacks
    def authorizePresence(self, session: Session, channel: str):
        """
        Ask the authorizer whether C{session} may see who is on C{channel}
        (without an L{ITokenAuthorizer}: whether it may subscribe to it).
        """
        if self.policy is not None:
            allowed = yield maybeDeferred(self.policy.authorizePresence, session, channel)
        else:
            allowed = yield maybeDeferred(self.authorizer.authorizeSubscribe, session, channel)
        if not allowed:
            raise forbidden("Seeing who is on %r is not allowed." % (channel,))

    def notices(self, channel: str) -> bool:
        """
        Whether join/leave notices go out on C{channel}.
        """
        return self.policy is None or self.policy.notices(channel)

    def refresh(self, session: Session, token: str) -> Deferred:
        """
        Give C{session} a new connection token; an invalid one closes the
        session (reason C{invalid_token}).
        """
        session.checkOpen()
        if self.policy is None:
            return fail(CometError("invalid_request", "This server takes no tokens."))

        def failed(failure):
            if failure.check(CometError) and failure.value.code == "invalid_token":
                session.close("invalid_token")
            return failure

        return maybeDeferred(self.policy.refresh, session, token).addErrback(failed)

    def findSession(self, sessionId: object) -> Deferred:
        """
        The open session with id C{sessionId}, moved here if another node
        sharing the bus holds it (see L{ISessionRouter}); a L{Deferred}
        failing with L{CometError} C{unknown_session} when there is none.
        """
        if isinstance(sessionId, str) and sessionId in self.sessions:
            return succeed(self.sessions[sessionId])
        if self.router is None or not isinstance(sessionId, str):
            return fail(self.closedError(sessionId))
        if self.closedHere(sessionId):
            return fail(self.closedError(sessionId))
        d = self.router.claimSession(sessionId)

        def claimed(session):
            if session is None:
                raise CometError("unknown_session")
            return session

        return d.addCallback(claimed)

    def adoptSession(self, state: dict) -> Session:
        """
        Carry on here with a session another node held (exported there
        with L{txcomet._sessions.handover.exportState}, plus what arrived
        until it let go): same id, client id, subscriptions and buffer.
        Its presence stays as it is.  The caller (the router) subscribes
        it on the bus.
        """
        return handover.adopt(self, state)

    def release(self, session: Session) -> None:
        """
        Forget C{session} without closing it for its client: another node
        carries on with it.  No leave is announced and its presence stays.
        """
        handover.release(self, session)

    def getSession(self, sessionId: object) -> Session:
        """
        The open session with id C{sessionId}, or L{CometError}
        C{unknown_session}.
        """
        session = self.sessions.get(sessionId) if isinstance(sessionId, str) else None
        if session is None:
            raise self.closedError(sessionId)
        return session

    def closedHere(self, sessionId: str) -> bool:
        """
        Whether this node closed session C{sessionId} lately (and remembers
        why).
        """
        return sessionId in self._closed

    def closedError(self, sessionId: object) -> CometError:
        """
        What to answer a request naming C{sessionId}, which is not open
        here: C{session_closed} (410) with the reason and whether to join
        again, when the server closed it lately; else C{unknown_session}.
        """
        closed = self._closed.get(sessionId) if isinstance(sessionId, str) else None
        if closed is None or closed[2] + self.config.closedSessionMemory < self.clock.seconds():
            return CometError("unknown_session")
        reason, reconnect, _ = closed
        return sessionClosed(reason, reconnect)

    def _rememberClosed(self, session: "Session") -> None:
        reason = session.closeReason
        memory = self.config.closedSessionMemory
        if reason in _UNREMEMBERED or not memory:
            return
        closed = self._closed
        now = self.clock.seconds()
        closed[session.id] = (reason, session.closeReconnect, now)
        while closed:
            oldest = next(iter(closed.values()))
            if len(closed) <= CLOSED_SESSIONS_KEPT and oldest[2] + memory >= now:
                break
            closed.popitem(last=False)

    def publish(self, channel: str, data: Any) -> Deferred:
        """
        Publish C{data} on C{channel} from application code.

        @return: a L{Deferred} firing with the L{Event}.
        """
        validateChannel(channel)
        if isReserved(channel):
            raise CometError("forbidden", "Channels under ~txcomet/ are the server's own.")
        dataJSON = self.checkSize(data)
        return self.publishEncoded(channel, data, dataJSON)

    def publishEncoded(self, channel: str, data: Any, dataJSON: bytes) -> Deferred:
        """
        Publish C{data}, already encoded as C{dataJSON} by L{checkSize}, on
        the bus: the encoding serves the event (and the bus's wire) when
        the bus can take it (L{IEncodedPublisher}).
        """
        PUBLISHED.n += 1
        encoded = self._encodedPublisher
        if encoded is not None:
            return encoded.publishEncoded(channel, data, dataJSON)
        return self.bus.publish(channel, data)

    def _sessionClosed(self, session: Session, transport: Optional[str] = None) -> None:
        self.sessions.pop(session.id, None)
        reason = session.closeReason
        CLOSES.labels(reason or "none").inc()
        if reason not in QUIET_CLOSES:
            self.log.info(
                "Closed the session of client {client} (user {user}, {transport}): {reason}",
                client=session.clientId,
                user=session.user,
                transport=transport,
                reason=reason,
                channels=sorted(session.subscriptions),
            )
        self._rememberClosed(session)
        if session.grant is not None:
            session.grant.release()
        if self.router is not None:
            self.router.sessionClosed(session)
        patterns = list(session.subscriptions)
        session.subscriptions.clear()
        d = maybeDeferred(self.bus.unsubscribeAll, session)
        if session.presence:
            for pattern in patterns:
                if not isPattern(pattern):
                    d.addCallback(lambda _, p=pattern: self._announceLeave(session, p))
        d.addErrback(
            lambda f: self.log.failure("Cleaning up {session!r} failed", f, session=session)
        )

    @inlineCallbacks
    def _announceLeave(self, session: Session, channel: str):
        removed = yield self.bus.removeMember(channel, session.clientId)
        if removed and self.notices(channel):
            yield self.bus.publish(channel, session.member(), kind="leave", store=False)
