"""
Tokens and channel rules on all eight transports, over real sockets with
the real reactor: a valid token (in C{?token=}, the way a browser's
EventSource, script tag, iframe or WebSocket must send it) works; the
token's C{sub} is the presence identity; a user channel refuses another
user; a private channel needs a channel token for that channel and user;
C{**} is refused, so it delivers nothing from any channel; a bad token is
C{invalid_token}.
"""

import json

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from tests.support.auth import EXAMPLE, SECRET, mint, tempPath
from tests.support.realhttp import publish, rawRequest, until
from tests.support.streamkit import STREAMING
from tests.support import RealServerMixin
from tests.support.wire import parseScriptAnswer

TRANSPORTS = ["poll", "longpoll", "jsonp", "xhr-stream", "iframe", "sse", "multipart", "ws"]
_STREAMING = {t.name: t for t in STREAMING}


class _Headers:
    def __init__(self, headers):
        self.headers = headers

    def header(self, name):
        return self.headers.get(name.lower())


class _WSClient(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.messages.append(json.loads(payload.decode("utf-8")))

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.called:
            self.factory.opened.errback(Exception("handshake failed: %r %r" % (code, reason)))
        self.factory.closeCode = code
        self.factory.closed.callback((code, reason))


class Channel:
    """
    One data channel of any transport, as messages.
    """

    def __init__(self, transport, client=None, factory=None):
        self.transport = transport
        self.client = client
        self.factory = factory
        self._parser = None

    @property
    def status(self):
        if self.factory is not None:
            return 101
        return self.client.status

    def messages(self):
        if self.factory is not None:
            return list(self.factory.messages)
        client = self.client
        if self.transport in ("poll", "longpoll"):
            if not client.ended:
                return []
            value = json.loads(client.body)
            return value if isinstance(value, list) else [value]
        if self.transport == "jsonp":
            if not client.ended:
                return []
            _, value, _ = parseScriptAnswer(client.body)
            return value if isinstance(value, list) else [value]
        if client.status != 200 and self.transport != "iframe":
            return [json.loads(client.body)] if client.ended else []
        if self._parser is None:
            self._parser = (_STREAMING[self.transport].parser(_Headers(client.headers)), [], 0)
        parser, seen, fed = self._parser
        seen.extend(parser.feed(client.body[fed:]))
        self._parser = (parser, seen, len(client.body))
        return list(seen)

    def events(self):
        return [m for m in self.messages() if m.get("type") == "event"]

    def errors(self):
        return [m for m in self.messages() if "error" in m]

    def close(self):
        if self.factory is not None:
            transport = self.factory.protocol_instance.transport
        else:
            transport = self.client.transport
        if transport.connected:
            transport.abortConnection()


class AuthServerMixin(RealServerMixin):
    """
    A server with tokens and the example rules, and clients of
    C{transport} for it.
    """

    timeout = 30
    transport: str

    async def startAuthServer(self, **config):
        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        await self.startServer(tokenSecret=SECRET, rulesPath=path, **config)
        self.portNumber = self.port.getHost().port

    def token(self, sub="alice", **claims):
        claims.setdefault("exp", reactor.seconds() + 600)
        claims["sub"] = sub
        return mint(claims)

    async def open(self, query):
        transport = self.transport
        if transport == "ws":
            factory = WebSocketClientFactory("ws://127.0.0.1:%d/comet/ws?%s" % (self.portNumber, query))
            factory.protocol = _WSClient
            factory.opened = defer.Deferred()
            factory.closed = defer.Deferred()
            factory.messages = []
            factory.closeCode = None
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.portNumber)
            protocol = await endpoint.connect(factory)
            factory.protocol_instance = protocol
            channel = Channel(transport, factory=factory)
            self.addCleanup(channel.close)
            try:
                await factory.opened
            except Exception:
                pass
            return channel
        if transport == "jsonp":
            query += "&callback=cb"
        client = await rawRequest(self.portNumber, "/comet/%s?%s" % (transport, query))
        channel = Channel(transport, client=client)
        self.addCleanup(channel.close)
        await client.waitFor(lambda: client.status is not None)
        return channel

    async def refused(self, query, code):
        """
        Opening a data channel with C{query} is refused with C{code}: the
        HTTP status and JSON error, or for WebSocket the error message and
        the close code.
        """
        channel = await self.open(query)
        if self.transport == "ws":
            await channel.factory.closed
            self.assertEqual(channel.errors()[0]["error"], code)
            expected = {"forbidden": 4403, "invalid_token": 4009, "token_expired": 4008}[code]
            self.assertEqual(channel.factory.closeCode, expected)
        else:
            await channel.client.waitFor(lambda: channel.client.ended)
            if self.transport != "jsonp":
                self.assertEqual(channel.status, {"forbidden": 403, "invalid_request": 400}.get(code, 401))
            self.assertEqual(channel.errors()[0]["error"], code)
        self.assertEqual(self.comet.hub.sessions, {})
        return channel

    async def control(self, message, token=None):
        headers = {b"Content-Type": [b"application/json"]}
        if token is not None:
            headers[b"Authorization"] = [b"Bearer " + token.encode("ascii")]
        response = await self.post(self.url + "/control", json.dumps(message).encode(), headers=headers)
        return response.code, await treq.json_content(response)



