"""Batch evaluation: text metrics, the empathy classifiers (emotion, intent, EPITOME), the
metric suite writing the original's result files, and the test-split runner."""
