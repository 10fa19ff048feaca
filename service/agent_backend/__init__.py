"""agent-backend: the Seqera CLI AI backend service."""

__version__ = "0.1.0"
