"""Passwords in URLs never shown: the gate's redaction against Mercurial's own hidepassword."""

from __future__ import annotations

import string
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from mercurial.utils import urlutil

from buildbot_gate.redact import redact
from buildbot_gate.redact import split_credentials

NAMES = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12)
SECRETS = st.text(string.printable.strip() + "é", min_size=1, max_size=20)


def url_with(user: str, password: str, host: str = "hg.example.org:8000", path: str = "/repo"):
    return f"https://{user}:{quote(password, safe='')}@{host}{path}"


@given(NAMES, SECRETS, st.sampled_from(["/", "/cpython", "/a/b?x=1"]))
def test_a_url_reads_as_hg_itself_shows_it(user, password, path):
    url = url_with(user, password, path=path)
    shown = redact(url)
    assert shown == urlutil.hidepassword(url.encode()).decode()
    assert shown == f"https://{user}:***@hg.example.org:8000{path}"


@given(NAMES, SECRETS)
def test_no_password_survives_in_a_sentence(user, password):
    url = url_with(user, password)
    text = f"push to {url} failed; retrying {url}\n(abort: HTTP Error 403)"
    shown = redact(text)
    assert shown == text.replace(url, f"https://{user}:***@hg.example.org:8000/repo")


def test_database_urls_lose_their_password():
    assert redact("cannot read postgresql://bb:hunter2@db:5432/bb") == (
        "cannot read postgresql://bb:***@db:5432/bb"
    )


def test_text_without_a_password_is_unchanged():
    for text in ("sqlite:////srv/gate/state.sqlite", "http://hg.example.org/", "ssh://u@h//r"):
        assert redact(text) == text


def test_credentials_are_split_off_and_unquoted():
    assert split_credentials("http://gate:pa%40ss@127.0.0.1:8000/") == (
        "http://127.0.0.1:8000/",
        "gate",
        "pa@ss",
    )
    assert split_credentials("http://127.0.0.1:8000/") == ("http://127.0.0.1:8000/", None, None)


def test_the_cli_never_prints_the_password_of_a_database_or_repository_url(capsys, tmp_path):
    from buildbot_gate import cli

    db_url = "sqlite://gate:hunter2@/nonexistent/state.sqlite"
    assert cli.main(["replay", "--db-url", db_url]) == 2
    assert cli.main(["audit", "--repo", str(tmp_path / "none"), "--db-url", db_url]) == 2
    # A repository URL that cannot be cloned (nothing listens on port 1).
    repo = "http://gate:hunter2@127.0.0.1:1/"
    assert cli.main(["audit", "--repo", repo, "--db-url", "sqlite://"]) == 2
    out, err = capsys.readouterr()
    assert "cannot read" in err and "gate:***@" in err
    assert "hunter2" not in out + err
