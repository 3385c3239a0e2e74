"""rotelab: measure, locate and control memorization in neural networks."""

__version__ = "0.1.0"
