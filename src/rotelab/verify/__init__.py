"""Verify unlearning: one verdict (not removed / hidden / removed) from every attack that can bring
forgotten data back (issue 21).

    metrics.py  the pure math: truth ratio, Forget Quality, oracle distance, AUC p-values, Holm, recovery
    verdict.py  the rule that turns attack figures into a verdict
    attacks.py  the model-side attacks: per-channel round-to-nearest quantization, relearning
    api.py      verify(): validate, load, open the run folder, run every attack, build the report
"""
