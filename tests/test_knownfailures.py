"""The known-failures catalogue: parsing its TOML files (with errors an admin can act on),
matching a failed log against its open entries, and the bounds on what is read of a log."""

from __future__ import annotations

import pytest

from buildbot_gate import knownfailures
from buildbot_gate.knownfailures import CatalogueError
from buildbot_gate.knownfailures import parse

NETWORK = """
id = "bpo-1234"
title = "test_network: connection reset by peer"
state = "open"
signature = '^FAIL test_network: connection reset by peer'
"""
LOG = "ok   add\nFAIL test_network: connection reset by peer (a flaky failure)\n1 failure(s)\n"


def test_an_entry_reads_its_fields_and_links_to_its_bpo_issue():
    entry = parse(NETWORK, "bpo-1234.toml")
    assert (entry.id, entry.state, entry.builder, entry.test) == ("bpo-1234", "open", None, None)
    assert entry.link == "https://bugs.python.org/issue1234"
    assert entry.describe() == "bpo-1234: test_network: connection reset by peer"


def test_a_signature_matches_the_failed_log_anywhere_in_it():
    entry = parse(NETWORK, "x.toml")
    assert knownfailures.match([entry], LOG, "gate-test") is entry
    assert knownfailures.match([entry], "FAIL test_bench: broken\n", "gate-test") is None


def test_a_fixed_entry_never_matches_its_failure_is_now_a_real_one():
    fixed = parse(NETWORK.replace('"open"', '"fixed"'), "x.toml")
    assert knownfailures.match([fixed], LOG, "gate-test") is None


def test_builder_and_test_narrow_an_entry():
    on_linux = parse(NETWORK + 'builder = "linux"\n', "x.toml")
    assert knownfailures.match([on_linux], LOG, "gate-test") is None
    assert knownfailures.match([on_linux], LOG, "linux") is on_linux
    other_test = parse(
        NETWORK.replace("signature = '^FAIL test_network", "signature = '") + 'test = "test_ssl"\n',
        "x.toml",
    )
    assert knownfailures.match([other_test], LOG, "gate-test") is None
    assert knownfailures.match([other_test], LOG, "gate-test", ["test_ssl"]) is other_test


def test_an_entry_limited_to_branches_matches_only_failures_on_them():
    one = parse(NETWORK + 'branch = "3.5"\n', "x.toml")
    two = parse(NETWORK + 'branch = ["3.4", "3.5"]\n', "y.toml")
    assert knownfailures.match([one], LOG, "gate-test", branch="3.5") is one
    assert knownfailures.match([one], LOG, "gate-test", branch="default") is None
    assert knownfailures.match([two], LOG, "gate-test", branch="3.4") is two
    # A build nobody tested for a queue (forced by hand) is on no known branch.
    assert knownfailures.match([one], LOG, "gate-test") is None
    assert knownfailures.match([parse(NETWORK, "z.toml")], LOG, "gate-test", branch="3.5")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("id = ", "x.toml: not valid TOML"),
        (NETWORK.replace('id = "bpo-1234"', ""), "x.toml: id is required"),
        (NETWORK.replace('"open"', '"flaky"'), "state is 'open' or 'fixed', not 'flaky'"),
        (NETWORK.replace("'^FAIL", "'(^FAIL"), "x.toml: signature is not a regular expression"),
        (NETWORK + "signatur = 'x'\n", "x.toml: unknown keys signatur"),
        (NETWORK + "builder = 3\n", "x.toml: builder must be a string"),
        (NETWORK + "branch = []\n", "x.toml: branch must be a branch name or a list"),
        (NETWORK + 'branch = ["3.5", 3]\n', "x.toml: branch must be a branch name or a list"),
        (NETWORK.replace("bpo-1234", "1234 bpo"), "is not a tracker id such as bpo-1234"),
    ],
)
def test_a_broken_entry_is_an_error_naming_the_file_and_the_problem(text, said):
    with pytest.raises(CatalogueError, match=said.replace("(", r"\(")):
        parse(text, "x.toml")


def test_a_catalogue_keeps_its_good_entries_and_names_its_broken_files(tmp_path):
    (tmp_path / "bpo-1234.toml").write_text(NETWORK)
    (tmp_path / "bpo-9.toml").write_text(NETWORK.replace('"open"', '"maybe"'))
    (tmp_path / "again.toml").write_text(NETWORK)
    (tmp_path / "README").write_text("not an entry")
    entries, problems = knownfailures.load(tmp_path)
    assert [e.id for e in entries] == ["bpo-1234"]  # from again.toml, read first
    assert problems == [
        "bpo-1234.toml: id bpo-1234 is already used by again.toml",
        "bpo-9.toml: state is 'open' or 'fixed', not 'maybe'",
    ]
    assert knownfailures.load(tmp_path / "missing")[1] == [
        f"{tmp_path / 'missing'} is not a directory"
    ]


def test_only_the_end_of_a_huge_log_is_read_from_a_line_start():
    lines = [f"line {n}\n" for n in range(300_000)]
    text = knownfailures.tail("".join(lines), 1000)
    assert len(text.encode()) <= 1000
    assert text.endswith("line 299999\n")
    assert text.startswith("line ")
    assert knownfailures.tail("short\n", 1000) == "short\n"


def test_a_stdio_log_loses_buildbots_stream_prefixes():
    assert knownfailures.stdio_text("oFAIL x\nehint\n", "s") == "FAIL x\nhint\n"
    assert knownfailures.stdio_text("oFAIL x\n", "t") == "oFAIL x\n"
