# -*- test-case-name: tests.auth.test_rules,tests.auth.test_authorizer -*-
"""
The channel rules file: who may subscribe, publish, read presence and
history on which channels, and whether join/leave notices go out.

    [[channel]]
    pattern = "notifications/{sub}"   # only the token's user
    subscribe = "owner"
    [[channel]]
    pattern = "private/**"            # a channel token is required
    subscribe = "token"
    [[channel]]
    pattern = "chat/**"
    subscribe = "authenticated"
    publish = "subscribers"
    presence = "subscribers"
    notices = true

Rules are tried in order; the first whose pattern matches a channel
decides for it.  A channel no rule matches is closed: nothing on it is
allowed.  The full reference is C{docs/auth.md}.

A wildcard subscription (C{chat/*}, C{**}) is decided once, when it is
made, so that fan-out never checks anything per delivery: it is allowed
only if every channel it could match is one the session may subscribe to.
The rules are walked in order; every rule that could match one of the
pattern's channels must allow the session for all of them (C{owner} only
when the pattern lies inside the session's own channels, C{token} never:
a channel token names one channel), and some rule must cover the whole
pattern.  That is conservative: a pattern covered only by several rules
together is refused.
"""

import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from txcomet._model.channels import _SEGMENT, MAX_SEGMENTS
from txcomet._model.errors import CometError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ANYONE = "anyone"
AUTHENTICATED = "authenticated"
SUBSCRIBERS = "subscribers"
NOBODY = "nobody"
OWNER = "owner"
TOKEN = "token"

SUB = "{sub}"

#: action -> the values it may take, and its default in a rule that omits it.
ACTIONS: Dict[str, Any] = {
    "subscribe": ((ANYONE, AUTHENTICATED, NOBODY, OWNER, TOKEN), NOBODY),
    "publish": ((ANYONE, AUTHENTICATED, SUBSCRIBERS, NOBODY, OWNER), NOBODY),
    "presence": ((ANYONE, AUTHENTICATED, SUBSCRIBERS, NOBODY, OWNER), SUBSCRIBERS),
    "history": ((ANYONE, AUTHENTICATED, SUBSCRIBERS, NOBODY, OWNER), SUBSCRIBERS),
}

#: What a decision may ask for beyond a plain yes: a channel token.
NEEDS_TOKEN = "token"


class RulesError(ValueError):
    """
    The rules file is not valid; the message says where and why.
    """


def _parsePattern(pattern: object, where: str) -> List[str]:
    if not isinstance(pattern, str) or not pattern:
        raise RulesError("%s: 'pattern' is a non-empty string" % (where,))
    segments = pattern.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise RulesError("%s: pattern %r has more than %d segments" % (where, pattern, MAX_SEGMENTS))
    for i, segment in enumerate(segments):
        if segment in ("*", SUB) or segment == "**" and i == len(segments) - 1:
            continue
        if not _SEGMENT.match(segment):
            raise RulesError(
                "%s: pattern %r: each segment is a name, *, {sub}, or a final **" % (where, pattern)
            )
    return segments


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """
    Whether some channel matches both segment patterns (C{{sub}} counts as
    C{*} here).
    """
    if not a or not b:
        return not a and not b
    if a[0] == "**" or b[0] == "**":
        # ** is last and takes one or more segments; the other side is not
        # empty, and a non-empty pattern always matches some name.
        return True
    if a[0] in ("*", SUB) or b[0] in ("*", SUB) or a[0] == b[0]:
        return _overlap(a[1:], b[1:])
    return False


def _covers(outer: Sequence[str], inner: Sequence[str]) -> bool:
    """
    Whether every channel matching C{inner} (a subscription pattern)
    matches C{outer} (a rule pattern with C{{sub}} already replaced).
    """
    if not outer:
        return not inner
    if outer[0] == "**":
        return bool(inner)
    if not inner or inner[0] == "**":
        return False
    if outer[0] == "*":
        return _covers(outer[1:], inner[1:])
    return outer[0] == inner[0] and _covers(outer[1:], inner[1:])


class Rule:
    """
    One C{[[channel]]} entry.

    @ivar number: its place in the file, from 1.
    @ivar pattern: the pattern as written.
    @ivar actions: action -> who (one of the constants above).
    @ivar notices: whether join/leave notices are published.
    """

    def __init__(self, number: int, entry: Any) -> None:
        where = "channel rule %d" % (number,)
        if not isinstance(entry, dict):
            raise RulesError("%s is not a table" % (where,))
        unknown = set(entry) - set(ACTIONS) - {"pattern", "notices"}
        if unknown:
            raise RulesError(
                "%s: unknown key %r (the keys are pattern, %s, notices)"
                % (where, sorted(unknown)[0], ", ".join(ACTIONS))
            )
        self.number = number
        self.pattern = entry.get("pattern")
        self.segments = _parsePattern(self.pattern, where)
        self.actions: Dict[str, str] = {}
        for action, (values, default) in ACTIONS.items():
            value = entry.get(action, default)
            if value not in values:
                raise RulesError(
                    "%s: %s = %r; it is one of %s" % (where, action, value, ", ".join(values))
                )
            if value == OWNER and SUB not in self.segments:
                raise RulesError("%s: %s = \"owner\" needs a {sub} segment in the pattern" % (where, action))
            self.actions[action] = value
        notices = entry.get("notices", True)
        if not isinstance(notices, bool):
            raise RulesError("%s: notices is true or false" % (where,))
        self.notices = notices

    def __repr__(self) -> str:
        return "<Rule %d %r>" % (self.number, self.pattern)

    def describe(self, action: str) -> str:
        """
        How an error names this rule: C{rule 2 (pattern "chat/**",
        publish = "subscribers")}.
        """
        return 'rule %d (pattern "%s", %s = "%s")' % (self.number, self.pattern, action, self.actions[action])

    def matches(self, channel: str) -> bool:
        """
        Whether the channel name C{channel} matches this rule's pattern.
        """
        return _covers([("*" if s == SUB else s) for s in self.segments], channel.split("/"))

    def ownedBy(self, user: Optional[str]) -> Optional[List[str]]:
        """
        The pattern with C{{sub}} replaced by C{user}: the channels that
        are C{user}'s.  C{None} for no user (or one that cannot be a
        segment).
        """
        if user is None or not _SEGMENT.match(user):
            return None
        return [user if s == SUB else s for s in self.segments]


