"""
The public surface is small and locked: a change to it is deliberate.
"""

from twisted.trial.unittest import SynchronousTestCase

import txcomet
import txcomet.interfaces
import txcomet.testing


class ExportTests(SynchronousTestCase):
    def test_txcomet(self):
        """
        txcomet exports exactly these names, and each exists.
        """
        expected = {
            "AllowAll", "Comet", "CometClient", "CometConfig", "CometError", "CometRequest",
            "CometResource", "Event", "InMemoryBus", "__version__",
            "CometAuthorizer", "authorizerFromConfig", "redactedLogFormatter",
        }
        self.assertTrue(expected <= set(txcomet.__all__), set(txcomet.__all__) ^ expected)
        for name in txcomet.__all__:
            self.assertTrue(hasattr(txcomet, name), name)

    def test_testing(self):
        """
        txcomet.testing exports its fakes.
        """
        self.assertEqual(
            set(txcomet.testing.__all__),
            {"makeComet", "MemoryCometClient", "RecordingSubscriber", "RecordingDataChannel", "StubResponse"},
        )
        for name in txcomet.testing.__all__:
            self.assertTrue(hasattr(txcomet.testing, name), name)

    def test_interfaces(self):
        """
        Every name in txcomet.interfaces.__all__ is an interface.
        """
        from zope.interface.interface import InterfaceClass

        for name in txcomet.interfaces.__all__:
            self.assertIsInstance(getattr(txcomet.interfaces, name), InterfaceClass, name)
