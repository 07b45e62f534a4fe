# -*- test-case-name: tests.client.test_client,tests.system.test_auth_client,tests.system.test_client_real -*-
"""
A txcomet client for Twisted applications and scripts: the same operations
as the browser client (join, subscribe, publish, presence, leave) over any
of the server's data channel transports, with reconnection and resume.

    from twisted.internet.task import react
    from txcomet import CometClient

    async def main(reactor):
        client = CometClient("http://127.0.0.1:8080/comet", transport="sse")
        await client.subscribe("chat/lobby", lambda event: print(event["data"]))
        await client.publish("chat/lobby", {"text": "hello"})

HTTP goes through treq; the C{ws} transport through Autobahn.  Control
operations go through the control channel (C{POST <mount>/control}); the
data channel is one of C{poll}, C{longpoll}, C{jsonp}, C{xhr-stream},
C{iframe}, C{sse}, C{multipart} or C{ws}.
"""

import json
import random
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    inlineCallbacks,
    maybeDeferred,
    succeed,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from txcomet._client.channel import ChannelReader
from txcomet._client.parsers import _clientError, _errorFrom, _safeJSON
from txcomet._model.errors import CometError

log = Logger()

#: The data channel transports this client speaks.
TRANSPORTS = ("ws", "sse", "xhr-stream", "iframe", "multipart", "longpoll", "jsonp", "poll")


