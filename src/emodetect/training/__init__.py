"""Training utilities: datasets from class folders, network builders, training, evaluation and plots.

Importing this package imports TensorFlow.
"""
