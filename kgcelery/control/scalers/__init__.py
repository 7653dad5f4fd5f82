"""Scaler backends: how the reconciler makes actual workers = desired workers."""
