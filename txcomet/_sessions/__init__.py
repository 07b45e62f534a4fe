"""
Sessions: the session, the hub that owns them, handover between nodes and the control channel's dispatcher.
"""
