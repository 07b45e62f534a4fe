# -*- test-case-name: tests.transports.test_bayeux_websocket -*-
"""
Bayeux's C{websocket} connection type: an upgrade on the same URL as the
HTTP endpoint (C{<mount>/bayeux}), through Autobahn as C{<mount>/ws} is.

Each text frame either way is a JSON array of Bayeux messages.  The
connection is the session's data channel once the client connects:
deliveries go out as they arrive, each event in a frame of its own (built
once per event), while the connect's reply is held for the heartbeat
interval, so the client connects again about then, as with long-polling.
A second connect answers the held one at once.  The acknowledgement
extension is long-polling's only; over WebSocket, deliveries are not
numbered.
"""

from typing import Any, List, Optional, Sequence

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txcomet._model.errors import CometError
from txcomet._model.event import Event, encodeJSON
from txcomet._sessions.session import Session
from txcomet._sessions.hub import Hub
from txcomet._transports.bayeux.endpoint import BayeuxEndpoint, ConnectRequest
from txcomet._fastpath.writer import writeThrough
from txcomet._transports.bayeux.protocol import BAYEUX, WEBSOCKET, encodeArray, fromCometError, parseMessages
from txcomet._transports.http import decodeJSON
from txcomet._transports.wscommon import ClosedNotice, HubWebSocketFactory, frameText, originAllowed
from txcomet.interfaces import IDataChannel, IFraming

log = Logger()

#: RFC 6455's close codes: a frame that is not a Bayeux message array, a
#: binary frame, the server stopping, and a failure on the server.
INVALID_PAYLOAD = 1007
UNSUPPORTED_DATA = 1003
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


@implementer(IFraming)
class BayeuxWebSocketFraming:
    """
    A delivery as the complete WebSocket text frame of a one-message Bayeux
    array: the same bytes for every client, built once per event (nothing
    for a presence notice, which has no Bayeux form).
    """

    name = "bayeux-ws"

    def frameEvent(self, event: Event) -> bytes:
        delivery = event.framed(BAYEUX)
        return frameText(b"[" + delivery + b"]") if delivery else b""


FRAMING = BayeuxWebSocketFraming()