class AuthTransportMixin(AuthServerMixin):
    """
    The per-transport tests.
    """

    async def test_validTokenUserChannel(self):
        """
        A join-listen with the user's token in C{?token=} receives its
        user channel (from history, then live).
        """
        await self.startAuthServer()
        first = await publish(self.portNumber, "notifications/alice", b'"one"')
        epoch = first["id"].split("-")[0]
        channel = await self.open("channel=notifications/alice&last=%s-0&token=%s" % (epoch, self.token()))
        await until(lambda: channel.events())
        self.assertEqual([e["data"] for e in channel.events()], ["one"])

    async def test_otherUserRefused(self):
        """
        Another user's token cannot open a user channel: 403 forbidden.
        """
        await self.startAuthServer()
        await self.refused("channel=notifications/alice&token=%s" % (self.token("bob"),), "forbidden")

    async def test_wildcardRefused(self):
        """
        C{**} could reach other users' and private channels: refused, so it
        delivers nothing.
        """
        await self.startAuthServer()
        # Short polling answers a join-listen from history, which a
        # wildcard has none of: it refuses any wildcard, before the rules.
        code = "invalid_request" if self.transport == "poll" else "forbidden"
        await self.refused("channel=**&token=%s" % (self.token(),), code)

    async def test_badToken(self):
        """
        A forged token is C{invalid_token}; an expired one C{token_expired}.
        """
        await self.startAuthServer()
        await self.refused("channel=news&token=%s" % (mint({"sub": "a"}, "x" * 40),), "invalid_token")
        await self.refused("channel=news&token=%s" % (self.token(exp=reactor.seconds() - 100),), "token_expired")

    async def test_sessionPrivateChannelAndPresence(self):
        """
        A session joined with a Bearer token is its C{sub} in presence
        (not the user it claims); a private channel refuses it without a
        channel token and with one for another channel or user, and
        accepts the right one; the transport then delivers the private
        channel's events.
        """
        await self.startAuthServer()
        code, reply = await self.control({"op": "join", "user": "mallory"}, token=self.token())
        self.assertEqual(code, 200)
        session = reply["session"]
        code, answer = await self.control({"op": "subscribe", "session": session, "channel": "private/x"})
        self.assertEqual((code, answer["error"]), (403, "forbidden"))
        for claims in [{"sub": "alice", "channel": "private/y"}, {"sub": "bob", "channel": "private/x"}]:
            code, answer = await self.control(
                {"op": "subscribe", "session": session, "channel": "private/x", "token": mint(claims)}
            )
            self.assertEqual((code, answer["error"]), (403, "forbidden"))
        code, answer = await self.control(
            {"op": "subscribe", "session": session, "channel": "private/x", "token": mint({"sub": "alice", "channel": "private/x"})}
        )
        self.assertEqual(code, 200, answer)
        code, answer = await self.control({"op": "subscribe", "session": session, "channel": "chat/room"})
        self.assertEqual(code, 200, answer)
        code, answer = await self.control({"op": "presence", "session": session, "channel": "chat/room"})
        self.assertEqual([m.get("user") for m in answer["members"]], ["alice"])
        await publish(self.portNumber, "private/x", b'"secret"')
        channel = await self.open("session=%s" % (session,))
        await until(lambda: channel.events())
        self.assertEqual([e["data"] for e in channel.events()], ["secret"])


    async def test_expiryClosesWithTokenExpired(self):
        """
        A data channel whose token runs out (plus the grace period) with no
        refresh is closed with reason C{token_expired}, which tells the
        client to reconnect with a new token (WebSocket: close code 4008).
        """
        if self.transport == "poll":
            return  # a short poll is answered at once; nothing stays open
        await self.startAuthServer(tokenGrace=0.2)
        channel = await self.open("channel=news&token=%s" % (self.token(exp=reactor.seconds() + 0.3),))
        if self.transport != "ws":
            self.assertIn("x-comet-token-expires", channel.client.headers)
        await until(lambda: any(m.get("type") == "close" for m in channel.messages()))
        [close] = [m for m in channel.messages() if m.get("type") == "close"]
        self.assertEqual((close["reason"], close["reconnect"]), ("token_expired", True))
        if self.transport == "ws":
            await channel.factory.closed
            self.assertEqual(channel.factory.closeCode, 4008)


    async def test_refreshKeepsStream(self):
        """
        A session that refreshes its token before expiry keeps its data
        channel past the first token's expiry, with every event once and
        in order (over WebSocket, the refresh goes on the socket).
        """
        if self.transport == "poll":
            return
        # Time enough to refresh on a busy machine; the wait below still
        # outlasts the first token's expiry plus grace.
        await self.startAuthServer(tokenGrace=0.5)
        expires = reactor.seconds() + 3.0
        code, reply = await self.control({"op": "join"}, token=self.token(exp=expires))
        self.assertEqual(reply["expires"], expires)
        session = reply["session"]
        await self.control({"op": "subscribe", "session": session, "channel": "news"})
        reader = _SessionReader(self, session)
        await reader.start()
        await publish(self.portNumber, "news", b"1")
        await reader.receive(1)
        fresh = self.token(exp=reactor.seconds() + 600)
        if self.transport == "ws":
            reader.channel.factory.protocol_instance.sendMessage(
                json.dumps({"op": "refresh", "token": fresh, "ref": 1}).encode()
            )
            await until(lambda: any(m.get("ref") == 1 for m in reader.channel.messages()))
        else:
            code, answer = await self.control({"op": "refresh", "session": session, "token": fresh})
            self.assertEqual(code, 200, answer)
        await until(lambda: reactor.seconds() > expires + 1.0)
        self.assertIn(session, self.comet.hub.sessions)
        await publish(self.portNumber, "news", b"2")
        self.assertEqual([e["data"] for e in await reader.receive(2)], [1, 2])
        self.assertFalse([m for m in reader.channel.messages() if m.get("type") == "close"])


