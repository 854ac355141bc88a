"""Signed gate changes: only the gate's own poller and web forms can approve or request anything.
Each carries an HMAC made with a per-cluster key kept in Buildbot's state table."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import weakref
from typing import TYPE_CHECKING
from typing import Any

import sqlalchemy as sa

from buildbot_gate.props import Prop

if TYPE_CHECKING:
    from collections.abc import Mapping

# Properties of a signed change: the MAC, a one-time nonce (a copy of a signed change read from
# the REST API and posted again is a replay), and which part of the gate signed it.
MAC = Prop.MAC
NONCE = Prop.NONCE
SOURCE = Prop.SIGNED_BY
SOURCES = frozenset({"rietveld", "web"})

# Where the key lives: one object shared by every master of a cluster through the database.
_KEY_OBJECT = ("buildbot_gate", "GateSigningKey")
_KEY_NAME = "hmac_key"
_HEX = re.compile(r"^[0-9a-f]{32}$")
_keys: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


async def _key(master: Any) -> bytes:
    """The cluster's key: made by whichever master first needs it, then read by all."""
    key = _keys.get(master)
    if key is None:
        objectid = await master.db.state.getObjectId(*_KEY_OBJECT)
        value = await master.db.state.atomicCreateState(
            objectid, _KEY_NAME, lambda: secrets.token_hex(32)
        )
        key = _keys[master] = str(value).encode("ascii")
    return key


def _message(
    category: str | None,
    branch: str | None,
    author: str | None,
    comments: str | None,
    props: Mapping[str, Any],
) -> bytes:
    """Everything the scheduler and the launcher act on, in one canonical form."""
    signed = {k: v for k, v in props.items() if k.startswith(Prop.PREFIX) and k != MAC}
    if Prop.DIFF in signed:
        signed[Prop.DIFF] = hashlib.sha256(str(signed[Prop.DIFF]).encode()).hexdigest()
    whole = {
        "category": category,
        "branch": branch,
        "author": author,
        "comments": comments,
        "props": signed,
    }
    return json.dumps(whole, sort_keys=True, ensure_ascii=True).encode("ascii")


async def sign(
    master: Any,
    source: str,
    *,
    category: str,
    branch: str | None,
    author: str,
    comments: str,
    props: Mapping[str, Any],
) -> dict[str, Any]:
    """``props`` plus the source, a fresh nonce and the MAC over the change to be added."""
    signed = {**props, SOURCE: source, NONCE: secrets.token_hex(16)}
    mac = hmac.new(
        await _key(master), _message(category, branch, author, comments, signed), hashlib.sha256
    )
    return {**signed, MAC: mac.hexdigest()}


async def rejection(master: Any, change: Any) -> str | None:
    """Why ``change`` (a gate category) is not the gate's own, or None when it verifies."""
    props = {k: v for k, (v, _) in change.properties.asDict().items()}
    if props.get(SOURCE) not in SOURCES or change.codebase:
        return "not from this gate's poller or forms"
    mac, nonce = props.get(MAC), props.get(NONCE)
    if not isinstance(mac, str) or not isinstance(nonce, str) or not _HEX.match(nonce):
        return "not signed"
    expected = hmac.new(
        await _key(master),
        _message(change.category, change.branch, change.who, change.comments, props),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return "its signature does not match"
    if change.number is not None and await _seen_before(master, nonce, change.number):
        return "a copy of an earlier change"
    return None


async def _seen_before(master: Any, nonce: str, changeid: int) -> bool:
    def thd(conn: Any) -> bool:
        tbl = master.db.model.change_properties
        query = (
            sa.select(tbl.c.changeid)
            .where(tbl.c.property_name == NONCE)
            .where(tbl.c.property_value.like(f'%"{nonce}"%'))  # the nonce is 32 hex digits
            .where(tbl.c.changeid < changeid)
            .limit(1)
        )
        return conn.execute(query).first() is not None

    return bool(await master.db.pool.do(thd))
