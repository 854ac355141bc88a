"""The sample project's documentation build: every page under Doc/ is UTF-8 text whose title is
underlined as long as the title itself (a reStructuredText rule that breaks real doc builds)."""

# GATE_SAMPLE_STARTED  append "docs <checkout> <pid>" to this file when a build starts
# GATE_SAMPLE_SLEEP    seconds every build takes at least (so that a demo's queue can be watched)

import os
import sys
import time


def main() -> int:
    started = os.environ.get("GATE_SAMPLE_STARTED")
    if started:
        with open(started, "a") as f:
            f.write(f"docs {os.getcwd()} {os.getpid()}\n")
    time.sleep(float(os.environ.get("GATE_SAMPLE_SLEEP", "0") or 0))
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Doc")
    errors = 0
    pages = 0
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            pages += 1
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except UnicodeDecodeError:
                print(f"ERROR {path}: not UTF-8")
                errors += 1
                continue
            if len(lines) < 2 or not lines[1] or set(lines[1]) != {"="}:
                print(f"ERROR {path}: the first line must be a title underlined with '='")
                errors += 1
            elif len(lines[1]) != len(lines[0]):
                print(f"ERROR {path}: title underline too short or too long")
                errors += 1
    print(f"built {pages} page(s), {errors} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
