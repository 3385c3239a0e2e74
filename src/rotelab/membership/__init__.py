"""Membership inference and REMIND.

    api.py        mia(): validate, load, open the run folder, run the suite (``rotelab mia run``)
    attacks/      one module per attack (or family), each registered by its decorator
    context.py    what an attack sees: signals, config, resources, checkpointed passes
    passes.py     extra model passes in length-sorted batches, saved per batch in the run folder
    perturb.py    embedding-neighbour token swaps (the Neighbourhood attack and REMIND)
    suite.py      scores, metrics, ROC figure
    bow.py        the bag-of-words distribution-shift check
    remind/       REMIND: residual memorization after unlearning, from input loss landscapes
"""
