"""The gate's build steps: check out the pinned base, apply the patch, test, land.

One module per family; the names are re-exported here for ``buildbot.plugins.steps``.
"""

from __future__ import annotations

from buildbot_gate.hg import HG_ENV
from buildbot_gate.steps.apply import ApplyPatch
from buildbot_gate.steps.attribute import AttributeFailure
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed
from buildbot_gate.steps.checkout import GateCheckout
from buildbot_gate.steps.land import RECORD_WAIT
from buildbot_gate.steps.land import CheckLanding
from buildbot_gate.steps.land import Land
from buildbot_gate.steps.run import RunTests

__all__ = [
    "HG_ENV",
    "RECORD_WAIT",
    "ApplyPatch",
    "AttributeFailure",
    "CheckLanding",
    "GateCheckout",
    "HgStep",
    "Land",
    "RunTests",
    "StepFailed",
]