class _SessionReader:
    """
    Reads a session's events over the test's transport: one stream, or
    one-shot answers asked for again with the last id seen.
    """

    def __init__(self, test, session):
        self.test = test
        self.session = session
        self.oneShot = test.transport in ("poll", "longpoll", "jsonp")
        self.seen = []
        self.last = None
        self.channel = None

    async def start(self):
        await self._open()

    async def _open(self):
        query = "session=%s" % (self.session,)
        if self.last is not None:
            query += "&last=%s" % (self.last,)
        if self.oneShot:
            # A held long-poll has no status until it is answered.
            client = await rawRequest(
                self.test.portNumber,
                "/comet/%s?%s%s" % (self.test.transport, query, "&callback=cb" if self.test.transport == "jsonp" else ""),
            )
            self.channel = Channel(self.test.transport, client=client)
            self.test.addCleanup(self.channel.close)
        else:
            self.channel = await self.test.open(query)

    async def receive(self, count):
        if not self.oneShot:
            await until(lambda: len(self.channel.events()) >= count)
            return self.channel.events()
        while len(self.seen) < count:
            await until(lambda: self.channel.client.ended)
            for message in self.channel.messages():
                if "id" in message:
                    self.last = message["id"]
                if message.get("type") == "event":
                    self.seen.append(message)
            await self._open()
        return self.seen


def _makeCase(name):
    return type(
        "AuthTransportTests_" + name.replace("-", "_"),
        (AuthTransportMixin, TestCase),
        {"transport": name, "__doc__": "Tokens and rules over %s." % (name,)},
    )


for _name in TRANSPORTS:
    _case = _makeCase(_name)
    globals()[_case.__name__] = _case
del _case, _name


