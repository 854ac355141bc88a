"""Decision messages: what an older master announced and its reporter stored still reads the same.

``data/messages_before_records.json`` was written by the code of commit d3630e8 (messages as
dicts) running ``data/make_messages_before_records.py.txt``: its announcements, the comment its
reporter wrote for each, and an outbox it saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate import protocol
from buildbot_gate.props import DecisionMessage
from buildbot_gate.rietveld.outbox import Outbox
from buildbot_gate.rietveld.outbox import message_key
from buildbot_gate.rietveld.reporter import comment_text

SAVED = Path(__file__).parent / "data" / "messages_before_records.json"


def saved() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAVED.read_text())
    return data


def test_an_older_masters_messages_make_the_same_comments() -> None:
    data = saved()
    messages = [DecisionMessage.from_json(m) for m in data["messages"]]
    assert [m.decision for m in messages] == [
        "landed",
        "ejected",
        "requeued",
        "refused",
        "quarantined",
    ]
    assert [comment_text(m) for m in messages] == data["comments"]
    assert [message_key(m) for m in messages] == [m["id"] for m in data["messages"]]


def test_a_message_reads_back_as_it_was_sent() -> None:
    for sent in saved()["messages"]:
        message = DecisionMessage.from_json(sent)
        assert DecisionMessage.from_json(json.loads(json.dumps(message.to_json()))) == message
        # The same keys on the wire as before, so a reporter not yet upgraded reads it too.
        assert {k: v for k, v in message.to_json().items() if k in sent} == sent


def test_an_outbox_saved_before_still_owes_and_remembers_its_comments() -> None:
    data = saved()
    box = Outbox.from_json(data["outbox"])
    (owed,) = box.pending
    assert (owed.issue, owed.text, owed.attempts, owed.error) == (
        1234,
        data["comments"][0],
        1,
        "503",
    )
    assert box.knows(data["messages"][0]["id"]) and box.knows(data["messages"][1]["id"])
    assert box.to_json() == data["outbox"]


class AnnounceTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantMq=True)

    def test_an_announcement_names_its_master_and_gets_an_identity(self) -> None:
        protocol.announce(self.master, DecisionMessage("refused", issue=7, detail="no"))
        ((key, sent),) = self.master.mq.productions
        self.assertEqual(key, ("gate", "decisions", "refused"))
        message = DecisionMessage.from_json(sent)
        self.assertEqual((message.issue, message.detail), (7, "no"))
        self.assertEqual(message.masterid, self.master.masterid)
        self.assertTrue(message.id)