class _Subscription:
    """
    One subscribed pattern: its callbacks, where it resumes from when
    there is no event seen on it yet, and the session it is subscribed in.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.callbacks: List[Callable[[dict], Any]] = []
        self.since: Optional[str] = None
        self.session: Optional[str] = None
        self.ack: Optional[dict] = None
        #: the channel token it was given, or a callable giving one (asked
        #: again every time the subscription is made, after a rejoin too)
        self.token: Any = None


class CometClient(ChannelReader):
    """
    A client of one txcomet server.

    @ivar state: C{None} (idle), C{"ready"} (joining), C{"joined"} (a
        session, no data channel yet), C{"listening"}, C{"error"}
        (reconnecting after a backoff) or C{"abort"} (the server closed the
        session for good).
    @ivar transport: the data channel transport in use.
    @ivar session: the session id, once joined.
    @ivar clientId: the public id others see in presence.
    @ivar expires: when the connection token expires (seconds since the
        epoch), as the join reply or the last refresh said; or C{None}.

    With C{getToken} (a callable returning a token, or a L{Deferred} of
    one), the client asks for a token before every join and, before the
    token expires, for a new one that it sends with a C{refresh}; if the
    session was closed for C{token_expired} anyway, it joins again with a
    fresh token and resumes each channel where it was.
    """

    def __init__(
        self,
        url: str,
        transport: str = "longpoll",
        user: Optional[str] = None,
        info: Optional[dict] = None,
        auth: Optional[str] = None,
        secret: Optional[str] = None,
        reactor: Any = None,
        pollInterval: float = 1.0,
        backoff: tuple = (0.25, 15.0),
        http: Any = None,
        getToken: Optional[Callable[[], Any]] = None,
        publishRetries: int = 5,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError("Unknown transport %r; the transports are %s" % (transport, ", ".join(TRANSPORTS)))
        if reactor is None:
            from twisted.internet import reactor
        if http is None:
            import treq

            http = treq
        self.url = url.rstrip("/")
        self.transport = transport
        self.user = user
        self.info = info
        self.auth = auth
        self.getToken = getToken
        self.expires: Optional[float] = None
        self._refreshCall: Any = None
        self.secret = secret
        self.reactor = reactor
        self.pollInterval = pollInterval
        self.backoff = backoff
        #: Times a publish the server refused as C{unavailable} (503: the
        #: bus could not distribute it, so it was not published) is tried
        #: again, with the backoff, before the caller is told.
        self.publishRetries = publishRetries
        self.http = http
        self.state: Optional[str] = None
        self.session: Optional[str] = None
        self.clientId: Optional[str] = None
        self.heartbeat = 25.0
        self._subs: Dict[str, _Subscription] = {}
        self._last: Optional[str] = None
        self._lastByChannel: Dict[str, str] = {}
        self._stateCallbacks: List[Callable[[Optional[str]], Any]] = []
        self._joining: Optional[Deferred] = None
        self._joinWaiters: List[Deferred] = []
        self._running = False
        self._channel: Any = None  # the Deferred or protocol of the data channel
        self._generation = 0
        self._attempt = 0
        self._retryCall: Any = None
        self._body: Any = None
        from twisted.web.client import HTTPConnectionPool

        #: This client's connections: L{close} (or L{leave}) closes them.
        self.pool = HTTPConnectionPool(reactor)

    # state

    def onState(self, callback: Callable[[Optional[str]], Any]) -> None:
        """
        Call C{callback(state)} on every change of L{state}.
        """
        self._stateCallbacks.append(callback)

    def _setState(self, state: Optional[str]) -> None:
        if state == self.state:
            return
        self.state = state
        for callback in list(self._stateCallbacks):
            try:
                callback(state)
            except Exception:
                log.failure("A state callback failed")

    # HTTP

    @inlineCallbacks
    def _request(self, method: str, url: str, body: Any = None, headers: Optional[dict] = None, timeout: Optional[float] = 30):
        try:
            response = yield self.http.request(method, url, data=body, headers=headers, timeout=timeout, pool=self.pool)
            content = yield response.content()
        except CancelledError:
            raise _clientError("timeout", "%s %s took too long." % (method, url))
        except Exception as e:
            raise _clientError("network", "%s %s failed: %s" % (method, url, e))
        return response, content

    @inlineCallbacks
    def _postJSON(self, path: str, body: Any, headers: Optional[dict] = None, answered: str = "ok"):
        """
        POST C{body} as JSON to C{path}; fire with the reply (a dict with
        an C{answered} field, true when it is C{"ok"}), or fail with the
        L{CometError} the server answered.
        """
        headers = dict(headers or {}, **{"Content-Type": ["application/json"]})
        response, content = yield self._request("POST", self.url + path, json.dumps(body).encode("utf-8"), headers)
        reply = _safeJSON(content)
        good = isinstance(reply, dict) and (reply.get("ok") if answered == "ok" else answered in reply)
        if response.code != 200 or not good:
            raise _errorFrom(reply, response.code)
        return reply

    def control(self, op: str, **fields: Any) -> Deferred:
        """
        Send one control message (C{session} is added once joined); fire
        with the answer, or fail with L{CometError}.
        """
        return self._postJSON("/control", dict(fields, op=op))

    # operations

    def join(self) -> Deferred:
        """
        Join (once): fire with the session id.  L{subscribe} and
        L{publish} join for you.
        """
        if self.session is not None and self._joining is None:
            return succeed(self.session)
        d: Deferred = Deferred()
        self._joinWaiters.append(d)
        if self._joining is None:
            self._joining = self._join()
        return d

    @inlineCallbacks
    def _doJoin(self):
        fields: Dict[str, Any] = {}
        if self.getToken is not None:
            self.auth = yield maybeDeferred(self.getToken)
        for name in ("user", "info", "auth"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        self._setState("ready")
        reply = yield self.control("join", **fields)
        self.session = reply["session"]
        self.clientId = reply["client"]
        self.heartbeat = float(reply.get("heartbeat", 25))
        self._tokenExpires(reply.get("expires"))
        # Before any event, the data channel resumes from the session's
        # start marker: what a connection that died early carried comes again.
        self._last = reply.get("last")
        self._setState("joined")
        for sub in list(self._subs.values()):
            fields = yield self._subscribeFields(sub, self._since(sub.pattern))
            ack = yield self.control("subscribe", session=self.session, channel=sub.pattern, **fields)
            self._acked(sub, ack, self.session)
        return self.session

    @inlineCallbacks
    def _subscribeFields(self, sub: "_Subscription", since: Optional[str]):
        """
        The fields of C{sub}'s subscribe request beside the channel: where
        it resumes, and its channel token (asked of its C{token} callable
        each time, so a rejoin brings a fresh one).
        """
        fields: Dict[str, Any] = {}
        if since is not None:
            fields["since"] = since
        token = sub.token
        if callable(token):
            token = yield maybeDeferred(token, sub.pattern)
        if token is not None:
            fields["token"] = token
        return fields

    def _join(self) -> Deferred:
        d = self._doJoin()

        def done(result: Any) -> None:
            self._joining = None
            waiters, self._joinWaiters = self._joinWaiters, []
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
            if self._running and not isinstance(result, Failure):
                self._openChannel()

        d.addBoth(done)
        return d

    def _tokenExpires(self, expires: Optional[float]) -> None:
        """
        The token lasts until C{expires}: with C{getToken}, refresh it
        before then (halfway through what is left, at most 30 s early).
        """
        self.expires = expires
        if self._refreshCall is not None and self._refreshCall.active():
            self._refreshCall.cancel()
        self._refreshCall = None
        if expires is None or self.getToken is None:
            return
        left = expires - self.reactor.seconds()
        self._refreshCall = self.reactor.callLater(max(0.0, left - min(30.0, left / 2)), self._refresh)

    @inlineCallbacks
    def _refresh(self):
        self._refreshCall = None
        session = self.session
        if session is None or self.getToken is None:
            return
        try:
            token = yield maybeDeferred(self.getToken)
            self.auth = token
            reply = yield self.control("refresh", session=session, token=token)
        except Exception:
            log.failure("Refreshing the connection token failed; the session ends when it expires")
            return
        self._tokenExpires(reply.get("expires"))

    def _since(self, pattern: str) -> Optional[str]:
        if "*" in pattern:
            return None
        sub = self._subs.get(pattern)
        return self._lastByChannel.get(pattern) or (sub.since if sub else None)

    def _acked(self, sub: _Subscription, ack: dict, session: str) -> None:
        if sub.since is None and ack.get("position"):
            sub.since = ack["position"]
        sub.session = session
        sub.ack = ack

    @inlineCallbacks
    def subscribe(self, channel: str, callback: Callable[[dict], Any], since: Optional[str] = None, token: Any = None):
        """
        Deliver the events of C{channel} (a name or pattern) to
        C{callback(envelope)}: dicts with C{type} (C{"event"}, C{"join"} or
        C{"leave"}), C{channel}, C{id} and C{data}.  Starts the data
        channel.  With C{since} (an event id, or C{"oldest"}), the
        channel's retained events after it come first.  C{token} is a
        channel token for a private channel (docs/auth.md), or a callable
        given the channel and returning one (or a L{Deferred} of one),
        asked every time the subscription is made.

        @return: a L{Deferred} firing with the server's acknowledgement.
        """
        sub = self._subs.get(channel)
        if sub is None:
            sub = self._subs[channel] = _Subscription(channel)
            sub.since = since
        if token is not None:
            sub.token = token
        sub.callbacks.append(callback)
        session = yield self.join()
        if sub.session != session or since is not None and sub.ack is not None and since != sub.since:
            fields = yield self._subscribeFields(sub, since)
            ack = yield self.control("subscribe", session=session, channel=channel, **fields)
            self._acked(sub, ack, session)
        if not self._running:
            self._running = True
            if self._joining is None:
                self._openChannel()
        return sub.ack

    @inlineCallbacks
    def unsubscribe(self, channel: str):
        """
        Stop receiving C{channel}.
        """
        if self._subs.pop(channel, None) is None or self.session is None:
            return {"channel": channel, "subscribed": False}
        reply = yield self.control("unsubscribe", session=self.session, channel=channel)
        return reply

    @inlineCallbacks
    def publish(self, channel: str, data: Any):
        """
        Publish C{data} on C{channel}: through the publish API when this
        client has a publisher C{secret} or has not joined, else through
        the control channel as its session.  A publish refused as
        C{unavailable} (the server's bus could not distribute it, so it was
        not published) is tried again up to L{publishRetries} times, with
        the backoff; then the L{CometError} reaches the caller.

        @return: a L{Deferred} firing with C{{"ok": true, "id": ...}}.
        """
        from twisted.internet.task import deferLater

        low, high = self.backoff
        for attempt in range(self.publishRetries + 1):
            try:
                reply = yield self._publishOnce(channel, data)
            except CometError as error:
                if error.code != "unavailable" or attempt == self.publishRetries:
                    raise
                delay = min(high, low * 2**attempt) * random.uniform(0.5, 1.0)
                yield deferLater(self.reactor, delay, lambda: None)
            else:
                return reply

    @inlineCallbacks
    def _publishOnce(self, channel: str, data: Any):
        if self.session is None or self.secret is not None:
            headers = {"Authorization": ["Bearer " + self.secret]} if self.secret is not None else {}
            reply = yield self._postJSON("/publish/" + channel, data, headers)
            return reply
        reply = yield self.control("publish", session=self.session, channel=channel, data=data)
        return reply

    @inlineCallbacks
    def api(self, method: str, params: Optional[dict] = None, key: Optional[str] = None):
        """
        Call the server API's C{method} with C{params}, with the API key
        C{key} (default: this client's C{secret}); fire with its C{result},
        or fail with the L{CometError} the server answered.
        """
        key = key if key is not None else self.secret
        headers = {"X-API-Key": [key]} if key is not None else {}
        reply = yield self._postJSON("/api", {"method": method, "params": params or {}}, headers, answered="result")
        return reply["result"]

    @inlineCallbacks
    def presence(self, channel: str):
        """
        Who is on C{channel}: fire with a list of member dicts.
        """
        session = yield self.join()
        reply = yield self.control("presence", session=session, channel=channel)
        return reply["members"]

    @inlineCallbacks
    def leave(self):
        """
        Leave: stop the data channel and tell the server, which frees the
        session at once; then close this client's connections.
        """
        self._running = False
        self._stopChannel()
        self._tokenExpires(None)
        session, self.session = self.session, None
        self._setState(None)
        try:
            if session is not None:
                try:
                    yield self.control("leave", session=session)
                except CometError as e:
                    if e.code not in ("unknown_session", "session_closed"):
                        raise
        finally:
            yield self.close()

    def close(self) -> Deferred:
        """
        Close this client's idle connections (after L{publish} without a
        session, say).  L{leave} does it for you.
        """
        return self.pool.closeCachedConnections()

    # the data channel

    # WebSocket


