"""Capacity lab: how many parameters memorization costs.

* ``cot/``: transformers with and without chain of thought (Yu, Gao, Zhang, NeurIPS 2025).
* ``robust/``: rho-robust memorization in ReLU nets (Kim, Moon, Yun, NeurIPS 2025).
* ``search``: smallest-parameter search and log-log slope fits shared by both.
* ``api``: the Python entry points of ``rotelab capacity cot|robust|bounds``.
"""
