# -*- test-case-name: tests.sessions.test_session -*-
"""
A session's states (see L{txcomet._sessions.session}) and the position
that asks for all of a channel's history.
"""

JOINED = "joined"
LISTENING = "listening"
CLOSED = "closed"

#: The C{since} value that asks for everything a channel's history retains.
OLDEST = "oldest"
