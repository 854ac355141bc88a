"""The pure gate model: queues, items, events and the decisions taken on them.

No Twisted, no IO, no Buildbot imports, so every ordering rule is checked by fast unit tests.
"""

from buildbot_gate.model.actions import Action
from buildbot_gate.model.actions import CancelBuildset
from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import Refuse
from buildbot_gate.model.actions import StartLand
from buildbot_gate.model.actions import StartTest
from buildbot_gate.model.actions import WaitToLand
from buildbot_gate.model.gate import decide
from buildbot_gate.model.gate import tick
from buildbot_gate.model.items import Approved
from buildbot_gate.model.items import BuildsetFinished
from buildbot_gate.model.items import Event
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import LandStarted
from buildbot_gate.model.items import LandWaitOver
from buildbot_gate.model.items import MergeNow
from buildbot_gate.model.items import Outcome
from buildbot_gate.model.items import Recheck
from buildbot_gate.model.items import Resume
from buildbot_gate.model.items import ResumeBranch
from buildbot_gate.model.items import Run
from buildbot_gate.model.items import StartFailed
from buildbot_gate.model.items import TestFailing
from buildbot_gate.model.items import TestStarted
from buildbot_gate.model.items import Withdrawn
from buildbot_gate.model.state import GateState
from buildbot_gate.model.state import Policy

__all__ = [
    "Action",
    "Approved",
    "BuildsetFinished",
    "CancelBuildset",
    "Decision",
    "Event",
    "GateState",
    "Item",
    "ItemState",
    "LandStarted",
    "LandWaitOver",
    "MergeNow",
    "Notify",
    "Outcome",
    "Policy",
    "Recheck",
    "Refuse",
    "Resume",
    "ResumeBranch",
    "Run",
    "StartFailed",
    "StartLand",
    "StartTest",
    "TestFailing",
    "TestStarted",
    "WaitToLand",
    "Withdrawn",
    "decide",
    "tick",
]
