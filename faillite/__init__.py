"""faillite: failure-resilient model serving for resource-constrained edge clusters."""

__version__ = "0.1.0"

__all__ = ["__version__"]
