"""Shared by the NeuralBeta assets."""

#: Asset group of the training, evaluation and daily inference of NeuralBeta.
GROUP = "neuralbeta"
