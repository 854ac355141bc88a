"""A master.cfg finds every public class through Buildbot's plugin entry points."""

from __future__ import annotations

import re

import pytest
from buildbot import config
from buildbot.plugins import changes
from buildbot.plugins import reporters
from buildbot.plugins import schedulers
from buildbot.plugins import steps
from buildbot.plugins import util

from buildbot_gate import steps as gate_steps
from buildbot_gate.people.roundup import RoundupPeople
from buildbot_gate.people.static import StaticPeople
from buildbot_gate.rietveld.poller import RietveldPoller
from buildbot_gate.rietveld.reporter import RietveldReporter
from buildbot_gate.scheduler.forms import GateForceScheduler
from buildbot_gate.scheduler.service import GateScheduler
from buildbot_gate.steps import factories
from buildbot_gate.tracker.reporter import RoundupReporter


def test_master_cfg_finds_the_gate_through_buildbot_plugins():
    assert changes.RietveldPoller is RietveldPoller
    assert schedulers.GateScheduler is GateScheduler
    assert reporters.RietveldReporter is RietveldReporter
    assert reporters.RoundupReporter is RoundupReporter
    assert util.GateFactories is factories.GateFactories
    assert schedulers.GateForceScheduler is GateForceScheduler
    assert util.RoundupPeople is RoundupPeople
    assert util.StaticPeople is StaticPeople
    for name in ("GateCheckout", "ApplyPatch", "RunTests", "Land"):
        assert getattr(steps, name) is getattr(gate_steps, name)


def test_module_paths_that_became_packages_still_import_the_same_classes():
    # A master.cfg written before the folders may import these two paths directly.
    import buildbot_gate.people
    import buildbot_gate.scheduler

    assert buildbot_gate.people.StaticPeople is util.StaticPeople
    assert buildbot_gate.people.RoundupPeople is util.RoundupPeople
    assert buildbot_gate.scheduler.GateScheduler is schedulers.GateScheduler
    assert buildbot_gate.scheduler.GateForceScheduler is schedulers.GateForceScheduler


def test_factories_build_the_documented_step_sequence():
    test = util.GateFactories.test("http://hg.example.org/repo", "python run_tests.py")
    land = util.GateFactories.land("http://hg.example.org/repo")
    assert [s.step_class.__name__ for s in test.steps] == [
        "GateCheckout",
        "ApplyPatch",
        "RunTests",
        "AttributeFailure",
    ]
    assert [s.step_class.__name__ for s in land.steps] == [
        "GateCheckout",
        "ApplyPatch",
        "CheckLanding",
        "Land",
    ]
    docs = util.GateFactories.docs("http://hg.example.org/repo", "make -C Doc html")
    assert [s.step_class.__name__ for s in docs.steps] == ["GateCheckout", "ApplyPatch", "RunTests"]
    assert docs.steps[-1].kwargs["name"] == "docs"


def test_failure_attribution_is_on_by_default_rerunning_with_the_test_command():
    test = util.GateFactories.test("http://hg.example.org/repo", ["python", "-m", "test"])
    run, attribute = test.steps[-2:]
    assert run.kwargs["attributed"] is True
    assert re.findall(run.kwargs["failedPattern"], "0:01 [2/9/1] test_os failed\n", re.M) == [
        "test_os"
    ]
    assert attribute.kwargs["rerunCommand"] == ["python", "-m", "test"]
    assert attribute.kwargs["rerunSeparator"] is None  # regrtest refuses "--"
    explicit = util.GateFactories.test("http://h/r", "make test", rerun_command="./rerun")
    assert explicit.steps[-1].kwargs["rerunCommand"] == "./rerun"


def test_an_admin_turns_failure_attribution_off():
    test = util.GateFactories.test("http://h/r", "python run_tests.py", attribute_failures=False)
    assert [s.step_class.__name__ for s in test.steps][-1] == "RunTests"
    assert test.steps[-1].kwargs["attributed"] is False


def test_a_test_run_stops_at_its_first_failure_by_default_when_its_failure_is_attributed():
    test = util.GateFactories.test("http://h/r", "python run_tests.py")
    run, attribute = test.steps[-2:]
    assert run.kwargs["stopAtFailure"] is True
    assert attribute.kwargs["stopAtFailure"] is True
    # What the whole suite runs again as after a flaky first failure: the run's own command.
    assert attribute.kwargs["testCommand"] == "python run_tests.py"
    assert attribute.kwargs["failedPattern"] == run.kwargs["failedPattern"]
    goes_on = util.GateFactories.test("http://h/r", "python run_tests.py", stop_at_failure=False)
    assert [s.kwargs["stopAtFailure"] for s in goes_on.steps[-2:]] == [False, False]
    # Nothing would confirm the failure: the run goes on to its end, as before.
    unattributed = util.GateFactories.test("http://h/r", "t", attribute_failures=False)
    assert unattributed.steps[-1].kwargs["stopAtFailure"] is False
    unnamed = util.GateFactories.test("http://h/r", "t", failed_pattern=None)
    assert unnamed.steps[-1].kwargs["stopAtFailure"] is False


def test_a_stop_at_failure_that_is_not_true_or_false_is_a_config_error():
    with pytest.raises(config.ConfigErrors, match="stop_at_failure must be True or False"):
        util.GateFactories.test("http://h/r", "t", stop_at_failure="no")


def test_every_step_keeps_its_import_path_after_the_split_into_a_package():
    # master.cfg files import the steps from buildbot_gate.steps, whichever module holds them.
    families = {
        "GateCheckout": "checkout",
        "ApplyPatch": "apply",
        "RunTests": "run",
        "AttributeFailure": "attribute",
        "Land": "land",
        "CheckLanding": "land",
        "HgStep": "base",
    }
    for name, family in families.items():
        cls = getattr(gate_steps, name)
        assert cls.__module__ == f"buildbot_gate.steps.{family}", name
    assert set(families) <= set(gate_steps.__all__)
    for name in gate_steps.__all__:
        assert getattr(gate_steps, name) is not None
