"""Lower bounds on a drain for ``benchmarks/policy.py`` and ``benchmarks/drain.py``: the issue's
oracle (every test run a whole suite) and one for policies that stop a failing run at its failure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from buildbot_gate.model.state import Policy

if TYPE_CHECKING:
    from collections.abc import Sequence

# The gate's default landBatch: the oracle may land that many tested patches in one push.
LAND_BATCH = Policy().land_batch


def oracle_seconds(
    runs: int,
    workers: int,
    test_seconds: float,
    landed: int,
    broken: int,
    push_seconds: float,
    batch: int = 1,
) -> float:
    """The issue's oracle: a lower bound on any drain of ``runs`` whole test runs (one per
    patch, two per flaky one) on ``workers`` workers and ``landed`` pushes made one at a time,
    each after its patch's run. Not a bound for a policy that stops a failing run at its failure
    (see :func:`stopped_oracle_seconds`).

    Tests: a worker ends its n-th run at n * T at the earliest, so with n = ceil(runs / W) the
    r = runs - W * (n - 1) workers that run n runs end at n * T or later (or one runs n + 1);
    of those last r runs only the broken patches' need no push after them: the others' pushes
    cannot overlap any test. Pushes: see :func:`pushes_seconds`.
    Each flaky patch costs one run more (its own first run ends first among those holding it,
    in a queue tested in order, and fails); a patch needs no test worker while it is pushed.
    """
    if runs <= 0:
        return 0.0
    n = math.ceil(runs / workers)
    last_round = runs - workers * (n - 1)
    pushing = math.ceil(max(0, last_round - broken) / batch) * push_seconds
    after_tests = min(n * test_seconds + pushing, (n + 1) * test_seconds)
    return max(after_tests, pushes_seconds(workers, test_seconds, landed, push_seconds, batch))


def stopped_oracle_seconds(
    failure_shares: Sequence[float],
    workers: int,
    test_seconds: float,
    landed: int,
    push_seconds: float,
    batch: int = 1,
) -> float:
    """A lower bound on any drain, also for a policy that stops a failing run at its first failed
    test (the gate's default), where the issue's oracle is not one.

    Tests: each of the ``landed`` patches needs one run that passes, a whole T; each run that
    fails (a broken patch's, and a flaky one's first where the failure-attribution rerun is off)
    needs at least its seeded failure point, ``failure_shares`` (shares of T), before it can
    stop; that work spread evenly over W workers ends at its sum / W at the earliest. A rerun of
    failed tests is left out: a lower bound. Pushes: as for the issue's oracle.
    """
    work = (landed + sum(failure_shares)) * test_seconds
    tests = max(work / workers, test_seconds if landed else 0.0)
    return max(tests, pushes_seconds(workers, test_seconds, landed, push_seconds, batch))


def pushes_seconds(
    workers: int, test_seconds: float, landed: int, push_seconds: float, batch: int = 1
) -> float:
    """The pushes that cannot overlap: a worker ends at most one passing run per T, so the j-th
    run to pass ends at ceil(j / W) * T at the earliest, and the pushes of it and of every later
    one come after it, one at a time. With ``batch`` > 1 up to that many patches tested one
    behind the other land in one push (the gate's ``landBatch``), so m pushes left at the end
    take ceil(m / batch) pushes' time."""
    if not landed:
        return 0.0
    return max(
        math.ceil(j / workers) * test_seconds + math.ceil((landed - j + 1) / batch) * push_seconds
        for j in range(1, landed + 1)
    )
