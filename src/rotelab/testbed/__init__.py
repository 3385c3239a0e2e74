"""The testbed: small language models whose training data, duplication and unlearning are known."""
