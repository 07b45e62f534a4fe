"""
Every implementation of a txcomet interface really provides it.
"""

import importlib
import pkgutil

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyClass, verifyObject

import txcomet
from txcomet import interfaces
from txcomet._transports.datachannel import DataChannelParams, HTTPDataChannel, LongPollResource
from txcomet.testing import RecordingDataChannel, RecordingSubscriber, makeComet

INTERFACES = [getattr(interfaces, name) for name in interfaces.__all__]


def implementations():
    """
    Every class defined in a txcomet module that declares one of our
    interfaces, with those interfaces.
    """
    found = []
    for module in pkgutil.walk_packages(txcomet.__path__, "txcomet."):
        if module.name.endswith("__main__"):
            continue
        mod = importlib.import_module(module.name)
        for value in vars(mod).values():
            if isinstance(value, type) and value.__module__ == mod.__name__:
                provided = [i for i in INTERFACES if i.implementedBy(value)]
                if provided:
                    found.append((value, provided))
    return found


class InterfaceTests(SynchronousTestCase):
    def test_everyImplementationVerifies(self):
        """
        verifyClass passes for every class declaring a txcomet interface,
        and the known implementations are among them.
        """
        found = implementations()
        names = {cls.__name__ for cls, _ in found}
        self.assertTrue({"InMemoryBus", "Session", "Event", "History", "AllowAll", "HTTPDataChannel",
                         "RecordingSubscriber", "RecordingDataChannel"} <= names, names)
        for cls, provided in found:
            for interface in provided:
                self.assertTrue(verifyClass(interface, cls), (cls, interface))

    def test_instancesVerify(self):
        """
        verifyObject passes for instances of the foundation's
        implementations.
        """
        comet, clock = makeComet()
        event = self.successResultOf(comet.publish("a", 1))
        history = self.successResultOf(comet.bus.history("a", None))
        session = self.successResultOf(comet.hub.join())
        request = DummyRequest([b""])
        channel = HTTPDataChannel(LongPollResource(comet.hub), request, DataChannelParams(None, ["a"], None, {}))
        for interface, obj in [
            (interfaces.IEventBus, comet.bus),
            (interfaces.IPresence, comet.bus),
            (interfaces.IEvent, event),
            (interfaces.IHistory, history),
            (interfaces.ISubscriber, session),
            (interfaces.ISubscriber, RecordingSubscriber()),
            (interfaces.IAuthorizer, comet.hub.authorizer),
            (interfaces.IDataChannel, channel),
            (interfaces.IDataChannel, RecordingDataChannel()),
        ]:
            self.assertTrue(verifyObject(interface, obj), (interface, obj))
