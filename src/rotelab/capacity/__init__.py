"""Capacity lab: how many parameters memorization costs.

* ``cot_data`` / ``cot_model`` / ``cot``: transformers with and without chain of thought
  (Yu, Gao, Zhang, NeurIPS 2025).
* ``robust_data`` / ``verify`` / ``robust_train`` / ``robust`` / ``bounds``: rho-robust
  memorization in ReLU nets (Kim, Moon, Yun, NeurIPS 2025).
* ``search``: smallest-parameter search and log-log slope fits shared by both.
"""
