"""rho-robust memorization in ReLU nets (Kim, Moon, Yun, NeurIPS 2025).

* ``config``: :class:`~rotelab.capacity.robust.config.RobustConfig` and its check (no torch);
* ``data``: point sets with a controlled separation eps_D;
* ``verify``: IBP certification, PGD falsification, a construction that memorises by design;
* ``train``: IBP / PGD training of one MLP;
* ``bounds``: Thm 3.1's lower bound and the upper-bound regimes;
* ``experiment``: the rho sweep of the smallest certified MLP;
* ``figures``: its plots.
"""
