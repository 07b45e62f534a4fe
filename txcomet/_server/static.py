# -*- test-case-name: tests.demo.test_demo -*-
"""
Files of the package's static directory (the browser client and the demo's
page, script and style), served with an C{ETag}.
"""

import hashlib
import os
from typing import Optional

from twisted.web.http import CACHED
from twisted.web.server import Request

from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._transports.http import JSONResource

#: The package directory of txcomet.js, txcomet.mjs and the demo's files.
STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")

_CONTENT_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
}


class StaticFile(JSONResource):
    """
    One file of the package's static directory, read on first use (and
    again when it changes on disk), with an C{ETag} so browsers revalidate
    cheaply.  Other methods, and paths below it, are JSON errors.
    """

    isLeaf = True
    headIsGet = True
    subpaths = True  # answered by render_GET's own 404

    def __init__(self, name: str, config: Optional[CometConfig] = None) -> None:
        super().__init__()
        self.config = config if config is not None else CometConfig()
        self.path = os.path.join(STATIC, name)
        self.contentType = _CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream").encode("ascii")
        self._stamp: Optional[float] = None
        self._body = b""
        self._etag = b""

    def _load(self) -> None:
        stamp = os.stat(self.path).st_mtime
        if stamp != self._stamp:
            with open(self.path, "rb") as f:
                self._body = f.read()
            self._etag = b'"' + hashlib.sha256(self._body).hexdigest()[:20].encode("ascii") + b'"'
            self._stamp = stamp

    def render_GET(self, request: Request) -> bytes:
        if request.postpath and request.postpath != [b""]:
            raise CometError("not_found")
        self._load()
        request.setHeader(b"Content-Type", self.contentType)
        request.setHeader(b"ETag", self._etag)
        request.setHeader(b"Cache-Control", b"no-cache")
        if request.setETag(self._etag) == CACHED:
            return b""
        return self._body

    render_HEAD = render_GET


def staticFile(name: str, config: Optional[CometConfig] = None) -> StaticFile:
    """
    A resource serving C{name} from the package's static directory.
    """
    return StaticFile(name, config)
