"""``hg qpost``: a Mercurial extension that posts draft changesets for review on Rietveld;
``buildbot-gate qpost-path`` prints the hgrc line that enables it."""
