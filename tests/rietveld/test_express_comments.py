"""What the review says about a merge-now: the express landing and the patches it spared."""

from __future__ import annotations

from buildbot_gate.props import DecisionMessage
from buildbot_gate.rietveld.reporter import comment_text


def text_of(msg: dict) -> str | None:
    """The comment for a decision as it arrives from the message queue."""
    return comment_text(DecisionMessage.from_json(msg))


NODE = "ab" * 20


def test_the_express_landing_says_which_patches_kept_their_results():
    text = text_of(
        {
            "decision": "landed",
            "patchset": 3,
            "branch": "default",
            "node": NODE,
            "express": True,
            "detail": "kept the test results of issue 101 (no file in common)",
        }
    )
    assert text.splitlines()[1] == (
        "Merged now, ahead of the queue: kept the test results of issue 101 (no file in common)."
    )


def test_a_patch_landed_over_an_express_one_says_so():
    landed = {"decision": "landed", "patchset": 1, "branch": "default", "node": NODE}
    text = text_of({**landed, "rebased_over": [7]})
    assert "Tested before the urgent issue 7 landed under it" in text
    plain = text_of(landed)
    assert "urgent" not in plain and "Merged now" not in plain


def test_the_merge_now_answer_says_what_happens_next():
    text = text_of(
        {"decision": "promoted", "patchset": 2, "detail": "tested now against the default tip"}
    )
    assert text == "Merge now: patchset 2 is tested now against the default tip."


def test_a_held_branch_tells_the_owner_why_the_patch_waits_without_a_password():
    text = text_of(
        {
            "decision": "held",
            "patchset": 2,
            "branch": "3.4",
            "detail": "push refused 3 times, last: abort: authorization failed at "
            "https://gate:hunter2@hg.example.org/",
        }
    )
    assert text is not None
    assert "refused the push of patchset 2 to 3.4" in text
    assert "resumes the branch" in text
    assert "hunter2" not in text and "gate:***@" in text


def test_a_landing_comment_never_shows_the_password_of_the_repository_url():
    text = text_of(
        {
            "decision": "landed",
            "patchset": 1,
            "branch": "default",
            "node": "a" * 40,
            "repourl": "https://gate:hunter2@hg.example.org/cpython",
        }
    )
    assert text is not None and "hunter2" not in text
    assert "https://gate:***@hg.example.org/cpython/rev/aaaaaaaaaaaa" in text


def test_a_known_failure_comment_names_the_entry_its_link_and_the_build():
    text = text_of(
        {
            "decision": "known_failure",
            "detail": "bpo-1234: test_network resets; rechecking (1 of 2)\nhttps://bugs/1234",
            "builds": [{"builder": "gate-test", "number": 3, "url": "http://b/3"}],
        }
    )
    assert text is not None
    assert text.startswith(
        "This failure matches known intermittent failure bpo-1234: test_network resets; "
        "rechecking (1 of 2)\nhttps://bugs/1234\nBuilds:\n  gate-test build 3 http://b/3"
    )
