# -*- test-case-name: tests.transports.test_bayeux,tests.transports.test_bayeux_websocket -*-
"""
The Bayeux meta messages and publishes, whatever transport carries them.

L{BayeuxEndpoint.process} runs a batch of messages in order and answers
each but C{/meta/connect}; the connect (at most one a batch) comes back as
a L{ConnectRequest} for the transport, which attaches its data channel to
the session and answers it with L{BayeuxEndpoint.connectReply} when it
writes (deliveries first, the connect reply last).
"""

import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.logger import Logger

from txcomet._model.errors import CometError
from txcomet._sessions.session import Session
from txcomet._sessions.hub import Hub
from txcomet._transports.bayeux.protocol import (
    CONNECT,
    DISCONNECT,
    HANDSHAKE,
    MINIMUM_VERSION,
    NONE,
    REHANDSHAKE,
    SUBSCRIBE,
    UNSUBSCRIBE,
    VERSION,
    BayeuxError,
    advice,
    fromCometError,
    isMeta,
    isService,
    missingField,
    sessionUnknown,
    toTopic,
)

log = Logger()

#: How many connect replies (batches) a client's acknowledgements can
#: reach back over.
ACK_WINDOW = 64

#: The C{ext} fields of a handshake that carry a credential.  Their values
#: go to the authorizer as C{credentials["auth"]} and are never logged.
AUTH_FIELDS = ("auth", "token")

#: A service: called with the session, the Bayeux channel and the data a
#: client published there; its answer (a JSON value, or C{None} for none,
#: or a L{Deferred} of one) goes back to that client only.
ServiceHandler = Callable[[Session, str, Any], Any]


class ClientState:
    """
    What a session needs beyond the session model to speak Bayeux: whether
    it uses the acknowledgement extension, and the last event id each
    recent connect reply (a numbered I{batch}) carried.

    @ivar ack: whether the client asked for acknowledgements.
    @ivar batch: the number of the last connect reply sent.
    @ivar batches: batch number -> the id of the last event written up to
        and including that batch (the start marker before the first).
    """

    __slots__ = ("ack", "batch", "batches", "lastId", "__weakref__")

    def __init__(self, startMarker: str, ack: bool = False) -> None:
        self.ack = ack
        self.batch = 0
        self.lastId = startMarker
        self.batches: Dict[int, str] = {0: startMarker}

    def nextBatch(self, lastId: Optional[str]) -> int:
        """
        Number a connect reply that wrote events up to C{lastId} (C{None}
        when it wrote none).
        """
        if lastId is not None:
            self.lastId = lastId
        self.batch += 1
        self.batches[self.batch] = self.lastId
        if len(self.batches) > ACK_WINDOW:
            del self.batches[min(self.batches)]
        return self.batch

    def resumeFrom(self, acked: object) -> Optional[str]:
        """
        The C{last} to attach with, for a connect that acknowledges batch
        C{acked}: the last event id that batch carried, so everything sent
        after it (batches the client never received) is sent again.
        C{None} (send what is pending) when acknowledgements are off or
        the batch is unknown or the newest.
        """
        if not self.ack or not isinstance(acked, int) or isinstance(acked, bool):
            return None
        if acked == self.batch:
            return None
        return self.batches.get(acked)


class ConnectRequest:
    """
    A valid C{/meta/connect} for the transport to attach a data channel for.

    @ivar session: the client's L{Session}.
    @ivar state: its L{ClientState}.
    @ivar message: the connect message.
    @ivar last: the C{last} to attach with (see L{ClientState.resumeFrom}).
    @ivar hold: whether the client lets the server hold the connect (not
        when it asked for C{advice: {timeout: 0}}).
    """

    def __init__(self, session: Session, state: ClientState, message: dict, last: Optional[str], hold: bool) -> None:
        self.session = session
        self.state = state
        self.message = message
        self.last = last
        self.hold = hold


