"""``buildbot-gate classify``: every entry (open or fixed) lists the failed builds it matches,
the rest are unclassified; a catalogue that is not there is said in one line."""

from __future__ import annotations

from buildbot_gate import cli
from buildbot_gate.knownfailures import parse
from buildbot_gate.tools.classify import FailedBuild
from buildbot_gate.tools.classify import classify


def entry(n: int, signature: str, state: str = "open"):
    text = f'id = "bpo-{n}"\ntitle = "t"\nstate = "{state}"\nsignature = \'{signature}\'\n'
    return parse(text, "x.toml")


def build(number: int, log: str) -> FailedBuild:
    return FailedBuild(number, "gate-test", number, 7, 1, (), log)


def test_each_entry_lists_its_builds_fixed_ones_too_and_the_rest_are_unclassified():
    net, bench = entry(1, "^FAIL test_net"), entry(2, "^FAIL test_bench", "fixed")
    builds = [build(1, "FAIL test_net: reset\n"), build(2, "FAIL test_bench\n"), build(3, "boom")]
    per_entry, unmatched = classify([net, bench], builds)
    assert {k: [b.number for b in v] for k, v in per_entry.items()} == {"bpo-1": [1], "bpo-2": [2]}
    assert [b.number for b in unmatched] == [3]


def test_a_missing_catalogue_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["classify", "--db-url", "sqlite://", "--catalogue", str(missing)]) == 2
    assert capsys.readouterr().err == f"buildbot-gate classify: {missing} is not a directory\n"
