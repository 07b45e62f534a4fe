"""
Transports: HTTP helpers, framings, polling and long-polling, streaming, multipart and WebSocket.
"""