def _messageId(message: dict) -> Any:
    value = message.get("id")
    if isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _reply(message: dict, channel: str, **fields: Any) -> Dict[str, Any]:
    reply: Dict[str, Any] = {"channel": channel}
    reply.update(fields)
    messageId = _messageId(message)
    if messageId is not None:
        reply["id"] = messageId
    return reply


class BayeuxEndpoint:
    """
    Runs Bayeux messages against a L{Hub}.

    @ivar types: the connection types this server offers, in order of
        preference (the handshake's C{supportedConnectionTypes}).
    @ivar services: Bayeux service channel -> L{ServiceHandler}; the
        channel C{/service/**} catches the rest.
    """

    def __init__(self, hub: Hub, types: Sequence[str]) -> None:
        self.hub = hub
        self.types = list(types)
        self.services: Dict[str, ServiceHandler] = {}
        self._clients: "weakref.WeakKeyDictionary[Session, ClientState]" = weakref.WeakKeyDictionary()
        self._meta = {
            HANDSHAKE: self._handshake,
            SUBSCRIBE: self._subscribe,
            UNSUBSCRIBE: self._unsubscribe,
            DISCONNECT: self._disconnect,
        }

    def addService(self, channel: str, handler: ServiceHandler) -> None:
        """
        Hand what clients publish on C{channel} (a C{/service/...} channel,
        or C{/service/**} for every one without a handler of its own) to
        C{handler} instead of the bus.
        """
        if not isService(channel) or channel == "/service":
            raise ValueError("A service channel starts with /service/, not %r" % (channel,))
        self.services[channel] = handler

    def stateOf(self, session: Session) -> ClientState:
        """
        The L{ClientState} of C{session} (a new one for a session that did
        not handshake here: one joined on the control channel, or moved
        from another node).
        """
        state = self._clients.get(session)
        if state is None:
            state = self._clients[session] = ClientState(session.resumePoint)
        return state

    # a batch

    def process(
        self, messages: List[dict], types: Sequence[str], origin: Optional[str] = None, acks: bool = True
    ) -> Deferred:
        """
        Run C{messages} in order.

        @param types: the connection types the carrying transport accepts
            in a connect.
        @param origin: the request's C{Origin}, for the authorizer.
        @param acks: whether the carrying transport numbers its connect
            replies for the acknowledgement extension.
        @return: a L{Deferred} firing with C{(replies, connect)}: the reply
            dicts, in order, and the batch's L{ConnectRequest} or C{None}.
        """
        return self._process(messages, types, origin, acks)

    @inlineCallbacks
    def _process(self, messages: List[dict], types: Sequence[str], origin: Optional[str], acks: bool):
        replies: List[dict] = []
        connect: Optional[ConnectRequest] = None
        for message in messages:
            channel = message.get("channel")
            try:
                if not isinstance(channel, str):
                    raise missingField("channel")
                if channel == CONNECT:
                    if connect is not None:
                        raise BayeuxError(400, "", "One /meta/connect per request")
                    connect = yield self._connect(message, types, acks)
                    continue
                handler = self._meta.get(channel)
                if handler is not None:
                    reply = yield handler(message, origin, acks)
                elif isMeta(channel):
                    raise BayeuxError(403, channel[:80], "Nothing may be published to /meta channels")
                else:
                    reply = yield self._publish(message, channel)
                    if isinstance(reply, list):
                        replies.extend(reply)
                        continue
            except BayeuxError as error:
                reply = self.failure(message, error)
            except CometError as error:
                reply = self.failure(message, fromCometError(error, channel if isinstance(channel, str) else ""))
            except Exception:
                log.failure("A Bayeux message on {channel!r} failed", channel=str(channel)[:80])
                reply = self.failure(message, BayeuxError(500, "", "Internal error; it has been logged"))
            replies.append(reply)
        return replies, connect

    def failure(self, message: dict, error: BayeuxError) -> Dict[str, Any]:
        """
        The reply to C{message} that failed with C{error}.
        """
        channel = message.get("channel")
        reply = _reply(message, channel if isinstance(channel, str) else "", successful=False, error=error.errorText)
        if channel in (SUBSCRIBE, UNSUBSCRIBE) and "subscription" in message:
            reply["subscription"] = message["subscription"]
        if error.reconnect is not None:
            reply["advice"] = {"reconnect": error.reconnect, "interval": 0}
        return reply

    def _session(self, message: dict) -> Deferred:
        clientId = message.get("clientId")
        if not isinstance(clientId, str):
            error = missingField("clientId")
            error.reconnect = REHANDSHAKE
            raise error
        return self.hub.findSession(clientId)

    # the meta messages

    @inlineCallbacks
    def _handshake(self, message: dict, origin: Optional[str], acks: bool):
        version = message.get("version")
        if not isinstance(version, str):
            raise missingField("version")
        if version.split(".")[0] != "1":
            raise BayeuxError(400, version[:20], "Unsupported version; this server speaks 1.0", reconnect=NONE)
        offered = message.get("supportedConnectionTypes")
        if not isinstance(offered, list):
            raise missingField("supportedConnectionTypes")
        if not any(t in offered for t in self.types if isinstance(t, str)):
            raise BayeuxError(
                400,
                ",".join(str(t) for t in offered)[:80],
                "Unsupported connection type; this server offers %s" % (", ".join(self.types),),
                reconnect=NONE,
            )
        ext = message.get("ext")
        if not isinstance(ext, dict):
            ext = {}
        auth = None
        for name in AUTH_FIELDS:
            if isinstance(ext.get(name), str):
                auth = ext[name]
                break
        # The hook for token authorization: the authorizer sees the
        # handshake's ext whole, and a token in ext.auth (or ext.token)
        # as "auth", as the control channel's join passes its auth field.
        credentials = {"auth": auth, "origin": origin, "ext": ext, "protocol": "bayeux"}
        try:
            session = yield self.hub.join(credentials=credentials)
        except CometError as error:
            if error.code == "forbidden":
                raise BayeuxError(403, "", "Handshake denied", reconnect=NONE)
            raise
        state = self._clients[session] = ClientState(session.resumePoint, ack=acks and ext.get("ack") is True)
        reply = _reply(
            message,
            HANDSHAKE,
            version=VERSION,
            minimumVersion=MINIMUM_VERSION,
            supportedConnectionTypes=self.types,
            clientId=session.id,
            successful=True,
            advice=advice(self.hub.config),
        )
        if state.ack:
            reply["ext"] = {"ack": True}
        return reply

    @inlineCallbacks
    def _connect(self, message: dict, types: Sequence[str], acks: bool):
        connectionType = message.get("connectionType")
        if not isinstance(connectionType, str):
            raise missingField("connectionType")
        if connectionType not in types:
            raise BayeuxError(
                400,
                connectionType[:40],
                "Unsupported connection type here; this URL takes %s" % (", ".join(types),),
            )
        session = yield self._session(message)
        session.checkOpen()
        state = self.stateOf(session)
        ext = message.get("ext")
        last = state.resumeFrom(ext.get("ack")) if acks and isinstance(ext, dict) else None
        asked = message.get("advice")
        hold = not (isinstance(asked, dict) and asked.get("timeout") == 0)
        return ConnectRequest(session, state, message, last, hold)

    def connectReply(
        self, connect: ConnectRequest, lastId: Optional[str], error: Optional[BayeuxError] = None
    ) -> Dict[str, Any]:
        """
        The reply that answers C{connect}, after events up to C{lastId}
        (C{None}: no event) were written with it; or, with C{error}, its
        failure.
        """
        message = connect.message
        if error is not None:
            return self.failure(message, error)
        reply = _reply(
            message,
            CONNECT,
            clientId=connect.session.id,
            successful=True,
            advice=advice(self.hub.config),
        )
        state = connect.state
        if state.ack:
            reply["ext"] = {"ack": state.nextBatch(lastId)}
        return reply

    def closedReply(self, connect: ConnectRequest, reason: str, reconnect: bool) -> Dict[str, Any]:
        """
        The reply to a connect whose data channel the session closed with
        C{reason}: a plain reply when another connect took over or the
        client disconnected, else C{session_unknown} with advice to
        handshake again (or, for a client cut off, none).
        """
        if reason in ("replaced", "recycle"):
            return self.connectReply(connect, None)
        if reason == "left":
            reply = self.connectReply(connect, None)
            reply["advice"] = dict(reply["advice"], reconnect=NONE)
            return reply
        error = sessionUnknown()
        error.reconnect = REHANDSHAKE if reconnect else NONE
        return self.failure(connect.message, error)

    @inlineCallbacks
    def _subscribe(self, message: dict, origin: Optional[str], acks: bool):
        session = yield self._session(message)
        names = self._subscription(message)
        for name in names:
            if isMeta(name):
                raise BayeuxError(403, name[:80], "/meta channels cannot be subscribed to")
            if isService(name):
                # Service channels carry nothing from the bus; subscribing
                # is allowed and does nothing, as in CometD.
                continue
            topic = toTopic(name)
            try:
                yield session.subscribe(topic)
            except CometError as error:
                raise fromCometError(error, name)
        return _reply(
            message, SUBSCRIBE, clientId=session.id, subscription=message["subscription"], successful=True
        )

    @inlineCallbacks
    def _unsubscribe(self, message: dict, origin: Optional[str], acks: bool):
        session = yield self._session(message)
        names = self._subscription(message)
        for name in names:
            if isMeta(name) or isService(name):
                continue
            topic = toTopic(name)
            try:
                yield session.unsubscribe(topic)
            except CometError as error:
                raise fromCometError(error, name)
        return _reply(
            message, UNSUBSCRIBE, clientId=session.id, subscription=message["subscription"], successful=True
        )

    def _subscription(self, message: dict) -> List[str]:
        subscription = message.get("subscription")
        if isinstance(subscription, str):
            return [subscription]
        if isinstance(subscription, list) and subscription and all(isinstance(s, str) for s in subscription):
            if len(subscription) > self.hub.config.maxSubscriptions:
                raise BayeuxError(400, "subscription", "Too many channels in one message")
            return subscription
        if subscription is None:
            raise missingField("subscription")
        raise BayeuxError(400, "subscription", "A subscription is a channel name or an array of them")

    @inlineCallbacks
    def _disconnect(self, message: dict, origin: Optional[str], acks: bool):
        session = yield self._session(message)
        reply = _reply(message, DISCONNECT, clientId=session.id, successful=True)
        session.close("left")
        return reply

    # publishes

    @inlineCallbacks
    def _publish(self, message: dict, channel: str):
        session = yield self._session(message)
        session.checkOpen()
        if "data" not in message:
            raise missingField("data")
        data = message["data"]
        reply = _reply(message, channel, successful=True)
        if isService(channel):
            handler = self.services.get(channel) or self.services.get("/service/**")
            if handler is None:
                raise BayeuxError(404, channel[:80], "No service at this channel")
            self.hub.checkSize(data)
            answer = yield maybeDeferred(handler, session, channel, data)
            if answer is None:
                return reply
            self.hub.checkSize(answer)
            # The answer, to this client only, as a message with the
            # publish's id and data (what CometD's remoteCall waits for;
            # for a plain publish, a delivery on the service channel),
            # then the publish's own reply without data (what a publish
            # callback waits for).
            return [dict(reply, data=answer), reply]
        topic = toTopic(channel, wildcards=False)
        yield session.publish(topic, data)
        return reply

