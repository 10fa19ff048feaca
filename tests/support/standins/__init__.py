"""Local stand-ins of the service's upstreams (Anthropic, LangSmith, Seqera Platform): real HTTP servers
on 127.0.0.1 that run in their own thread. See each module's docstring for its scripting API."""
from ._server import Recorded, StandIn, free_port

__all__ = ["Recorded", "StandIn", "free_port"]
