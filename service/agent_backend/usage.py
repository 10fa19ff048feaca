"""Token usage: what a model call reports, what a run adds up, what MySQL stores and `/credits` shows."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable


@dataclasses.dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Usage":
        """From a row of the four counts in field order (NULLs and MySQL's DECIMAL sums as ints)."""
        return cls(*(int(v or 0) for v in values))

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def stream_part(self) -> dict[str, int]:
        """The `usage` of a stream's `finish` part, in the AI SDK's words."""
        return {"promptTokens": self.input_tokens, "completionTokens": self.output_tokens,
                "totalTokens": self.total}


FIELDS = tuple(f.name for f in dataclasses.fields(Usage))
