"""
The import rules between txcomet's layers (docs/architecture.md), checked
on the source with L{tests.support.layers}; and the checker itself, shown
to report each kind of violation on small synthetic packages.
"""

import os
import re
import shutil
import tempfile
import textwrap

from twisted.trial.unittest import SynchronousTestCase

import txcomet
from tests.support.layers import check, cycles, importGraph

PACKAGE = os.path.dirname(os.path.abspath(txcomet.__file__))

#: A synthetic package that keeps every rule: each layer imports only what
#: it may, the facade imports anything, relative imports included.
CLEAN = {
    "__init__.py": "from pkg._server.service import Comet\nfrom pkg._bus.memory import Bus\n",
    "interfaces.py": "import zope.interface\n",
    "_version.py": "__version__ = '1'\n",
    "_model/__init__.py": "",
    "_demo/__init__.py": "",
    "_model/errors.py": "class Error(Exception): pass\n",
    "_model/event.py": "from pkg import interfaces\nfrom . import errors\nfrom .errors import Error\n",
    "_fastpath/__init__.py": "",
    "_fastpath/writer.py": "from pkg._model.event import Error\nfrom pkg.interfaces import ISink\n",
    "_bus/__init__.py": "",
    "_bus/memory.py": "from pkg._model import event\nfrom pkg._fastpath.writer import x\n",
    "_sessions/__init__.py": "",
    "_sessions/session.py": "from pkg._bus.memory import Bus\nfrom ..interfaces import IHub\n",
    "_transports/__init__.py": "",
    "_transports/http.py": "from pkg._sessions.session import Session\n",
    "_server/__init__.py": "",
    "_server/service.py": "from pkg._transports import http\nfrom pkg._server.resource import Resource\n",
    "_server/resource.py": "from pkg._sessions import session\nfrom pkg._version import __version__\n",
}


class SourceTests(SynchronousTestCase):
    """
    txcomet's own modules keep the rules.
    """

    def test_layersKeepTheirImportRules(self):
        """
        No module of txcomet imports across a layer rule, none imports
        the package's C{__init__}, and no modules import each other in a
        cycle.  (Every import counts, also those inside functions.)
        """
        found = check(PACKAGE, "txcomet")
        self.assertEqual(found, [])

    def test_theGraphIsRead(self):
        """
        The checker reads txcomet's imports (so a clean result means
        something): the session module is found importing the model, and
        the facade importing the service.
        """
        graph = importGraph(PACKAGE, "txcomet")
        self.assertIn("txcomet._model.errors", graph["txcomet._sessions.session"])
        self.assertIn("txcomet._server.service", graph["txcomet"])


class TestCaseNameTests(SynchronousTestCase):
    """
    Every source module names the tests that cover it, on its first line
    (C{# -*- test-case-name: ... -*-}, as Twisted's modules do), and they
    exist: C{trial --testmodule} and editors find them from the module.
    """

    def test_everyModuleNamesItsTests(self):
        root = os.path.dirname(PACKAGE)
        missing = []
        for folder, _, files in os.walk(PACKAGE):
            for name in sorted(files):
                if not name.endswith(".py") or name == "__init__.py":
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    first = f.readline()
                match = re.match(r"# -\*- test-case-name: (.+) -\*-$", first.strip())
                if match is None:
                    missing.append((os.path.relpath(path, root), "no test-case-name"))
                    continue
                for test in match.group(1).split(","):
                    if not os.path.exists(os.path.join(root, *test.strip().split(".")) + ".py"):
                        missing.append((os.path.relpath(path, root), test))
        self.assertEqual(missing, [])


class CheckerTests(SynchronousTestCase):
    """
    The checker reports each kind of violation in a synthetic package
    C{pkg}, and nothing in one that keeps the rules.
    """

    def makePackage(self, **changes):
        """
        Write L{CLEAN}, with C{changes} (a path with C{/} written as
        C{__}, mapped to source that replaces or adds that file), to a
        temporary directory and return its path.
        """
        files = dict(CLEAN)
        for name, source in changes.items():
            files[name.replace("__", "/") + ".py"] = source
        scratch = tempfile.mkdtemp(prefix="txcomet-layers-")
        self.addCleanup(shutil.rmtree, scratch, True)
        root = os.path.join(scratch, "pkg")
        for name, source in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(textwrap.dedent(source))
        return root

    def test_cleanPackage(self):
        """
        A package that keeps every rule gets no report, though its facade
        imports from every layer and its layers import downwards.
        """
        self.assertEqual(check(self.makePackage(), "pkg"), [])

    def test_modelImportsAnotherLayer(self):
        """
        The model importing anything but C{interfaces}, even inside a
        function, is reported with the line that does it.
        """
        root = self.makePackage(
            _demo__page="PAGE = b''\n",
            _model__event="from pkg import interfaces\n\ndef f():\n    from pkg._demo.page import PAGE\n",
        )
        self.assertEqual(
            check(root, "pkg"),
            ["pkg._model.event (line 4) imports pkg._demo.page: _model may import only interfaces"],
        )

    def test_fastPathImportsSessions(self):
        """
        The fast path importing sessions, spelled as a relative import, is
        reported.
        """
        root = self.makePackage(
            _sessions__control="class ControlDispatcher: pass\n",
            _fastpath__writer="from .._sessions import control\n",
        )
        self.assertEqual(
            check(root, "pkg"),
            ["pkg._fastpath.writer (line 1) imports pkg._sessions.control: _fastpath may import only _model, interfaces"],
        )

    def test_busImportsSessions(self):
        """
        A bus importing the sessions' control dispatcher inside a method
        (as the Redis bus does today) is reported.
        """
        root = self.makePackage(
            _sessions__control="class ControlDispatcher: pass\n",
            _bus__redis="class RedisBus:\n    def route(self):\n        from pkg._sessions.control import ControlDispatcher\n",
        )
        self.assertEqual(
            check(root, "pkg"),
            ["pkg._bus.redis (line 3) imports pkg._sessions.control: _bus must not import _sessions"],
        )

    def test_sessionsImportTransports(self):
        """
        Sessions importing a transport, under C{if TYPE_CHECKING:} with a
        plain C{import a.b.c}, is reported.
        """
        root = self.makePackage(
            _sessions__hub="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg._transports.http\n"
        )
        self.assertEqual(
            check(root, "pkg"),
            ["pkg._sessions.hub (line 3) imports pkg._transports.http: _sessions must not import _transports"],
        )

    def test_importsThePackage(self):
        """
        A module inside the package importing a name from the package's
        C{__init__} is reported, whatever its layer; as the facade imports
        the layers, that also closes a cycle, reported too.
        """
        root = self.makePackage(_transports__http="from pkg import Comet\n")
        self.assertEqual(
            check(root, "pkg"),
            [
                "pkg._transports.http (line 1) imports pkg: nothing inside the package imports its __init__",
                "import cycle: pkg <-> pkg._server.service <-> pkg._transports.http",
            ],
        )

    def test_cycle(self):
        """
        Two modules importing each other (one of them inside a function)
        are reported as a cycle, even where no layer rule is broken.
        """
        root = self.makePackage(
            _server__resource="def render():\n    from pkg._server.service import Comet\n",
        )
        self.assertEqual(check(root, "pkg"), ["import cycle: pkg._server.resource <-> pkg._server.service"])

    def test_longerCycles(self):
        """
        Cycles through three modules are found as one group, apart from a
        separate two-module cycle.
        """
        graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"f": 1}, "f": {"e": 1}}
        self.assertEqual(cycles(graph), [["a", "b", "c"], ["e", "f"]])