@implementer(IDataChannel, IPushProducer)
class BayeuxWebSocketProtocol(WebSocketServerProtocol, ClosedNotice):
    """
    One Bayeux WebSocket connection; see the module docstring.

    @ivar session: the session this connection is the data channel of.
    @ivar connect: the connect whose reply is held, if any.
    """

    oneShot = False
    transportName = "bayeux-ws"

    def __init__(self) -> None:
        WebSocketServerProtocol.__init__(self)
        self.session: Optional[Session] = None
        self.connect: Optional[ConnectRequest] = None
        self._hold: Any = None
        self._origin: Optional[str] = None
        self._lost = False
        self._paused = False
        self._closeWaiters: Optional[List[Deferred]] = None

    def connectionMade(self) -> None:
        WebSocketServerProtocol.connectionMade(self)
        # twisted.web's channel registered itself as the transport's
        # producer; the connection is ours now, and so is its flow control.
        transport = self.transport
        try:
            transport.unregisterProducer()
            transport.registerProducer(self, True)
        except Exception:
            log.failure("Taking over flow control of {transport!r} failed", transport=transport)

    # flow control: a connection whose send buffer is full lets go of its
    # session, which queues what arrives within its limits (and closes as a
    # slow consumer past them) until the buffer drains.

    def pauseProducing(self) -> None:
        self._paused = True
        session = self.session
        if session is not None and session.dataChannel is self:
            session.detach(self)

    def resumeProducing(self) -> None:
        self._paused = False
        session = self.session
        if session is None or self._lost or session.dataChannel is self:
            return
        if session.dataChannel is not None:
            # The client connected another way meanwhile: that one has it.
            self.session = None
            return
        try:
            session.attach(self, None)
        except CometError:
            # Closed meanwhile (a slow consumer, say): the held connect says so.
            self.session = None
            connect = self.connect
            if connect is not None:
                reason = session.closeReason or "expired"
                reply = self.factory.endpoint.closedReply(connect, reason, reason != "kicked")
                self._answerConnect(reply)

    def stopProducing(self) -> None:
        self._paused = True

    def onConnect(self, request: Any) -> Any:
        factory = self.factory
        self._origin = request.origin or None
        if not originAllowed(factory.hub.config, self._origin, request.headers.get("host")):
            raise ConnectionDeny(403, "Origin not allowed")
        if factory.stopped:
            raise ConnectionDeny(503, "Shutting down")
        factory.connections.add(self)
        return None

    def onClose(self, wasClean: bool, code: Optional[int], reason: Optional[str]) -> None:
        self._lost = True
        self.factory.connections.discard(self)
        self._cancelHold()
        self.connect = None
        session, self.session = self.session, None
        if session is not None:
            session.detach(self)
        self._tellClosed()

    def goAway(self) -> None:
        """
        The server is stopping: answer the held connect (its session is
        closed with C{shutdown}, which advises a new handshake) and close.
        """
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(GOING_AWAY, b"shutdown")
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    # messages from the client

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.state != self.STATE_OPEN:
            return
        if isBinary:
            self.sendCloseFrame(UNSUPPORTED_DATA, b"Bayeux frames are JSON text")
            return
        try:
            messages = parseMessages(decodeJSON(payload))
        except CometError as error:
            self.sendCloseFrame(INVALID_PAYLOAD, error.message.encode("utf-8")[:120])
            return
        endpoint: BayeuxEndpoint = self.factory.endpoint
        d = endpoint.process(messages, (WEBSOCKET,), self._origin, acks=False)
        d.addCallback(self._answer)
        d.addErrback(self._failed)

    def _answer(self, result: Any) -> None:
        replies, connect = result
        if self._lost:
            return
        endpoint: BayeuxEndpoint = self.factory.endpoint
        framed = [encodeJSON(r) for r in replies]
        if connect is None:
            if framed:
                self._send(framed)
            return
        if self.connect is not None:
            # A second connect answers the first at once.
            self._answerConnect()
        session = connect.session
        if self.session is not None and self.session is not session:
            old, self.session = self.session, None
            old.detach(self)
        self.connect = connect
        if framed:
            self._send(framed)
        if session.dataChannel is not self:
            self.session = session
            try:
                if self._paused:
                    session.checkOpen()  # resumeProducing attaches it
                else:
                    session.attach(self, None)
            except CometError as error:
                self.session = None
                self.connect = None
                self._send([encodeJSON(endpoint.failure(connect.message, fromCometError(error)))])
                return
        if self.connect is not connect:
            return  # the session closed while attaching; the reply went
        if replies or not connect.hold:
            self._answerConnect()
        else:
            self._hold = self.factory.hub.clock.callLater(self.factory.hub.config.heartbeat, self._answerConnect)

    def _failed(self, failure: Failure) -> None:
        log.failure("A Bayeux WebSocket batch failed", failure)
        if not self._lost:
            self.sendCloseFrame(INTERNAL_ERROR, b"internal error")

    def _cancelHold(self) -> None:
        if self._hold is not None:
            if self._hold.active():
                self._hold.cancel()
            self._hold = None

    def _answerConnect(self, reply: Optional[dict] = None) -> None:
        """
        Send the held connect's reply (a plain one unless given).
        """
        self._cancelHold()
        connect, self.connect = self.connect, None
        if connect is None or self._lost:
            return
        if reply is None:
            reply = self.factory.endpoint.connectReply(connect, None)
        self._send([encodeJSON(reply)])

    def _send(self, framed: Sequence[bytes]) -> None:
        if self.state == self.STATE_OPEN:
            self.sendMessage(encodeArray(framed))

    # IDataChannel

    def writeEvents(self, events: Sequence[Event]) -> None:
        # Once per subscriber per event: the frame is built once per event
        # and written as it is (the factory offers no compression, so every
        # client's frame is the same bytes); flow control detaches the
        # session while the socket is full.
        if self.state != self.STATE_OPEN:
            return
        if len(events) == 1:
            frames = events[0].framed(FRAMING)
        else:
            frames = b"".join([e.framed(FRAMING) for e in events])
        if frames:
            writeThrough(self.transport, frames)

    def writeHeartbeat(self) -> None:
        self._answerConnect()

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        connect = self.connect
        self.session = None
        if connect is not None:
            self._answerConnect(self.factory.endpoint.closedReply(connect, reason, reconnect))


class BayeuxWebSocketFactory(HubWebSocketFactory):
    """
    Makes a L{BayeuxWebSocketProtocol} per connection, configured as every
    txcomet WebSocket endpoint is (see L{HubWebSocketFactory}), without
    compression.
    """

    protocol = BayeuxWebSocketProtocol

    def __init__(self, hub: Hub, endpoint: BayeuxEndpoint) -> None:
        self.endpoint = endpoint
        HubWebSocketFactory.__init__(self, hub)

