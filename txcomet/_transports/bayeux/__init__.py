"""
Bayeux 1.0, the protocol CometD and Faye clients speak, on txcomet's bus.

A Bayeux client is a txcomet session: the handshake joins one (its id is
the Bayeux C{clientId}), subscriptions and publishes go through the session
as the control channel's do, and each C{/meta/connect} is a data channel
attached to the session with a Bayeux framing.  L{protocol} holds the wire
rules (channel mapping, errors, advice), L{endpoint} runs the meta messages
whatever carries them, L{longpoll} serves long-polling and callback-polling
at C{<mount>/bayeux}, and L{websocket} the upgrades on the same URL.
C{docs/bayeux.md} is the user's guide.
"""
