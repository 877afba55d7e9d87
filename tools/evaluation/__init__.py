"""Helpers of ``tools.evaluate``: manifest writing, device-path inference, reports, baselines."""
