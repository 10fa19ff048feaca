"""The one JSON encoding (codec.py): the fast encoder of delta parts writes exactly what dumps() writes."""
from __future__ import annotations

import json

import pytest

from agent_backend.codec import dumps, dumps_delta

SAMPLES = ["", "plain", 'quote " and \\ backslash', "tab\tnew\nline\rcr\b\f", "\x00\x01\x1f\x7f",
           "é ü 中文 🎉", "\u2028\u2029\ufeff\uffff", "".join(map(chr, range(0x20))), "</script>"]


@pytest.mark.parametrize("kind", ["text-delta", "reasoning"])
def test_should_encode_a_delta_part_as_dumps_does(kind):
    # every code point below U+0800 alone, then the samples: the first difference, if any, is reported
    deltas = [chr(cp) for cp in range(0x800)] + SAMPLES + [chr(cp) for cp in (0xE000, 0x10000, 0x1F600, 0x10FFFF)]
    differ = [(d, dumps_delta(kind, d)) for d in deltas if dumps_delta(kind, d) != dumps({"type": kind, "delta": d})]
    assert differ == []


def test_should_hand_a_lone_surrogate_to_dumps():
    assert dumps_delta("text-delta", "a\ud800b") == dumps({"type": "text-delta", "delta": "a\ud800b"})


def test_should_round_trip():
    assert json.loads(dumps_delta("text-delta", SAMPLES[3])) == {"type": "text-delta", "delta": SAMPLES[3]}
