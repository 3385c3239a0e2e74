"""Chain-of-thought memorization capacity (Yu, Gao, Zhang, NeurIPS 2025).

* ``config``: :class:`~rotelab.capacity.cot.config.CotConfig` and its check (no torch);
* ``data``: reasoning datasets and the memorisation-condition checker;
* ``model``: tiny fixed-precision transformers and their memorisation training;
* ``experiment``: the P*(N) sweep and the condition-separating families;
* ``figures``: its plots.
"""
