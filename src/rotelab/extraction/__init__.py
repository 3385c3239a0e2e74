"""Verbatim extraction: prefix prompting along books and training samples (k-extractability, EM,
ES, regurgitation), the books experiment (``books/``), and where a fine-tune changed the weights.
The Python entry points are in :mod:`rotelab.extraction.api`."""
