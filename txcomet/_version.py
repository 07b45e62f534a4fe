# -*- test-case-name: tests.test_exports -*-
"""
The version of txcomet, in a module of its own so that nothing needs to
import the package's C{__init__} to read it.
"""

__version__ = "0.1.0"
