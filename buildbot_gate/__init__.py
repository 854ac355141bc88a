"""buildbot-gate: a merge gate for Buildbot (Rietveld approvals become tested hg pushes)."""
