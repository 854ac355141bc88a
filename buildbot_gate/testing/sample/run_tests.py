"""The sample project's test suite, with knobs the gate's own tests turn through the environment;
``run_tests.py NAME...`` runs only the named tests, as ``python -m test NAME...`` does and as
the gate's failure attribution reruns them by default (``--only [--] NAME...`` too)."""

# The knobs, so a test can shape a run without a patch:
# GATE_SAMPLE_STARTED  append "test <checkout> <pid>" to this file when a run starts
# GATE_SAMPLE_HOLD     while this file exists, wait before testing (tests race a push against it)
# sample_wait.txt      in a checkout: wait while the path written in it exists (and record
#                      "wait <path> <pid>"); a patch adding it holds its runs and those on top
# GATE_SAMPLE_SLEEP    seconds every run takes at least (the benchmarks' fixed test duration)
# GATE_SAMPLE_SICK     set on one worker: every run there fails (a sick worker, for quarantine)
# GATE_SAMPLE_FLAKY    if this file exists, remove it and fail: one flaky failure, cured by a rerun
# GATE_SAMPLE_FLAKY_DIR  a tree holding bench_flaky_<name> fails the first run that sees it (the
#                      benchmarks' seeded flaky patches); bench_fail_<name> always fails
# GATE_SAMPLE_LINGER   seconds a failing whole run keeps running after printing its failures
#                      (flushed), as a long suite goes on after its first failed test; named
#                      reruns (failure attribution's) never linger

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def first_to_see(marker: str) -> bool:
    """Whether this run made ``marker``: of runs that check at the same moment (builds started
    together), exactly one does (O_EXCL), so a flaky patch fails exactly one run."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # "--only -- NAME...": the gate puts "--" before names read from test output when told to.
    only = {n for n in argv[1:] if n != "--"} if argv[:1] == ["--only"] else None
    if argv and not argv[0].startswith("-"):
        only = set(argv)
    if only is not None:
        return run_checks(only)
    started = os.environ.get("GATE_SAMPLE_STARTED")
    if started:
        with open(started, "a") as f:
            f.write(f"test {os.getcwd()} {os.getpid()}\n")
    hold = os.environ.get("GATE_SAMPLE_HOLD")
    wait_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_wait.txt")
    if os.path.exists(wait_file):
        with open(wait_file) as f:
            in_tree = f.read().strip()
    else:
        in_tree = ""
    if in_tree and started:
        with open(started, "a") as f:
            f.write(f"wait {in_tree} {os.getpid()}\n")
    waited = 0.0
    while waited < 600 and any(p and os.path.exists(p) for p in (hold, in_tree)):
        time.sleep(0.1)
        waited += 0.1
    time.sleep(float(os.environ.get("GATE_SAMPLE_SLEEP", "0") or 0))
    status = run_checks(None)
    linger = float(os.environ.get("GATE_SAMPLE_LINGER", "0") or 0)
    if status and linger:
        sys.stdout.flush()  # the failure is out while the run goes on
        time.sleep(linger)
    return status


def run_checks(only: set[str] | None) -> int:
    """Every test (``only`` None), or the named ones; returns the exit status."""

    def wanted(name: str) -> bool:
        return only is None or name in only

    if os.environ.get("GATE_SAMPLE_SICK") and wanted("test_env"):
        print("FAIL test_env: this worker's environment is broken (GATE_SAMPLE_SICK)")
        return 1
    flaky = os.environ.get("GATE_SAMPLE_FLAKY")
    if flaky and wanted("test_network"):
        try:
            os.remove(flaky)
            print("FAIL test_network: connection reset by peer (a flaky failure)")
            return 1
        except FileNotFoundError:
            pass

    here = os.path.dirname(os.path.abspath(__file__))
    broken = sorted(n for n in os.listdir(here) if n.startswith("bench_fail_"))
    if broken and wanted("test_bench"):
        print(f"FAIL test_bench: {broken[0]} breaks the suite")
        return 1
    seen = os.environ.get("GATE_SAMPLE_FLAKY_DIR")
    flakies = sorted(n for n in os.listdir(here) if n.startswith("bench_flaky_"))
    for name in flakies if wanted("test_bench") else []:
        if seen and first_to_see(os.path.join(seen, name + ".seen")):
            print(f"FAIL test_bench: {name} failed once (a flaky test)")
            return 1

    import calc

    failures = 0
    for name, got, want in [
        ("add", calc.add(2, 3), 5),
        ("sub", calc.sub(7, 2), 5),
        ("mul", calc.mul(4, 5), 20),
    ]:
        if not wanted(name):
            continue
        ok = got == want
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: got {got!r}, want {want!r}")
    extra = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_extra.py")
    if os.path.exists(extra):
        namespace = {"calc": calc}
        with open(extra) as f:
            exec(compile(f.read(), extra, "exec"), namespace)
        for key, fn in sorted(namespace.items()):
            if key.startswith("test_") and callable(fn) and wanted(key):
                try:
                    fn()
                    print(f"ok   {key}")
                except Exception as e:
                    failures += 1
                    print(f"FAIL {key}: {e!r}")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
