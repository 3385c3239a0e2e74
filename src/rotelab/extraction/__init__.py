"""Verbatim extraction: prefix prompting, k-extractability, book reconstruction."""
