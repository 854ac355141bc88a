"""A stand-in for a Rietveld server, for tests and the demo only.

Rietveld is a Python 2 App Engine application that cannot run here. This klein application
serves the part of its HTTP API the gate uses, shape for shape (issue and patchset JSON, raw
diffs, search with a cursor, the XSRF dance, publish), computing ``approval`` and
``disapproval`` from message text the way the real server does. Tests drive it through
:class:`Store` (in the same process) or through the ``/_standin/`` control endpoints
(:class:`StandinControl`, from another process). Production code never imports this module.

Run it alone::

    python -m buildbot_gate.testing.rietveld_standin --port 8080 --account gate@example.org:TOKEN

The package: :mod:`.store` (issues and their JSON shapes), :mod:`.app` (the HTTP routes),
:mod:`.control` (a client for the control routes), ``__main__`` (run it alone).
"""

from buildbot_gate.testing.rietveld_standin.app import StandinApp
from buildbot_gate.testing.rietveld_standin.control import StandinControl
from buildbot_gate.testing.rietveld_standin.store import CONTROL
from buildbot_gate.testing.rietveld_standin.store import Store
from buildbot_gate.testing.rietveld_standin.store import split_diff

__all__ = ["CONTROL", "StandinApp", "StandinControl", "Store", "split_diff"]
