"""
Event buses: the local subscriber registry, the in-memory bus, the worker hub, the Redis bus and its RESP client.
"""
