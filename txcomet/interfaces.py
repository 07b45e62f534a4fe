# -*- test-case-name: tests.test_exports,tests.bus.test_redis,tests.server.test_health,tests.auth.test_authorizer -*-
"""
The interfaces every part of txcomet is written against.

A bus (L{IEventBus}) carries events between publishers and subscribers
(L{ISubscriber}); it also keeps a bounded history per channel and, through
L{IPresence}, who is on a channel.  Sessions subscribe to the bus and hand
what it delivers to the data channel (L{IDataChannel}) a transport has
attached to them; a transport decides only how events are framed
(L{IFraming}) and how the connection is held.  L{IAuthorizer} says who may
join, subscribe and publish.

Everything that may need the network (publishing, history, presence,
subscribing) returns a L{Deferred}, so that a networked bus such as the
Redis one drops in without changing its callers.
"""

from typing import TYPE_CHECKING, Any, Optional, Sequence

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = [
    "IEvent",
    "ISubscriber",
    "IGapListener",
    "ISessionRouter",
    "IEventBus",
    "IHistory",
    "IPresence",
    "IAuthorizer",
    "IGrant",
    "ITokenAuthorizer",
    "IFraming",
    "IDataChannel",
    "IBusHealth",
]


class IEvent(Interface):
    """
    One published event, shared by every subscriber it is delivered to.

    An event is immutable once published.  Its wire encodings are computed
    at most once per framing and cached on the event, so fan-out to many
    subscribers costs one encoding per framing, not one per subscriber.
    """

    channel = Attribute("The channel name (L{str}) the event was published on.")
    data = Attribute("The payload: any JSON value.")
    kind = Attribute(
        'What the event is: C{"event"} for a message, C{"join"} or C{"leave"}'
        " for a presence notice.  It is the C{type} field on the wire."
    )
    epoch = Attribute("The bus epoch (L{str}) the event's position belongs to.")
    offset = Attribute(
        "The event's position (L{int}) in the bus epoch; it increases with"
        " every publish on the bus, across all channels."
    )
    id = Attribute('The wire id, C{"<epoch>-<offset>"} (L{str}).')
    json = Attribute(
        "The JSON envelope as UTF-8 L{bytes}: the one encoding every framing"
        " starts from."
    )

    def framed(framing: "IFraming") -> bytes:
        """
        The event as framed by C{framing}, encoded on first use and cached.
        """


class ISubscriber(Interface):
    """
    Something the bus delivers events to: a session, a test double, or an
    application's own observer.
    """

    def deliver(event: IEvent) -> None:
        """
        Receive one event.  Called on the reactor thread, in publish order
        per channel.  An exception raised here makes the bus log it and drop
        this subscriber from all its subscriptions; delivery to other
        subscribers goes on.
        """


class IGapListener(ISubscriber):
    """
    A subscriber that can be told it may have missed events: a networked
    bus that lost its backend for a while cannot prove it delivered
    everything published meanwhile.  (A subscriber without this interface
    is not told; the bus logs the gap.)
    """

    def gap() -> None:
        """
        Events may have been lost on their way to this subscriber.  The
        bus's history says which positions are still covered; a subscriber
        that tracks positions resumes from there instead of carrying on as
        if its stream were complete.
        """


class IEventBus(Interface):
    """
    A publish/subscribe bus with per-channel history.

    Channel names and patterns follow the syntax in C{docs/protocol.md}:
    segments separated by C{/}; in a pattern C{*} matches one segment and a
    final C{**} matches one or more.  A subscriber receives each event at
    most once, however many of its patterns match it.
    """

    epoch = Attribute(
        "The current epoch (L{str}).  Positions from another epoch are never"
        " covered by history."
    )

    def start() -> "Deferred[None]":
        """
        Make the bus ready (connect to its backend, if any).  Fails with a
        clear error when the backend cannot be reached.
        """

    def stop() -> "Deferred[None]":
        """
        Release the bus's resources.
        """

    def publish(
        channel: str, data: Any, kind: str = "event", store: bool = True
    ) -> "Deferred[IEvent]":
        """
        Publish C{data} on C{channel}.

        @param kind: the event's type on the wire: C{"event"}, C{"join"} or
            C{"leave"}.
        @param store: whether the event enters the channel's history
            (presence notices do not).
        @return: a L{Deferred} that fires with the published L{IEvent}
            once it has a position.
        """

    def subscribe(pattern: str, subscriber: ISubscriber) -> "Deferred[None]":
        """
        Deliver events on channels matching C{pattern} to C{subscriber} from
        now on.  Fires once the subscription is in place: an event published
        after that is delivered.
        """

    def unsubscribe(pattern: str, subscriber: ISubscriber) -> "Deferred[None]":
        """
        Stop delivering C{pattern}'s events to C{subscriber}.  Unknown
        pairs are ignored.
        """

    def unsubscribeAll(subscriber: ISubscriber) -> "Deferred[None]":
        """
        Remove every subscription C{subscriber} holds.
        """

    def history(channel: str, since: Optional[str]) -> "Deferred[IHistory]":
        """
        The retained events on C{channel} after position C{since} (a wire
        id), oldest first, and whether the history still covers C{since}:
        C{covered} is true only when no event on the channel after C{since}
        has been dropped from the history (so the events returned are all of
        them).  C{since=None} asks for everything retained.
        """

    def position() -> "Deferred[str]":
        """
        The bus's current position as a wire id: the id of the newest event
        published on any channel (C{"<epoch>-0"} before the first).
        """


