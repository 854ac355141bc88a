"""Force-build forms for the gate ("Recheck issue", "Merge now", "Resume branch") that record a
gate request as a change, exactly as the matching Rietveld comment does."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.schedulers.forcesched import CodebaseParameter
from buildbot.schedulers.forcesched import CollectedValidationError
from buildbot.schedulers.forcesched import ForceScheduler
from buildbot.schedulers.forcesched import IntParameter
from buildbot.schedulers.forcesched import StringParameter
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate import protocol
from buildbot_gate import signing
from buildbot_gate.props import Prop

if TYPE_CHECKING:
    from collections.abc import Sequence

log = Logger()

ACTIONS = {
    "recheck": (protocol.RECHECK, "Recheck issue", "Recheck"),
    "merge-now": (protocol.MERGE_NOW, "Merge now (release managers)", "Merge now"),
    "resume-branch": (protocol.RESUME_BRANCH, "Resume a held branch", "Resume"),
}


class GateForceScheduler(ForceScheduler):
    """A web form that asks the gate to recheck, or to merge now, one Rietveld issue."""

    compare_attrs: ClassVar[Sequence[str]] = (
        *ForceScheduler.compare_attrs,
        "action",
        "releaseManagers",
    )

    def __init__(self, name: str, builderNames: Sequence[str], **kwargs: Any) -> None:
        super().__init__(name=name, builderNames=builderNames, **kwargs)

    @staticmethod
    def _form(action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        _, label, button = ACTIONS.get(action, ACTIONS["recheck"])
        kwargs.setdefault("label", label)
        kwargs.setdefault("buttonName", button)
        kwargs.setdefault("codebases", [CodebaseParameter(codebase="", hide=True)])
        kwargs.setdefault(
            "reason", StringParameter(name="reason", label="Why (optional)", default="")
        )
        if action == "resume-branch":
            asked = StringParameter(name="branch", label="Branch to resume", required=True)
        else:
            asked = IntParameter(name="issue", label="Rietveld issue number", required=True)
        kwargs.setdefault("properties", [asked])
        return kwargs

    def checkConfig(  # type: ignore[override]
        self,
        builderNames: Sequence[str],
        action: str = "recheck",
        releaseManagers: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        if action not in ACTIONS:
            config.error(f"GateForceScheduler: action is one of {sorted(ACTIONS)}, not {action!r}")
        if action == "merge-now" and not releaseManagers:
            config.error("GateForceScheduler: a merge-now form needs releaseManagers")
        super().checkConfig(builderNames=builderNames, **self._form(action, kwargs))

    def reconfigService(  # type: ignore[override]
        self,
        builderNames: Sequence[str],
        action: str = "recheck",
        releaseManagers: Sequence[str] = (),
        **kwargs: Any,
    ) -> Any:
        self.action = action
        self.releaseManagers = [r.lower() for r in releaseManagers]
        return super().reconfigService(builderNames=builderNames, **self._form(action, kwargs))

    @defer.inlineCallbacks
    def force(  # type: ignore[override]
        self, owner: str | None, builderNames: Any = None, builderid: Any = None, **kwargs: Any
    ) -> Any:
        who = (owner or "anonymous").strip()
        if self.action == "resume-branch":
            yield self._resume(who, validate_branch(kwargs.get("branch")))
            return (None, {})
        issue = validate_issue(kwargs.get("issue"))
        if self.action == "merge-now" and who.lower() not in self.releaseManagers:
            raise CollectedValidationError(
                {"issue": f"only the release managers may merge now; you are {who!r}"}
            )
        category = ACTIONS[self.action][0]
        log.info(
            "web form {name}: {what} issue {n} by {who}",
            name=self.name,
            what=self.action,
            n=issue,
            who=who,
        )
        comments = f"{self.action} of issue {issue} from the web UI"
        props = {Prop.ISSUE: issue, Prop.REQUESTER: who, Prop.VIA: "web"}
        yield defer.ensureDeferred(self._record(who, category, None, comments, props))
        return (None, {})

    def _resume(self, who: str, branch: str) -> Any:
        log.info("web form {name}: resume branch {b} by {who}", name=self.name, b=branch, who=who)
        comments = f"resume branch {branch} from the web UI"
        props = {Prop.REQUESTER: who, Prop.VIA: "web"}
        return defer.ensureDeferred(
            self._record(who, protocol.RESUME_BRANCH, branch, comments, props)
        )

    async def _record(
        self, who: str, category: str, branch: str | None, comments: str, props: dict[str, Any]
    ) -> None:
        """Record the request as a change, signed like the poller's: GateScheduler ignores gate
        changes it cannot verify."""
        signed = await signing.sign(
            self.master,
            "web",
            category=category,
            branch=branch,
            author=who,
            comments=comments,
            props=props,
        )
        await self.master.data.updates.addChange(
            author=who,
            revision=None,
            comments=comments,
            category=category,
            repository="",
            project="",
            branch=branch,
            properties=signed,
            src=None,  # a form's requester is nobody's commit author: no Buildbot user made
            codebase="",
        )


def validate_branch(value: Any) -> str:
    """The branch name typed into a form, or a validation error the form shows to the user."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value if value is not None else "").strip()
    if not text or any(c.isspace() for c in text):
        raise CollectedValidationError({"branch": f"not a branch name: {text!r}"})
    return text


def validate_issue(value: Any) -> int:
    """The issue number typed into a form, or a validation error the form shows to the user."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or int(text) <= 0:
        raise CollectedValidationError({"issue": f"not a Rietveld issue number: {text!r}"})
    return int(text)
