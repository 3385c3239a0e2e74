"""Membership inference (attack suite, bag-of-words confound check) and REMIND (residual
memorization after unlearning, from input loss landscapes)."""
