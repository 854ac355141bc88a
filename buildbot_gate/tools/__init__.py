"""Offline tools over a master's database: the landing audit, patch costs, the recorded
history and the policy replay. Nothing here runs in the master's reactor.
"""
