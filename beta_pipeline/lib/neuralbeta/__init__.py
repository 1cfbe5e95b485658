"""NeuralBeta (METHODS.md): experiments, synthetic data, baselines, evaluation, figures."""
