"""NeuralBeta (docs/methods.md): experiments, synthetic data, baselines, evaluation, figures."""