class IEncodedPublisher(Interface):
    """
    A bus that can take an event's data already encoded as JSON, so that a
    publish encodes it once (the size check's encoding serves the event's
    envelope and the bus's wire).  Optional: the hub uses it where a bus
    provides it, and L{IEventBus.publish} otherwise.
    """

    def publishEncoded(
        channel: str, data: Any, dataJSON: bytes, kind: str = "event", store: bool = True
    ) -> "Deferred[IEvent]":
        """
        L{IEventBus.publish}, with C{dataJSON}: C{data} as compact JSON
        (as L{txcomet._model.event.encodeJSON} makes it).
        """


class ISessionRouter(Interface):
    """
    What a bus shared by several nodes offers so that no load balancer
    needs sticky sessions: a control request for a session another node
    holds runs there, and a data channel that lands on another node moves
    the session to it.  The hub finds it on its bus with
    C{ISessionRouter(bus, None)}.
    """

    def bindHub(hub: Any) -> None:
        """
        The hub whose sessions this node holds (called once, by the hub).
        """

    def sessionClosed(session: Any) -> None:
        """
        C{session} closed here.
        """

    def claimSession(sessionId: str) -> "Deferred[Optional[Any]]":
        """
        Move the session C{sessionId} here from the node holding it (with
        C{hub.adoptSession}, subscribed on this node's bus, having missed
        nothing): fire with the session once that node has let it go, or
        with C{None} when no node holds it.  Fails with
        L{txcomet.CometError} C{unavailable} when that cannot be done now.
        """

    def forwardControl(sessionId: str, message: dict, context: dict) -> "Deferred[dict]":
        """
        Run the control operation C{message} on the node holding session
        C{sessionId}; fire with its answer, or fail with its
        L{txcomet.CometError} (C{unknown_session} when no node holds it).
        """


class IHistory(Interface):
    """
    The answer to L{IEventBus.history}.
    """

    events = Attribute("A sequence of L{IEvent}, oldest first.")
    covered = Attribute("L{bool}: whether C{events} is every event after the position.")
    position = Attribute("The bus position (wire id) when the history was read.")


class IPresence(Interface):
    """
    Who is on a channel.  Members are described by a public client id (never
    the session id, which is a credential) and what the client said about
    itself when joining.
    """

    def addMember(channel: str, clientId: str, info: dict) -> "Deferred[bool]":
        """
        Record C{clientId} as present on C{channel}.  Fires with C{True}
        when the client was not already present.
        """

    def removeMember(channel: str, clientId: str) -> "Deferred[bool]":
        """
        Forget C{clientId} on C{channel}.  Fires with C{True} when the
        client was present.
        """

    def members(channel: str) -> "Deferred[Sequence[dict]]":
        """
        The members of C{channel}: dicts with at least C{"client"}.
        """


class IAuthorizer(Interface):
    """
    Decides who may join, subscribe and publish.  Each method returns a
    L{bool} or a L{Deferred} that fires with one; C{False} is answered with
    HTTP 403 C{forbidden} (or an error frame over WebSocket).  A method may
    instead raise (or fail with) a L{txcomet.CometError} to answer with its
    code and message: C{invalid_token}, C{forbidden} naming the rule that
    refused, C{unavailable}.
    """

    def authorizeJoin(credentials: dict) -> "bool | IGrant | Deferred[bool | IGrant]":
        """
        May a client join?  C{credentials} holds what the join request
        carried: C{user}, C{info}, C{auth} (a token, from the join's
        C{auth} field, an C{Authorization: Bearer} header or a C{token=}
        query parameter), C{origin}, and where known C{transport} and
        C{headers} (the request's headers, lower-case names).

        Instead of C{True}, an authorizer may answer an L{IGrant}: the
        identity the session gets, which wins over what the client said.
        """

    def authorizeSubscribe(session: Any, pattern: str) -> "bool | Deferred[bool]":
        """
        May C{session} subscribe to C{pattern} (a channel or a wildcard
        pattern)?
        """

    def authorizePublish(session: Any, channel: str) -> "bool | Deferred[bool]":
        """
        May C{session} publish on C{channel}?  (The HTTP publish API is
        guarded by the publisher secret instead.)
        """


