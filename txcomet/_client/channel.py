# -*- test-case-name: tests.client.test_client,tests.system.test_client_real -*-
"""
The Python client's data channel: L{ChannelReader}, a part of
L{txcomet._client.client.CometClient}.

It keeps one data channel open on the transport the client was made with,
reads it with that transport's parser (L{txcomet._client.parsers}), hands
each event to the client, and opens the next one (a long-poll's next
request, a stream that ended, a connection that dropped) with the last
event id, after the backoff when something went wrong.
"""

import json
import random
from typing import Any, Callable, Dict, List
from urllib.parse import urlencode, urlsplit

from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from txcomet._client.parsers import (
    LineParser,
    MultipartParser,
    ScriptParser,
    SSEParser,
    _clientError,
    _errorFrom,
    _safeJSON,
    isNewer,
    matches,
    parseScriptAnswer,
)
from txcomet._model.errors import CometError
from txcomet._model.wire import CHANNEL_REASONS

log = Logger()


class ChannelReader:
    """
    Reading the data channel, and reopening it (a mixin of
    L{txcomet._client.client.CometClient}, whose state it shares).
    """

    __slots__ = ()

    def _dataURL(self, name: str, **extra: str) -> str:
        params: Dict[str, str] = {"session": self.session or ""}
        if self._last is not None:
            params["last"] = self._last
        params.update(extra)
        return "%s/%s?%s" % (self.url, name, urlencode(params))

    def _stopChannel(self) -> None:
        self._generation += 1
        if self._retryCall is not None and self._retryCall.active():
            self._retryCall.cancel()
        self._retryCall = None
        body, self._body = self._body, None
        if body is not None:
            body.abort()
        channel, self._channel = self._channel, None
        if channel is None:
            return
        if isinstance(channel, Deferred):
            channel.cancel()
        else:
            channel.dropConnection(abort=True)

    def _openChannel(self) -> None:
        self._stopChannel()
        if not self._running or self.session is None:
            return
        generation = self._generation
        if self.transport == "ws":
            self._openWebSocket(generation)
            return
        d = self._runHTTP(generation)
        self._channel = d
        d.addErrback(lambda f: f.trap(CancelledError))
        d.addErrback(lambda f: log.failure("The data channel failed", f))

    @inlineCallbacks
    def _runHTTP(self, generation: int):
        name = self.transport
        oneShot = name in ("poll", "longpoll", "jsonp")
        while generation == self._generation:
            extra = {"callback": "cb"} if name in ("jsonp", "iframe") else {}
            try:
                goOn = yield self._get(generation, self._dataURL(name, **extra), oneShot)
            except CancelledError:
                return
            except Exception as e:
                if generation != self._generation:
                    return
                self._ended(e if isinstance(e, CometError) else _clientError("network", str(e)))
                return
            if not goOn or generation != self._generation:
                return
            if name == "poll":
                from twisted.internet.task import deferLater

                yield deferLater(self.reactor, self.pollInterval, lambda: None)

    @inlineCallbacks
    def _get(self, generation: int, url: str, oneShot: bool):
        """
        One data channel request: fire with whether to ask again (a
        one-shot answer came), C{False} when a close message ended it, or
        fail when it broke.  A request silent for two heartbeat intervals
        is given up as dead.
        """
        response = yield self.http.request("GET", url, unbuffered=True, pool=self.pool)
        status = response.code
        contentType = (response.headers.getRawHeaders("Content-Type") or [""])[0]
        name = self.transport
        parser: Any = None
        chunks: List[bytes] = []
        if status == 200 and not oneShot:
            if name == "xhr-stream":
                parser = LineParser()
            elif name == "sse":
                parser = SSEParser()
            elif name == "iframe":
                parser = ScriptParser()
            else:
                parser = MultipartParser.fromContentType(contentType)
            self._opened(generation)
        going = [True]

        def received(data: bytes) -> None:
            body.resetWatchdog()
            if parser is None:
                chunks.append(data)
            elif going[0] and generation == self._generation:
                if not self._received(generation, parser.feed(data)):
                    going[0] = False  # a close message: the server ends the stream

        finished: Deferred = Deferred()
        body = _Body(received, finished, self.reactor, self.heartbeat * 2 + 5)
        response.deliverBody(body)
        if generation != self._generation:
            body.abort()  # stopped while the headers were on their way
            return False
        self._body = body
        yield finished
        if generation != self._generation:
            return False
        content = b"".join(chunks)
        if status != 200:
            raise _errorFrom(_safeJSON(content), status)
        if not oneShot:
            if going[0]:
                # Ended with no close message: the connection was cut.
                raise _clientError("network", "The stream ended.")
            return False
        messages = parseScriptAnswer(content) if name == "jsonp" else _safeJSON(content)
        if not isinstance(messages, list):
            raise _errorFrom(messages, status)
        self._opened(generation)
        return self._received(generation, messages)

    def _opened(self, generation: int) -> None:
        if generation == self._generation:
            self._attempt = 0
            self._setState("listening")

    def _received(self, generation: int, messages: List[dict]) -> bool:
        """
        Handle messages; return whether the channel goes on.
        """
        for message in messages:
            if generation != self._generation:
                return False
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "close":
                self._closed(message)
                return False
            if kind == "error":
                # A refused stream (an iframe's error page): say why.
                self._ended(_errorFrom(message, message.get("status", 0)))
                return False
            if kind == "heartbeat" or not isinstance(message.get("id"), str):
                continue
            eventId = message["id"]
            if isNewer(eventId, self._last):
                self._last = eventId
            channel = message.get("channel", "")
            if not isNewer(eventId, self._lastByChannel.get(channel)):
                continue
            callbacks = [cb for sub in list(self._subs.values()) if matches(sub.pattern, channel) for cb in sub.callbacks]
            if not callbacks:
                continue
            self._lastByChannel[channel] = eventId
            for callback in callbacks:
                try:
                    callback(message)
                except Exception:
                    log.failure("A subscriber callback failed")
        return True

    def _closed(self, message: dict) -> None:
        reason = message.get("reason")
        self._generation += 1
        self._channel = None
        if reason == "recycle":
            self._openChannel()
            return
        if not message.get("reconnect"):
            self._running = False
            self.session = None
            self._setState("abort")
            return
        if reason in CHANNEL_REASONS:
            self._retry(rejoin=False)
            return
        self.session = None
        self._retry(rejoin=True)

    def _ended(self, error: CometError) -> None:
        if error.code == "session_closed":
            # The server closed the session while no channel was open to
            # say so: as if the close message had come.
            self._closed(
                {"reason": error.details.get("reason"), "reconnect": error.details.get("reconnect", True)}
            )
            return
        self._channel = None
        self._generation += 1
        self._retry(rejoin=error.code == "unknown_session")

    def _retry(self, rejoin: bool) -> None:
        if not self._running:
            return
        self._setState("error")
        low, high = self.backoff
        delay = min(high, low * 2 ** self._attempt)
        delay = delay / 2 + random.random() * delay / 2
        self._attempt += 1

        def again() -> None:
            self._retryCall = None
            if not self._running:
                return
            if rejoin or self.session is None:
                self.session = None
                d = self.join()
                d.addErrback(lambda f: self._retry(rejoin=True))
            else:
                self._openChannel()

        self._retryCall = self.reactor.callLater(delay, again)

    def _openWebSocket(self, generation: int) -> None:
        from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
        from twisted.internet.endpoints import clientFromString

        client = self
        url = self._dataURL("ws").replace("http", "ws", 1)

        class Protocol(WebSocketClientProtocol):
            def onOpen(self) -> None:
                client._opened(generation)

            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                try:
                    message = json.loads(payload.decode("utf-8"))
                except ValueError:
                    return
                if message.get("type") == "error":
                    client._generation += 1
                    client._ended(_errorFrom(message, message.get("status", 0)))
                    self.dropConnection(abort=True)
                    return
                if message.get("type") == "reply":
                    return
                if not client._received(generation, [message]):
                    self.sendClose(1000)

            def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
                if generation == client._generation:
                    client._channel = None
                    client._ended(_clientError("network", "The WebSocket closed (%s %s)." % (code, reason)))

        factory = WebSocketClientFactory(url)
        factory.protocol = Protocol
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        kind = "tls" if parts.scheme == "wss" else "tcp"
        endpoint = clientFromString(self.reactor, "%s:%s:%d" % (kind, parts.hostname, port))
        d = endpoint.connect(factory)

        def connected(protocol: Any) -> None:
            if generation != self._generation:
                protocol.transport.abortConnection()
            else:
                self._channel = protocol

        def failed(failure: Failure) -> None:
            if generation == self._generation:
                self._ended(_clientError("network", "WebSocket connect failed: %s" % (failure.value,)))

        d.addCallbacks(connected, failed)


class _Body(Protocol):
    """
    Receives a data channel response's body as it arrives; L{abort} drops
    the connection (cancelling a finished request would not), and a body
    silent for C{silence} seconds is dropped as dead.
    """

    def __init__(self, received: Callable[[bytes], None], finished: Deferred, clock: Any, silence: float) -> None:
        self.received = received
        self.finished = finished
        self.clock = clock
        self.silence = silence
        self.aborted = False
        self._watchdog: Any = None

    def connectionMade(self) -> None:
        self.resetWatchdog()

    def resetWatchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.reset(self.silence)
        elif not self.finished.called:
            self._watchdog = self.clock.callLater(self.silence, self._silent)

    def _silent(self) -> None:
        self._watchdog = None
        self.abort()

    def dataReceived(self, data: bytes) -> None:
        self.received(data)

    def abort(self) -> None:
        if self.transport is not None and not self.finished.called:
            self.aborted = True
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss) and not self.aborted:
            self.finished.callback(None)
        else:
            self.finished.errback(_clientError("network", "The connection broke: %s" % (reason.getErrorMessage(),)))
