"""kgcelery: Kubernetes telemetry from many clusters into one knowledge graph per client."""

__version__ = "0.1.0"