class ChannelRules:
    """
    The rules of one file, in order.
    """

    def __init__(self, rules: Sequence[Rule], source: str = "<rules>") -> None:
        self.rules = list(rules)
        self.source = source

    @classmethod
    def fromDict(cls, document: Any, source: str = "<rules>") -> "ChannelRules":
        """
        The rules of a decoded TOML document; L{RulesError} if invalid.
        """
        if not isinstance(document, dict):
            raise RulesError("%s is not a table" % (source,))
        unknown = set(document) - {"channel"}
        if unknown:
            raise RulesError("%s: unknown table %r (the file holds [[channel]] rules)" % (source, sorted(unknown)[0]))
        entries = document.get("channel", [])
        if not isinstance(entries, list):
            raise RulesError("%s: channel rules are written [[channel]]" % (source,))
        return cls([Rule(i + 1, entry) for i, entry in enumerate(entries)], source)

    @classmethod
    def fromText(cls, text: str, source: str = "<rules>") -> "ChannelRules":
        """
        The rules of TOML text.
        """
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RulesError("%s is not valid TOML: %s" % (source, e))
        return cls.fromDict(document, source)

    @classmethod
    def fromFile(cls, path: str) -> "ChannelRules":
        """
        The rules of the TOML file at C{path}.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise RulesError("cannot read %s: %s" % (path, e.strerror))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RulesError("%s is not UTF-8" % (path,))
        return cls.fromText(text, path)

    def ruleFor(self, channel: str) -> Optional[Rule]:
        """
        The first rule matching C{channel}, or C{None}.
        """
        for rule in self.rules:
            if rule.matches(channel):
                return rule
        return None

    def notices(self, channel: str) -> bool:
        """
        Whether join/leave notices go out on C{channel}.
        """
        rule = self.ruleFor(channel)
        return rule is not None and rule.notices

    def decide(
        self,
        action: str,
        channel: str,
        user: Optional[str],
        subscribed: Callable[[str], bool] = lambda channel: False,
    ) -> Optional[str]:
        """
        May a session whose user is C{user} (C{None}: anonymous) do
        C{action} on C{channel} (a plain channel; for C{subscribe}, a
        pattern too)?

        @param subscribed: whether the session subscribes to a channel
            (for C{subscribers}).
        @return: C{None} when it may, L{NEEDS_TOKEN} when it may with a
            valid channel token; else raise L{CometError} C{forbidden}
            naming the rule that refused.
        """
        if action == "subscribe" and "*" in channel:
            return self._decidePattern(channel, user)
        rule = self.ruleFor(channel)
        if rule is None:
            raise CometError("forbidden", "No channel rule allows %s on %r." % (action, channel))
        who = rule.actions[action]
        if who == ANYONE:
            return None
        if who == AUTHENTICATED and user is not None:
            return None
        if who == OWNER:
            owned = rule.ownedBy(user)
            if owned is not None and _covers(owned, channel.split("/")):
                return None
        if who == SUBSCRIBERS and subscribed(channel):
            return None
        if who == TOKEN:
            return NEEDS_TOKEN
        raise CometError("forbidden", "%s on %r is refused by %s." % (action.capitalize(), channel, rule.describe(action)))

    def _decidePattern(self, pattern: str, user: Optional[str]) -> None:
        segments = pattern.split("/")
        for rule in self.rules:
            if not _overlap(rule.segments, segments):
                continue
            who = rule.actions["subscribe"]
            allowed = who == ANYONE or who == AUTHENTICATED and user is not None
            if who == OWNER:
                owned = rule.ownedBy(user)
                allowed = owned is not None and _covers(owned, segments)
            if not allowed:
                raise CometError(
                    "forbidden",
                    "Subscribing to %r could deliver channels refused by %s; subscribe to them by name."
                    % (pattern, rule.describe("subscribe")),
                )
            if _covers([("*" if s == SUB else s) for s in rule.segments], segments):
                return None
        raise CometError(
            "forbidden",
            "Subscribing to %r could deliver channels no single rule allows; narrow the pattern." % (pattern,),
        )
