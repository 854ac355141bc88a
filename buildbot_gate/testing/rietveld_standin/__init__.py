"""A stand-in for a Rietveld server, for tests and the demo only (the real one is a Python 2
App Engine application): the part of its HTTP API the gate uses, shape for shape."""

from buildbot_gate.testing.rietveld_standin.app import StandinApp
from buildbot_gate.testing.rietveld_standin.control import StandinControl
from buildbot_gate.testing.rietveld_standin.store import CONTROL
from buildbot_gate.testing.rietveld_standin.store import Store
from buildbot_gate.testing.rietveld_standin.store import split_diff

__all__ = ["CONTROL", "StandinApp", "StandinControl", "Store", "split_diff"]
