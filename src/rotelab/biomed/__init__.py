"""Term-to-identifier normalization: when fine-tuning teaches and when it only memorizes
(``rotelab biomed``; entry points in :mod:`rotelab.biomed.api`)."""
