"""seqera_mcp's pure parts: the names the model sees, the tools it is offered, what it reads of a result,
and the one line that says why MCP failed."""
from __future__ import annotations

import httpx2
from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations

from agent_backend.seqera_mcp import MAX_NAME, describe, model_name, result_text, tools_from_listing

NAME = r"^[a-zA-Z0-9_-]{1,64}$"


def test_names_get_the_prefix_the_tui_titles_and_anthropics_alphabet():
    import re
    assert model_name("platform_list_workflows") == "mcp__seqera__platform_list_workflows"
    assert model_name("wave.get container/v2") == "mcp__seqera__wave_get_container_v2"
    long = model_name("x" * 200)
    assert len(long) == MAX_NAME and re.match(NAME, long)


def test_tools_keep_their_schema_and_read_only_hint_and_drop_a_colliding_name():
    listed = [Tool(name="list.runs", description="List runs", inputSchema={"type": "object", "properties": {}},
                   annotations=ToolAnnotations(readOnlyHint=True)),
              Tool(name="list_runs", description="A second tool whose name collides", inputSchema={"type": "object"}),
              Tool(name="launch", inputSchema={"type": "object"})]
    tools = tools_from_listing(listed)
    assert [(t.name, t.remote, t.read_only) for t in tools] == [("mcp__seqera__list_runs", "list.runs", True),
                                                                ("mcp__seqera__launch", "launch", False)]
    assert tools[0].spec() == {"name": "mcp__seqera__list_runs", "description": "List runs",
                               "input_schema": {"type": "object", "properties": {}}}
    assert tools[1].description == "launch"  # no description: its name


def test_a_result_is_its_text_else_its_structured_content():
    text = CallToolResult(content=[TextContent(type="text", text="a"), TextContent(type="text", text="b")])
    assert result_text(text) == "a\nb"
    structured = CallToolResult(content=[], structuredContent={"runs": ["r1"]})
    assert result_text(structured) == '{"runs": ["r1"]}'
    assert result_text(CallToolResult(content=[])) == "(no output)"


def test_a_failure_is_one_line_that_names_the_cause():
    group = BaseExceptionGroup("tg", [httpx2.ConnectError("refused")])
    assert describe(group, None) == "Seqera MCP is unreachable"
    assert describe(Exception("x"), 401) == "Seqera MCP rejected the access token (HTTP 401)"
    assert describe(Exception("x"), 503) == "Seqera MCP answered HTTP 503"
    assert describe(TimeoutError(), None, 5.0) == "Seqera MCP did not answer within 5 s"
    assert describe(ValueError("odd\nserver text"), None) == "Seqera MCP failed (ValueError)"
