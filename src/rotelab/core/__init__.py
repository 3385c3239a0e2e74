"""The core every capability stands on: models, signals, generation, statistics, runs."""
