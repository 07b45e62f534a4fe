"""
Tests with real sockets, processes, Redis or a browser; each is marked
C{system} (see conftest.py here), so C{pytest -m "not system"} leaves them
out.
"""
