"""
The built-in authorizer through the hub and the control operations, on an
injected clock: the token's C{sub} is the identity, rules are enforced at
join and subscribe, channel tokens, presence and history rules, notices,
expiry with grace, refresh, and the configuration that builds it.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet._auth.authorizer import CometAuthorizer, Grant, authorizerFromConfig
from txcomet._auth.rules import ChannelRules
from txcomet._auth.tokens import TokenVerifier
from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._sessions import handover
from txcomet._sessions.control import ControlDispatcher
from txcomet._sessions.hub import Hub
from txcomet.interfaces import IAuthorizer, IGrant, ITokenAuthorizer
from txcomet.testing import RecordingDataChannel

from tests.support.auth import EXAMPLE, SECRET, mint, tempPath

NOW = 1_800_000_000


class AuthorizerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.authorizer = CometAuthorizer(
            self.clock,
            TokenVerifier(self.clock, secret=SECRET),
            ChannelRules.fromText(EXAMPLE),
            grace=10,
        )
        self.hub = Hub(clock=self.clock, authorizer=self.authorizer)
        self.control = ControlDispatcher(self.hub)

    def token(self, sub="alice", exp=NOW + 60, **claims):
        claims.update(sub=sub, exp=exp)
        return mint(claims)

    def op(self, **message):
        return self.successResultOf(self.control.dispatch(message))

    def error(self, **message):
        return self.failureResultOf(self.control.dispatch(message), CometError).value

    def join(self, **claims):
        reply = self.op(op="join", auth=self.token(**claims))
        return reply, self.hub.sessions[reply["session"]]

    def test_verifyObject(self):
        """
        The authorizer provides L{ITokenAuthorizer} (and so
        L{IAuthorizer}); its grants provide L{IGrant}.
        """
        self.assertTrue(verifyObject(ITokenAuthorizer, self.authorizer))
        self.assertTrue(verifyObject(IAuthorizer, self.authorizer))
        self.assertTrue(verifyObject(IGrant, Grant(self.clock, None, None, [], None, 0)))

    def test_subIsIdentity(self):
        """
        The token's C{sub} and C{info} are the session's user and info,
        whatever the client claims; the join reply says when the token
        expires.
        """
        reply = self.op(op="join", user="mallory", info={"x": 1}, auth=self.token(info={"name": "Alice"}))
        session = self.hub.sessions[reply["session"]]
        self.assertEqual((session.user, session.info), ("alice", {"name": "Alice"}))
        self.assertEqual(reply["expires"], NOW + 60)
        self.assertEqual(session.member()["user"], "alice")

    def test_bearerFromContext(self):
        """
        A join without C{auth} uses the token its transport found (an
        C{Authorization: Bearer} header, C{token=}).
        """
        d = self.control.dispatch({"op": "join"}, {"token": self.token(sub="bob")})
        reply = self.successResultOf(d)
        self.assertEqual(self.hub.sessions[reply["session"]].user, "bob")

    def test_anonymousClaimIgnored(self):
        """
        Without a token the session is anonymous, even if it names a user:
        a user channel refuses it.
        """
        reply = self.op(op="join", user="alice")
        self.assertIsNone(self.hub.sessions[reply["session"]].user)
        error = self.error(op="subscribe", session=reply["session"], channel="notifications/alice")
        self.assertEqual(error.code, "forbidden")

    def test_badTokenRefusesJoin(self):
        """
        A join with a bad token is C{invalid_token}; an expired one
        C{token_expired}; neither makes a session.
        """
        self.assertEqual(self.error(op="join", auth="garbage").code, "invalid_token")
        self.assertEqual(self.error(op="join", auth=self.token(exp=NOW - 100)).code, "token_expired")
        self.assertEqual(self.hub.sessions, {})

    def test_userChannel(self):
        """
        A user channel lets its user subscribe and refuses another, naming
        the rule.
        """
        reply, _ = self.join(sub="alice")
        self.op(op="subscribe", session=reply["session"], channel="notifications/alice")
        error = self.error(op="subscribe", session=reply["session"], channel="notifications/bob")
        self.assertEqual((error.code, error.status), ("forbidden", 403))
        self.assertIn('pattern "notifications/{sub}"', error.message)

    def test_channelToken(self):
        """
        A private channel needs a channel token for that channel and user;
        one for another channel or another user is refused, as is a forged
        one.
        """
        reply, _ = self.join(sub="alice")
        session = reply["session"]
        self.assertIn("needs a channel token", self.error(op="subscribe", session=session, channel="private/x").message)
        other = mint({"sub": "alice", "channel": "private/y", "exp": NOW + 60})
        self.assertIn("another channel", self.error(op="subscribe", session=session, channel="private/x", token=other).message)
        bobs = mint({"sub": "bob", "channel": "private/x", "exp": NOW + 60})
        self.assertIn("another user", self.error(op="subscribe", session=session, channel="private/x", token=bobs).message)
        forged = mint({"sub": "alice", "channel": "private/x"}, "another-secret-another-secret-12")
        self.assertEqual(self.error(op="subscribe", session=session, channel="private/x", token=forged).code, "invalid_token")
        good = mint({"sub": "alice", "channel": "private/x", "exp": NOW + 60})
        self.assertEqual(self.op(op="subscribe", session=session, channel="private/x", token=good)["channel"], "private/x")

    def test_wildcardRefused(self):
        """
        C{**} is refused with a rules file that keeps channels from some
        sessions; a pattern inside an allowed rule is accepted.
        """
        reply, _ = self.join()
        self.assertEqual(self.error(op="subscribe", session=reply["session"], channel="**").code, "forbidden")
        self.op(op="subscribe", session=reply["session"], channel="chat/*")

    def test_tokenChannels(self):
        """
        The token's C{channels} are subscribed on join, even where the
        rules would want a channel token.
        """
        _, session = self.join(channels=["private/x", "news"])
        self.assertEqual(list(session.subscriptions), ["private/x", "news"])

    def test_publishPresenceHistory(self):
        """
        Publishing and presence on C{chat/**} are for its subscribers;
        history of C{private/**} is nobody's (its rule leaves history to
        subscribers, but only by channel token).
        """
        reply, _ = self.join()
        session = reply["session"]
        self.assertEqual(self.error(op="publish", session=session, channel="chat/a", data=1).code, "forbidden")
        self.assertEqual(self.error(op="presence", session=session, channel="chat/a").code, "forbidden")
        self.op(op="subscribe", session=session, channel="chat/a")
        self.op(op="publish", session=session, channel="chat/a", data=1)
        self.assertEqual(self.op(op="presence", session=session, channel="chat/a")["members"][0]["user"], "alice")
        self.assertEqual(self.error(op="presence", session=session, channel="notifications/alice").code, "forbidden")
        self.op(op="subscribe", session=session, channel="news", since="oldest")

    def test_notices(self):
        """
        A rule with C{notices = false} publishes no join/leave notices (the
        member is still listed); others do.
        """
        watcher, _ = self.join(sub="watcher")
        channel = RecordingDataChannel(oneShot=False)
        self.hub.sessions[watcher["session"]].attach(channel)
        self.op(op="subscribe", session=watcher["session"], channel="chat/room")
        self.op(op="subscribe", session=watcher["session"], channel="news")
        other, _ = self.join(sub="bob")
        self.op(op="subscribe", session=other["session"], channel="chat/room")
        self.op(op="subscribe", session=other["session"], channel="news")
        kinds = [(e.kind, e.channel) for e in channel.events]
        self.assertIn(("join", "news"), kinds)
        self.assertNotIn(("join", "chat/room"), kinds)

    def test_expiryClosesAfterGrace(self):
        """
        Past C{exp} plus the grace period without a refresh, the session
        is closed with C{token_expired}, and its client told to reconnect.
        """
        _, session = self.join(exp=NOW + 60)
        channel = RecordingDataChannel(oneShot=False)
        session.attach(channel)
        self.clock.advance(69)
        self.assertEqual(session.state, "listening")
        self.clock.advance(1)
        self.assertEqual(session.closeReason, "token_expired")
        self.assertEqual(channel.closed, ("token_expired", True))

    def test_refresh(self):
        """
        A refresh with a new token of the same user moves the expiry; the
        session outlives the first token.
        """
        reply, session = self.join(exp=NOW + 60)
        session.attach(RecordingDataChannel(oneShot=False))
        answer = self.op(op="refresh", session=reply["session"], token=self.token(exp=NOW + 600))
        self.assertEqual(answer["expires"], NOW + 600)
        self.clock.advance(300)
        self.assertEqual(session.state, "listening")
        self.assertEqual(self.hub.sessions[reply["session"]], session)

    def test_refreshInvalidIsFinal(self):
        """
        A refresh with an invalid token, or one for another user, closes
        the session with C{invalid_token}, which says not to reconnect.
        """
        for bad in ["garbage", self.token(sub="bob")]:
            reply, session = self.join()
            channel = RecordingDataChannel(oneShot=False)
            session.attach(channel)
            self.assertEqual(self.error(op="refresh", session=reply["session"], token=bad).code, "invalid_token")
            self.assertEqual(channel.closed, ("invalid_token", False))

    def test_grantMoves(self):
        """
        A session moving to another node takes its grant along: the new
        node's authorizer restores it from its export (same user, expiry,
        claims), and it closes the session there at expiry.
        """
        _, session = self.join(exp=NOW + 60, info={"n": 1})
        state = handover.exportState(session)
        self.hub.release(session)
        other = Hub(clock=self.clock, authorizer=self.authorizer)
        moved = other.adoptSession(state)
        self.assertEqual((moved.grant.user, moved.grant.expires), ("alice", NOW + 60))
        self.assertEqual(moved.grant.claims["info"], {"n": 1})
        moved.attach(RecordingDataChannel(oneShot=False))
        self.clock.advance(71)
        self.assertEqual(moved.closeReason, "token_expired")
        self.assertEqual(session.closeReason, "moved")

    def test_closeCancelsTimer(self):
        """
        A session that leaves leaves no expiry timer behind.
        """
        reply, _ = self.join()
        self.op(op="leave", session=reply["session"])
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])


class ConfigTests(SynchronousTestCase):
    def test_openByDefault(self):
        """
        A configuration with no token, rules or hook builds no authorizer:
        the server is open, and says so.
        """
        config = CometConfig()
        self.assertTrue(config.isOpen)
        self.assertIsNone(authorizerFromConfig(config, Clock()))

    def test_built(self):
        """
        A secret and a rules file build the authorizer.
        """
        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        config = CometConfig(tokenSecret=SECRET, rulesPath=path, tokenAudience="comet")
        self.assertFalse(config.isOpen)
        authorizer = authorizerFromConfig(config, Clock())
        self.assertEqual(len(authorizer.rules.rules), 5)
        self.assertEqual(authorizer.verifier.audience, "comet")

    def test_badSettings(self):
        """
        An unreadable public key or rules file is a clear L{ValueError}.
        """
        for config in [CometConfig(tokenPublicKey="/nonexistent.pem"), CometConfig(rulesPath="/nonexistent.toml")]:
            self.assertRaises(ValueError, authorizerFromConfig, config, Clock())
