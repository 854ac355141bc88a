"""Build factories for the gate's two builders, for master.cfg:
``util.GateFactories.test(...)`` and ``util.GateFactories.land(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildbot import config
from buildbot.process.factory import BuildFactory

from buildbot_gate.steps import ApplyPatch
from buildbot_gate.steps import AttributeFailure
from buildbot_gate.steps import CheckLanding
from buildbot_gate.steps import GateCheckout
from buildbot_gate.steps import Land
from buildbot_gate.steps import RunTests
from buildbot_gate.steps.build import GateBuild
from buildbot_gate.steps.run import DEFAULT_FAILED_PATTERN

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence


def _factory() -> BuildFactory:
    """An empty factory of gate builds (a cancelled one reads as the gate's reason)."""
    f = BuildFactory()
    f.buildClass = GateBuild
    return f


def _checked_then(run: RunTests, repourl: str, hgbin: str) -> BuildFactory:
    """The pinned checkout, the patches committed, then ``run`` on that tree."""
    f = _factory()
    f.addStep(GateCheckout(repourl=repourl, hgbin=hgbin))
    f.addStep(ApplyPatch(hgbin=hgbin))
    f.addStep(run)
    return f


def gate_test_factory(
    repourl: str,
    test_command: str | Sequence[str],
    test_timeout: int = 3600,
    env: Mapping[str, str] | None = None,
    hgbin: str = "hg",
    rerun_command: str | Sequence[str] | None = None,
    failed_pattern: str | None = DEFAULT_FAILED_PATTERN,
    rerun_separator: str | None = None,
    attribute_failures: bool = True,
    stop_at_failure: bool = True,
) -> BuildFactory:
    """Check out the pinned base, apply and commit the patch, run ``test_command``.

    Failure attribution, on by default: a failed run's failed tests (``failed_pattern``'s first
    group, by default the sample suite's ``FAIL name:`` and regrtest's ``test_x failed``) run
    again in the tested tree, then on the tip without the patch (AttributeFailure), before
    anyone is blamed. They run as ``rerun_command`` (default: ``test_command``, as for
    ``python -m test``), then ``rerun_separator`` if given (regrtest refuses ``--``; a name
    must start with a letter, digit or underscore, so it is never read as an option), then
    their names. ``attribute_failures=False`` (or no ``failed_pattern``) turns it off: any
    failure ejects the patch. With ``failed_pattern``, the first failed test the run prints is
    told to the scheduler at once (early failure; GateScheduler's ``earlyFailure`` acts on it).

    ``stop_at_failure`` (on by default, with failure attribution): the first failed test stops
    the run there, a broken patch no longer holds its worker for the rest of the suite, and the
    scheduler is told once the rerun confirms the failure (a flaky test resets nobody). Its
    cost: the comment names only that first failed test (the suite stopped there; it says so),
    and a flaky first failure runs the whole suite a second time before the tree counts as
    tested. ``False``: the run goes on to its end and the first failure is told at once.
    """
    if not isinstance(stop_at_failure, bool):
        config.error(
            f"gate_test_factory: stop_at_failure must be True or False, not {stop_at_failure!r}"
        )
    attributed = attribute_failures and bool(failed_pattern)
    stop = attributed and stop_at_failure is True
    run = RunTests(
        command=test_command,
        maxTime=test_timeout,
        timeout=test_timeout,
        env=dict(env or {}),
        failedPattern=failed_pattern,
        attributed=attributed,
        stopAtFailure=stop,
    )
    f = _checked_then(run, repourl, hgbin)
    if attributed:
        f.addStep(
            AttributeFailure(
                rerunCommand=test_command if rerun_command is None else rerun_command,
                timeout=test_timeout,
                env=env,
                hgbin=hgbin,
                rerunSeparator=rerun_separator,
                testCommand=test_command,
                failedPattern=failed_pattern,
                stopAtFailure=stop,
            )
        )
    return f


def gate_docs_factory(
    repourl: str,
    docs_command: str | Sequence[str],
    timeout: int = 1800,
    env: Mapping[str, str] | None = None,
    hgbin: str = "hg",
) -> BuildFactory:
    """The documentation fast path: the same checkout and patch, then only the docs build."""
    run = RunTests(
        name="docs",
        command=docs_command,
        maxTime=timeout,
        timeout=timeout,
        env=dict(env or {}),
        description=["building docs"],
        descriptionDone=["docs built"],
    )
    return _checked_then(run, repourl, hgbin)


def gate_land_factory(
    repourl: str,
    hgbin: str = "hg",
    push_url: str | None = None,
    push_auth: object = None,
    push_config: str | None = None,
) -> BuildFactory:
    """Rebuild the tested changeset and push exactly it.

    Push rights (see :class:`Land`): ``push_config``, an hg config file on the land worker with
    an ``[auth]`` section (or ``[ui] ssh`` for ssh); or ``push_auth``, ``"user:password"`` from a
    Buildbot secret (``util.Secret("hg-push")``); or ``push_url``, the URL to push to when it is
    not ``repourl`` (its ``user:password@`` is never shown).

    In the land builder's own clone, where no test ever runs, checked by GateCheckout before
    use; give the builder workers of its own (GATE_LAND_WORKERS in master.cfg.example) so that
    no patch's test code ever shares a machine with push rights.
    """
    f = _factory()
    f.addStep(GateCheckout(repourl=repourl, hgbin=hgbin))
    f.addStep(ApplyPatch(hgbin=hgbin))
    f.addStep(CheckLanding(hgbin=hgbin))  # a rebuild or forced buildset stops here
    env = {"HGRCPATH": push_config} if push_config else None
    f.addStep(Land(repourl=push_url or repourl, hgbin=hgbin, pushAuth=push_auth, env=env))
    return f


class GateFactories:
    """Namespace exported to ``buildbot.plugins.util``."""

    test = staticmethod(gate_test_factory)
    docs = staticmethod(gate_docs_factory)
    land = staticmethod(gate_land_factory)
