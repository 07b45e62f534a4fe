"""
Who may do what: connection and channel tokens (L{tokens}), the channel
rules file (L{rules}), backend hooks (L{hooks}) and the built-in
L{txcomet.interfaces.IAuthorizer} combining them (L{authorizer}).  Imports
the model and the interfaces; nothing from sessions, transports or server.
"""
