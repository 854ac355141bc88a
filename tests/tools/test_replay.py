"""Policy replay on histories whose answers can be worked out by hand."""

from __future__ import annotations

from buildbot_gate.tools.replay import History
from buildbot_gate.tools.replay import Patch
from buildbot_gate.tools.replay import simulate


def history(fates, workers=1, test=10.0, land=2.0, dispatch=0.0):
    return History(
        patches=tuple(Patch(i + 1, 1, "default", 100.0, f) for i, f in enumerate(fates)),
        test_builders=("linux",),
        test_seconds={"linux": test},
        land_seconds=land,
        workers=workers,
        pools={"linux": workers, "land": 1},
        detect_seconds=0.0,
        dispatch_seconds=dispatch,
        recheck_seconds=1.0,
        measured_seconds=0.0,
        measured_worker_minutes=0.0,
    )


def test_serial_tests_and_pushes_one_patch_after_the_other():
    r = simulate(history(["pass"] * 3), window=1)
    # test 10 s, push 2 s, three times over
    assert (r.drain_seconds, r.landed, r.ejected) == (36.0, 3, 0)
    assert r.worker_minutes == round(3 * 12 / 60, 1)


def test_every_build_waits_for_the_masters_reaction_even_when_a_worker_is_free():
    r = simulate(history(["pass"] * 3, dispatch=0.5), window=1)
    # each test and each push starts half a second after the build before it ended
    assert r.drain_seconds == 36.0 + 6 * 0.5


def test_a_pipeline_overlaps_each_push_with_the_next_test():
    r = simulate(history(["pass"] * 3), window=3)
    # one worker: the tests still run one at a time, but each push overlaps the next test
    assert (r.drain_seconds, r.landed) == (32.0, 3)
    wide = simulate(history(["pass"] * 3, workers=3), window=3)
    # all three tested at once (0-10); 1 waits for 2 (its test began with 1's), whose result,
    # and 3's, are read right after its own: the three in one land build and one push (10-12)
    assert wide.drain_seconds == 12.0
    alone = simulate(history(["pass"] * 3, workers=3), window=3, land_wait=0)
    # no wait: 1 is pushed alone (10-12), then 2 and 3 in one land build and one push (12-14)
    assert alone.drain_seconds == 14.0
    apart = simulate(history(["pass"] * 3, workers=3), window=3, land_batch=1)
    assert apart.drain_seconds == 16.0  # a land build each: three pushes in order


def test_a_broken_patch_is_ejected_and_those_tested_on_it_run_again():
    r = simulate(history(["pass", "fail", "pass"], workers=3), window=3)
    assert (r.landed, r.ejected) == (2, 1)
    # 1 and 2 and 3 tested at once (10 s); 2 fails and 3 reruns without it (10 s more)
    assert r.drain_seconds == 22.0


def test_a_flaky_patch_is_rechecked_and_lands():
    r = simulate(history(["flaky", "pass"]), window=1)
    assert (r.landed, r.ejected) == (2, 0)
    # 1 fails (0-10) and is ejected; the recheck (11) queues it behind 2, which is tested and
    # pushed (10-22); then 1 passes and lands (22-34)
    assert r.drain_seconds == 34.0


def test_with_the_rerun_on_a_flaky_failure_passes_in_the_same_build():
    r = simulate(history(["flaky", "pass", "pass"], workers=3), window=3, rerun_seconds=3.0)
    assert (r.landed, r.ejected) == (3, 0)
    # all three tested at once; 1's failed tests rerun (10-13) and pass, nothing behind it is
    # reset: then all three in one land build and one push (13-15)
    assert r.drain_seconds == 15.0
    assert r.finished == (
        (1, "default", "landed"),
        (2, "default", "landed"),
        (3, "default", "landed"),
    )
    # A broken patch fails its rerun too: ejected as before.
    broken = simulate(history(["fail", "pass"], workers=2), window=2, rerun_seconds=3.0)
    assert (broken.landed, broken.ejected) == (1, 1)
    # 1 fails at 10, reruns and fails again at 13, passes on the tip without it at 16 (the
    # verdict: its own failure): 2 is tested again without it (16-26), pushed (26-28)
    assert broken.drain_seconds == 28.0


def test_a_flaky_patch_whose_first_build_is_cancelled_still_fails_its_next_run():
    r = simulate(history(["fail", "flaky"], workers=2), window=2)
    # 1 and 1+2 tested at once (0-10); 1 fails and is ejected, and 2's build, cancelled, shows
    # nothing: 2's next run (10-20) is its first to end, and fails; rechecked (21), tested
    # (21-31) and pushed (31-33). A flaky test fails while it runs, not when a build is queued.
    assert (r.landed, r.ejected) == (1, 1)
    assert r.drain_seconds == 33.0


def test_the_replay_command_explains_what_it_cannot_read(tmp_path, capsys):
    from buildbot_gate.cli import main

    assert main(["replay", "--db-url", f"sqlite:///{tmp_path}/missing/state.sqlite"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["replay", "--db-url", "sqlite://", "--windows", "serial,two"]) == 2
    assert "not a window: 'two'" in capsys.readouterr().err
