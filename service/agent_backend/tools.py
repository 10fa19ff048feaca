"""The local tools offered to Claude, exactly as Seqera CLI 1.12.0 executes them, and the prompt.

Every tool here runs on the user's machine: the model's call becomes an `execute-local` event, the
CLI runs it (with its own approval rules) and posts `{stdout, stderr, exit_code}` back.
`search_content_local` is not offered: CLI 1.12.0 answers "Unknown tool" to it, and its
`search_files_local` already searches file contents (ripgrep) with the same arguments.
"""
from __future__ import annotations

import json
from typing import Any

_PATH = {"type": "string", "description": "Path, absolute or relative to the session's working directory; ~ is expanded."}

LOCAL_TOOLS: list[dict[str, Any]] = [
    {
        "name": "execute_bash_local",
        "description": "Run a bash command on the user's machine in the session's working directory and "
                       "return its stdout, stderr and exit code.",
        "input_schema": {"type": "object", "properties": {
            "command": {"type": "string", "description": "The command line to run with /bin/bash."}},
            "required": ["command"]},
    },
    {
        "name": "read_file_local",
        "description": "Read a text file on the user's machine (optionally a line range). A file must be read "
                       "before write_file_local or edit_file_local may change it.",
        "input_schema": {"type": "object", "properties": {
            "path": _PATH,
            "start_line": {"type": "integer", "description": "First line to return (1-based)."},
            "end_line": {"type": "integer", "description": "Last line to return (inclusive)."}},
            "required": ["path"]},
    },
    {
        "name": "write_file_local",
        "description": "Create a file, or compactly rewrite an existing one that was read first, on the user's "
                       "machine. Returns a unified diff. Prefer edit_file_local for targeted changes. The "
                       "parent directory must already exist (this tool fails otherwise): create it first "
                       "with execute_bash_local, e.g. `mkdir -p <dir>`.",
        "input_schema": {"type": "object", "properties": {
            "path": _PATH, "content": {"type": "string", "description": "The complete new file content."}},
            "required": ["path", "content"]},
    },
    {
        "name": "edit_file_local",
        "description": "Replace one unique occurrence of old_str with new_str in a file on the user's machine "
                       "(the file must have been read first).",
        "input_schema": {"type": "object", "properties": {
            "path": _PATH,
            "old_str": {"type": "string", "description": "Exact text to replace; must occur once."},
            "new_str": {"type": "string", "description": "Replacement text."}},
            "required": ["path", "old_str", "new_str"]},
    },
    {
        "name": "list_directory_local",
        "description": "List a directory on the user's machine as a tree.",
        "input_schema": {"type": "object", "properties": {
            "path": _PATH,
            "show_hidden": {"type": "boolean", "description": "Include dot files."}}},
    },
    {
        "name": "search_files_local",
        "description": "Search file contents on the user's machine for a regular expression (ripgrep); "
                       "returns matching lines with file names and line numbers.",
        "input_schema": {"type": "object", "properties": {
            "pattern": {"type": "string", "description": "Regular expression to search for."},
            "path": _PATH,
            "recursive": {"type": "boolean", "description": "Descend into subdirectories (default true)."},
            "include_glob": {"type": "string", "description": "Only search files matching this glob, e.g. *.nf"},
            "max_results": {"type": "integer", "description": "At most this many matches (1-200)."}},
            "required": ["pattern"]},
    },
    {
        "name": "run_nextflow_lint_local",
        "description": "Run `nextflow lint` (strict syntax) in a directory on the user's machine.",
        "input_schema": {"type": "object", "properties": {"path": _PATH}},
    },
    {
        "name": "run_nf_core_lint_local",
        "description": "Run `nf-core pipelines lint` or `nf-core modules lint` in a directory on the user's machine.",
        "input_schema": {"type": "object", "properties": {
            "path": _PATH,
            "lint_scope": {"type": "string", "enum": ["pipelines", "modules"]}}},
    },
]

# Tools that change the user's machine or run programs: not offered in plan mode.
WRITING_TOOLS = frozenset({"execute_bash_local", "write_file_local", "edit_file_local",
                           "run_nextflow_lint_local", "run_nf_core_lint_local"})


def tools_for_mode(mode: str | None) -> list[dict[str, Any]]:
    if mode == "plan":
        return [t for t in LOCAL_TOOLS if t["name"] not in WRITING_TOOLS]
    return list(LOCAL_TOOLS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


def system_prompt(*, cwd: str, directory_context: Any, instruction_context: Any, mode: str | None,
                  local_execution: bool, platform_tools: bool = False, platform_problem: str | None = None) -> str:
    """`platform_tools`: Seqera MCP's tools are offered; `platform_problem`: why they are not, in one line."""
    parts = [
        "You are Seqera AI, an assistant for bioinformatics pipelines (Nextflow, nf-core) and the Seqera "
        "Platform, talking to a user through the Seqera CLI.",
        f"The user's working directory is {cwd or '(unknown)'}. Tools ending in _local run on the user's "
        "machine, relative to that directory; use them to inspect and change files rather than guessing.",
        "Answer concisely in Markdown.",
    ]
    if mode == "plan":
        parts.append("Plan mode: you may only read and search. Do not try to run commands or change files; "
                     "produce a plan instead.")
    if platform_tools:
        parts.append("Tools named mcp__seqera__* run on the user's own Seqera Platform, with their access: use "
                     "them to look up their workspaces, pipelines, runs, compute environments and datasets "
                     "rather than guessing.")
    elif platform_problem:
        parts.append(f"The Seqera Platform tools are unavailable for this turn ({platform_problem}); if the user "
                     "asks about their Platform, say so.")
    if not local_execution:
        parts.append("Local execution is disabled for this session: do not call any "
                     f"{'_local ' if platform_tools else ''}tools.")
    if directory_context:
        ctx = directory_context if isinstance(directory_context, str) else json.dumps(directory_context, indent=1)
        parts.append("<directory_context>\n" + _clip(ctx, 20_000) + "\n</directory_context>")
    if instruction_context:
        ctx = instruction_context if isinstance(instruction_context, str) else json.dumps(instruction_context)
        parts.append("<project_instructions>\n" + _clip(ctx, 10_000) + "\n</project_instructions>")
    return "\n\n".join(parts)


def tool_result_text(result: dict) -> str:
    """What the model sees for a local tool's `{stdout, stderr, exit_code}` result."""
    stdout = str(result.get("stdout") or "")
    stderr = str(result.get("stderr") or "")
    code = result.get("exit_code")
    if (code == 0 or code is None) and not stderr:
        return _clip(stdout, 60_000) if stdout else "(no output)"
    out = []
    if stdout:
        out.append(_clip(stdout, 60_000))
    if stderr:
        out.append("[stderr]\n" + _clip(stderr, 20_000))
    out.append(f"[exit code {code}]")
    return "\n".join(out)
