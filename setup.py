from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    longDescription = f.read()

setup(
    name="txcomet",
    version="0.1.0",
    description="Server push for Twisted: every comet transport and WebSocket on one event bus",
    long_description=longDescription,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # twisted.plugins is listed by hand: find_packages() would skip it,
    # because twisted/ and twisted/plugins/ must have no __init__.py.
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]) + ["twisted.plugins"],
    package_data={"txcomet": ["py.typed", "static/*", "_bus/lua/*.lua"]},
    install_requires=[
        "twisted>=24.7",
        "autobahn>=23.1",
        "zope.interface>=5",
        "treq>=23.11",
        # connection and channel tokens (RS*/ES*/EdDSA need the crypto extra)
        "pyjwt[crypto]>=2.8",
        # the metrics at <prefix>/metrics
        "prometheus_client>=0.17",
        # the channel rules file (tomllib is in the standard library from 3.11)
        "tomli; python_version<'3.11'",
    ],
    extras_require={
        # ssl: endpoints (--listen ssl:8443:privateKey=...)
        "tls": ["twisted[tls]"],
        # HTTP/2 for every HTTP transport under TLS, chosen by ALPN
        "http2": ["twisted[tls,http2]"],
        "test": [
            # the TLS and HTTP/2 system tests
            "twisted[tls,http2]",
            "pytest>=7",
            "pytest-twisted>=1.14",
            "hypothesis>=6",
            "websockets>=14",
            "build",
            # the browser tests drive Debian's Chromium (/usr/bin/chromium);
            # Playwright's own browser downloads are never used
            "playwright>=1.40",
        ],
    },
    entry_points={"console_scripts": []},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
    ],
)
