"""Shared by the baseline assets."""

GROUP = "baselines"
