"""Scaler backends: how the reconciler makes actual workers = desired workers.

Every backend implements :class:`kgcelery.control.scalers.base.Scaler`; one module
each: ``local`` (worker subprocesses), ``fleet`` (Celery remote control on a shared
fleet), ``k8s`` (a Deployment or KEDA ScaledObject per client).
"""
