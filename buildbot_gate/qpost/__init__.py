"""``hg qpost``: a Mercurial extension that posts draft changesets for review on Rietveld.

Enabled with ``[extensions] qpost = <path of buildbot_gate/qpost/extension.py>``
(``buildbot-gate qpost-path`` prints the line); settings in the repository's ``.hgqpost``.
"""
