"""Inspection: ``rotelab signals``, a model's per-token signals over a set of texts, coloured token by token.

The signal engine itself is :mod:`rotelab.core.signals`; this capability shows it to a user.
"""
