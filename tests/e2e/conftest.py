from __future__ import annotations

import pytest

from buildbot_gate.testing.world import GateWorld


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("gate"))
    yield w
    try:
        w.assert_audited()  # nothing the gate pushed was untested
    finally:
        w.close()
