"""agent-backend: the Seqera CLI AI backend service."""
from importlib.metadata import version

# The one version source is pyproject.toml, read back from the installed package's metadata (the image
# and `make setup` both install it); tests check the chart's appVersion and openapi.yaml against it.
__version__ = version("agent-backend")