class IGrant(Interface):
    """
    What an L{IAuthorizer} grants a joining client, when it knows more
    than yes: who the client is (from a verified token or a backend), the
    channels the server subscribes it to, and until when.
    """

    user = Attribute("The user (L{str}), or C{None} for anonymous: the presence identity.")
    info = Attribute("What presence shows about the user (a dict), or C{None}.")
    channels = Attribute("Channels (L{list} of L{str}) the session is subscribed to on join.")
    expires = Attribute("When the grant ends (seconds since the epoch), or C{None}.")

    def bind(session: Any) -> None:
        """
        The session made with this grant (start any expiry timer).
        """

    def release() -> None:
        """
        The session has closed (stop any timer).
        """

    def export() -> dict:
        """
        The grant as JSON-safe data, for the node a session moves to
        (L{ITokenAuthorizer.restoreGrant} there).
        """


class ITokenAuthorizer(IAuthorizer):
    """
    An authorizer that also takes tokens after joining and decides the
    rest of what a channel allows: the built-in one
    (L{txcomet._auth.authorizer.CometAuthorizer}) and wrappers of it.
    """

    def authorizeChannelToken(session: Any, channel: str, token: str) -> "bool | Deferred[bool]":
        """
        May C{session} subscribe to C{channel} with the channel token
        C{token} (passed with C{subscribe})?
        """

    def authorizePresence(session: Any, channel: str) -> "bool | Deferred[bool]":
        """
        May C{session} see who is on C{channel}?
        """

    def authorizeHistory(session: Any, channel: str) -> "bool | Deferred[bool]":
        """
        May C{session} read C{channel}'s retained events (C{since} on
        subscribe)?
        """

    def notices(channel: str) -> bool:
        """
        Whether join/leave notices are published on C{channel}.
        """

    def restoreGrant(exported: dict) -> IGrant:
        """
        The grant of a session moved here from another node, from its
        L{IGrant.export}.
        """

    def refresh(session: Any, token: str) -> "Deferred[dict]":
        """
        Replace C{session}'s connection token with C{token} before it
        expires: fire with the answer's fields (C{expires}), or fail with
        L{txcomet.CometError} (C{invalid_token}, C{token_expired}).
        """


class IFraming(Interface):
    """
    How one transport frames the messages of a data channel.  A framing is
    shared by every connection of its transport, so what it frames per
    event is cached on the event.
    """

    name = Attribute("A short unique name, the key of the per-event cache.")

    def frameEvent(event: IEvent) -> bytes:
        """
        The bytes that carry C{event} on this transport.  Must depend only
        on the event, never on the connection.
        """


class IDataChannel(Interface):
    """
    The long-lived half of a client: a request or connection that a
    session writes events, heartbeats and its close notice to.

    A session has at most one data channel at a time.  A one-shot channel
    (polling, long-polling, script-tag) ends after one write, and the
    session queues what arrives until the next one attaches; a streaming
    channel stays attached until it closes.
    """

    oneShot = Attribute("L{bool}: whether the channel ends after one write.")
    transportName = Attribute(
        "The transport's name (L{str}: C{sse}, C{ws}, C{longpoll}, C{bayeux}, ...), as the server API"
        " and the metrics count connections."
    )

    def writeEvents(events: Sequence[IEvent]) -> None:
        """
        Send C{events} (at least one), in order.
        """

    def writeHeartbeat() -> None:
        """
        Tell the client the connection is alive (an empty answer for a
        one-shot channel).
        """

    def closeChannel(reason: str, reconnect: bool) -> None:
        """
        Send a C{close} message saying why, and end the channel.  The
        session has already let go of it.
        """


class IBusHealth(Interface):
    """
    A bus that distributes events through something that can be out of
    reach (Redis, another process) says whether it can, for health checks
    (C{<mount>/health}).  A bus without it is always healthy.
    """

    def problem() -> Optional[str]:
        """
        C{None} while the bus can distribute events, else why it cannot (a
        sentence for the operator: no secrets, no addresses with
        passwords).
        """
