"""The bottom layer every other part shares: how Kubernetes objects are named in the
graph (:mod:`.objects`: kinds, labels, relationship types, ids) and how the
timestamps of Kubernetes, Alertmanager and log shippers are read (:mod:`.timeparse`).

It imports nothing of kgcelery but :mod:`kgcelery.errors`, so the normalizers, the
graph writers, the bridge and the demo can all use it without depending on each other
(the import-linter contract in pyproject.toml holds it there).
"""
