"""Everything that talks to Rietveld: the client and its records, the intake rules, the
``RietveldPoller`` change source (``poller.py``) and the ``RietveldReporter`` (``reporter.py``).
"""