class BadTokensOverHTTPTests(AuthServerMixin, TestCase):
    """
    Every bad token of issue 12's list, sent for real on a control join
    (as C{auth} and as a Bearer header) and on an SSE join-listen (as
    C{?token=}): each refused with its documented 401, none a 500, none
    accepted.
    """

    transport = "sse"

    def badTokens(self):
        from tests.support.auth import RSA_KEY, b64, hmacWith, publicPEM, unsigned

        now = reactor.seconds()
        good = {"sub": "alice", "exp": now + 60, "aud": "comet", "iss": "app"}
        tampered = mint(good).split(".")
        tampered[1] = b64(json.dumps(dict(good, sub="admin")).encode())
        return [
            ("alg none", unsigned(good), "invalid_token"),
            ("HS256 with the RSA public key", hmacWith(good, publicPEM(RSA_KEY)), "invalid_token"),
            ("RS256 when the server has a secret", mint(good, RSA_KEY, "RS256"), "invalid_token"),
            ("wrong key", mint(good, "k" * 64), "invalid_token"),
            ("tampered", ".".join(tampered), "invalid_token"),
            ("expired", mint(dict(good, exp=now - 120)), "token_expired"),
            ("not yet valid", mint(dict(good, nbf=now + 600)), "invalid_token"),
            ("wrong aud", mint(dict(good, aud="other")), "invalid_token"),
            ("wrong iss", mint(dict(good, iss="evil")), "invalid_token"),
            ("no sub", mint({"exp": now + 60, "aud": "comet", "iss": "app"}), "invalid_token"),
            ("over 8 KiB", mint(dict(good, info={"pad": "x" * 9000})), "invalid_token"),
            ("garbage", "not-a-jwt", "invalid_token"),
        ]

    async def test_everyBadTokenRefused(self):
        """
        See the class docstring.
        """
        from urllib.parse import quote

        await self.startAuthServer(tokenAudience="comet", tokenIssuer="app", tokenRequireSub=True)
        for name, token, code in self.badTokens():
            status, reply = await self.control({"op": "join", "auth": token})
            self.assertEqual((status, reply.get("error")), (401, code), name)
            status, reply = await self.control({"op": "join"}, token=token)
            self.assertEqual((status, reply.get("error")), (401, code), name)
            client = await rawRequest(self.portNumber, "/comet/sse?channel=news&token=" + quote(token))
            await client.waitFor(lambda: client.ended)
            self.assertEqual((client.status, json.loads(client.body)["error"]), (401, code), name)
        self.assertEqual(self.comet.hub.sessions, {})
        # The same server takes a good token.
        status, reply = await self.control(
            {"op": "join", "auth": mint({"sub": "alice", "aud": "comet", "iss": "app", "exp": reactor.seconds() + 60})}
        )
        self.assertEqual(status, 200, reply)


class WebSocketTokenTests(AuthServerMixin, TestCase):
    """
    The WebSocket ways of carrying a token: the first message's C{auth},
    the handshake's C{?token=} for a join on the socket, and a refresh on
    the socket with a bad token, which closes the connection with 4009.
    """

    transport = "ws"

    async def test_firstMessage(self):
        """
        C{{"op": "join", "auth": TOKEN}} as the first message makes the
        token's user's session; its reply says when the token expires.
        """
        await self.startAuthServer()
        channel = await self.open("")
        protocol = channel.factory.protocol_instance
        expires = reactor.seconds() + 600
        protocol.sendMessage(json.dumps({"op": "join", "auth": self.token(exp=expires), "ref": 1}).encode())
        await until(lambda: channel.messages())
        [reply] = channel.messages()
        self.assertEqual((reply["type"], reply["expires"]), ("reply", expires))
        self.assertEqual(self.comet.hub.sessions[reply["session"]].user, "alice")

    async def test_handshakeTokenAndBadRefresh(self):
        """
        A join on the socket without C{auth} uses the handshake's
        C{?token=}; a refresh with a bad token is C{invalid_token}, final:
        close code 4009.
        """
        await self.startAuthServer()
        channel = await self.open("token=" + self.token(sub="bob"))
        protocol = channel.factory.protocol_instance
        protocol.sendMessage(json.dumps({"op": "join", "ref": 1}).encode())
        await until(lambda: channel.messages())
        session = self.comet.hub.sessions[channel.messages()[0]["session"]]
        self.assertEqual(session.user, "bob")
        protocol.sendMessage(json.dumps({"op": "refresh", "token": self.token(sub="eve"), "ref": 2}).encode())
        await channel.factory.closed
        self.assertEqual(channel.factory.closeCode, 4009)
        closes = [m for m in channel.messages() if m.get("type") == "close"]
        self.assertEqual(closes, [{"type": "close", "reason": "invalid_token", "reconnect": False}])
        self.assertEqual(session.closeReason, "invalid_token")
