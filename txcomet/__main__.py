# -*- test-case-name: tests.client.test_cli,tests.system.test_cli -*-
"""
C{python -m txcomet}: the command line (see L{txcomet._client.cli}).
"""

from txcomet._client.cli import main

if __name__ == "__main__":
    main()
