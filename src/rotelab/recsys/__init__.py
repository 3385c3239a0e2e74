"""Recommendation over lifelong user histories at fixed serving cost (VISTA, Chen et al. 2025).

Modules, in dependency order:

- ``config``   the configurations of ``recsys synth|train|bench`` and their checks (no numpy/torch);
- ``events``   loaders for MovieLens (ML-1M ``ratings.dat``, ML-20M ``ratings.csv``) and KuaiRand
               logs into a compact, memory-mapped per-user event store;
- ``synth``    seeded synthetic lifelong users with planted long-range interests, written in
               those same file formats;
- ``qla``      quasi-linear attention (running sums) and its O(N^2) masked reference;
- ``models``   full target attention, recent-only and VISTA, sharing one scorer and its heads;
- ``cache``    the summary store (SQLite, int8 + per-row scale, staleness timestamps);
- ``serve``    models as safetensors + JSON config; one request (cold users from the recent window);
- ``train``    one training loop and the evaluation (HR@10, NDCG@10, AUC);
- ``pipeline`` / ``bench``  the resumable run-folder stages; serving cost and the cache ablations;
- ``api``      the Python entry points of the commands (``synth``, ``train``, ``bench``).
"""
