#!/usr/bin/env python3
"""Generate the agent-backend chart's values.yaml, values.schema.json and README.md, the table of
Kubernetes integer and boolean fields its templates give their type after tpl, the Artifact Hub
annotations at the end of its Chart.yaml, and its copy of CHANGELOG.md.

The one source is schema/values.schema.yaml (a draft-07 JSON Schema in YAML with descriptions,
defaults and `x-` annotations); the README prose comes from schema/chart-readme.md.tpl and the
chart metadata from charts/agent-backend/Chart.yaml (hand-written above its GENERATED line).
templates/_k8s-types.tpl comes from the Kubernetes schemas bundled with kubernetes-validate
(ci/requirements.txt pins it). The repository's CHANGELOG.md is the one changelog: the chart carries a
copy (so `helm package` ships it) and `artifacthub.io/changes` lists its current section.

    python schema/generate.py           # write the generated files
    python schema/generate.py --check   # exit 1 with a diff when any of them is stale
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "schema" / "values.schema.yaml"
README_TEMPLATE = ROOT / "schema" / "chart-readme.md.tpl"
CHANGELOG = ROOT / "CHANGELOG.md"
CHART = ROOT / "charts" / "agent-backend"
OUTPUTS = {
    "values": CHART / "values.yaml",
    "schema": CHART / "values.schema.json",
    "readme": CHART / "README.md",
    "k8sTypes": CHART / "templates" / "_k8s-types.tpl",
    "chart": CHART / "Chart.yaml",
    "changelog": CHART / "CHANGELOG.md",
}
WIDTH = 100
ANNOTATION = re.compile(r"^x-")
MISSING = object()
README_TYPES = {"integer": "int", "string": "string", "boolean": "bool", "array": "list",
                "object": "object", "number": "float"}


class SourceError(Exception):
    """The annotated source breaks one of the rules in its header."""


# ---------------------------------------------------------------------------------------------
# Reading and checking the source

def load_source() -> dict:
    with SOURCE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def is_structured(node: dict) -> bool:
    """An object whose children are documented and defaulted one by one."""
    return "properties" in node and not node.get("x-doc-leaf")


def check_source(node: dict, path: str = "") -> list[str]:
    """Return every rule violation under `node` (the root or a property schema)."""
    errors = []
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if path and not node.get("description"):
        errors.append(f"{path}: no description")
    if path and node.get("type") is None and "oneOf" not in node:
        errors.append(f"{path}: no type")
    if "object" in types and "additionalProperties" not in node:
        errors.append(f"{path or '<root>'}: object without additionalProperties")
    if "default" in node and is_structured(node):
        errors.append(f"{path}: structured object carries a default (put defaults on its leaves)")
    if node.get("x-doc-leaf") and "default" not in node:
        errors.append(f"{path}: x-doc-leaf object without a default")
    for key, child in node.get("properties", {}).items():
        errors.extend(check_source(child, f"{path}.{key}" if path else key))
    items = node.get("items")
    if isinstance(items, dict):
        item_types = items.get("type")
        item_types = item_types if isinstance(item_types, list) else [item_types]
        if "object" in item_types and "additionalProperties" not in items:
            errors.append(f"{path}[]: object items without additionalProperties")
        for key, child in items.get("properties", {}).items():
            errors.extend(check_source(child, f"{path}[].{key}"))
    return errors


def default_of(node: dict):
    """The default value a property contributes to values.yaml, or MISSING."""
    if "default" in node:
        return node["default"]
    if is_structured(node):
        out = {}
        for key, child in node["properties"].items():
            value = default_of(child)
            if value is not MISSING:
                out[key] = value
        return out if out else MISSING
    return MISSING


# ---------------------------------------------------------------------------------------------
# values.schema.json

def strip_annotations(node):
    """Copy of a schema node without `x-` annotation keywords (property names are kept)."""
    if isinstance(node, list):
        return [strip_annotations(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if ANNOTATION.match(key):
            continue
        if key == "properties":
            out[key] = {name: strip_annotations(child) for name, child in value.items()}
        else:
            out[key] = strip_annotations(value)
    return out


def require_defaults(source: dict, schema: dict) -> dict:
    """`schema` (the stripped copy of `source`) with every property that has a non-null default in
    values.yaml listed in its object's `required`, recursively. Helm deletes a key set to null (or
    `--set key=null`) before validating, so this is what refuses `podSecurityContext: null`."""
    if is_structured(source):
        names = [key for key, child in source["properties"].items()
                 if default_of(child) not in (MISSING, None)]
        if names:
            schema["required"] = list(dict.fromkeys([*schema.get("required", []), *names]))
        for key, child in source["properties"].items():
            require_defaults(child, schema["properties"][key])
    return schema


def render_schema(source: dict) -> str:
    schema = require_defaults(source, strip_annotations(source))
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# values.yaml

class _IndentedDumper(yaml.SafeDumper):
    """Indent block sequences under their key (`key:\\n  - item`)."""

    def increase_indent(self, flow=False, indentless=False):  # noqa: D401 - PyYAML hook
        return super().increase_indent(flow, False)


def _dump_block(value, indent: int) -> list[str]:
    text = yaml.dump(value, Dumper=_IndentedDumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=WIDTH)
    return [" " * indent + line for line in text.splitlines()]


def _scalar(value) -> str:
    text = yaml.dump(value, Dumper=yaml.SafeDumper, default_flow_style=True, width=1000,
                     allow_unicode=True).strip()
    return text[:-4].rstrip() if text.endswith("\n...") or text.endswith(" ...") else text


def _comment(text: str, indent: int, first_prefix: str) -> list[str]:
    pad = " " * indent
    wrapped = textwrap.wrap(" ".join(text.split()), width=WIDTH - indent - len(first_prefix) - 2,
                            break_long_words=False, break_on_hyphens=False)
    lines = []
    for i, part in enumerate(wrapped):
        lines.append(f"{pad}# {first_prefix if i == 0 else ''}{part}".rstrip())
    return lines


def _emit_properties(props: dict, indent: int, out: list[str]) -> None:
    pad = " " * indent
    first = True
    for key, node in props.items():
        value = default_of(node)
        if value is MISSING:
            continue
        if indent == 0 and not first:
            out.append("")
        first = False
        if node.get("x-section"):
            out.extend(_comment(node["x-section"], indent, ""))
        out.extend(_comment(node["description"], indent, "-- "))
        for note in node.get("x-notes", []):
            out.append(f"{pad}# {note}".rstrip())
        if is_structured(node):
            out.append(f"{pad}{key}:")
            _emit_properties(node["properties"], indent + 2, out)
        elif isinstance(value, (dict, list)) and value:
            out.append(f"{pad}{key}:")
            out.extend(_dump_block(value, indent + 2))
        else:
            out.append(f"{pad}{key}: {_scalar(value)}")
        if node.get("x-example"):
            out.append(f"{pad}# Example:")
            out.extend(f"{pad}# {line}".rstrip() for line in node["x-example"].rstrip().splitlines())


def render_values(source: dict) -> str:
    out = [
        "# Default values for the agent-backend chart.",
        "# GENERATED by schema/generate.py from schema/values.schema.yaml: edit that file, then run",
        "# `make docs`. The full reference is in README.md; values.schema.json validates these keys.",
        "",
    ]
    _emit_properties(source["properties"], 0, out)
    text = "\n".join(out) + "\n"
    parsed = yaml.safe_load(text)
    if parsed != default_of(source):
        raise SourceError("generated values.yaml does not round-trip to the source's defaults")
    return text


# ---------------------------------------------------------------------------------------------
# README.md

def _readme_type(node: dict) -> str:
    if node.get("x-doc-type"):
        return node["x-doc-type"]
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    names = [README_TYPES.get(t, str(t)) for t in types if t != "null"]
    return names[0] if names else "string"


def _readme_default(value) -> str:
    if value is None:
        return "`nil`"
    return "`" + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "`"


def _readme_rows(props: dict, prefix: str, rows: list[str]) -> None:
    for key, node in props.items():
        path = f"{prefix}{key}"
        value = default_of(node)
        if value is MISSING:
            continue
        description = node["description"].replace("\n", " ").strip().replace("|", "\\|")
        row = f"| {path} | {_readme_type(node)} | {_readme_default(value)} | {description} |"
        if is_structured(node):
            if node.get("x-doc-row"):
                rows.append(row)
            _readme_rows(node["properties"], f"{path}.", rows)
        else:
            rows.append(row)


def render_readme(source: dict, chart: dict) -> str:
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    _readme_rows(source["properties"], "", rows)
    text = README_TEMPLATE.read_text(encoding="utf-8")
    replacements = {
        "name": chart["name"],
        "description": chart["description"],
        "version": chart["version"],
        "appVersion": str(chart["appVersion"]),
        "type": chart.get("type", "application"),
        "kubeVersion": chart.get("kubeVersion", ""),
        "imageRepository": default_of(source)["image"]["repository"],
        "valuesTable": "\n".join(rows),
    }

    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in replacements:
            raise SourceError(f"{README_TEMPLATE.name}: unknown placeholder {{{{ {key} }}}}")
        return replacements[key]

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", substitute, text)


# ---------------------------------------------------------------------------------------------
# templates/_k8s-types.tpl

K8S_VERSION = "1.34.0"  # tests/support/helm.py's KUBE_VERSION
# The Kubernetes type of each values section that is a Kubernetes object, or a list of them, and is
# evaluated as a template (the templates pass these names to agent-backend.tpl.typed).
K8S_SECTION_TYPES = ("io.k8s.api.apps.v1.DeploymentSpec", "io.k8s.api.core.v1.PodSpec",
                     "io.k8s.api.core.v1.ServiceSpec", "io.k8s.api.networking.v1.IngressBackend",
                     "io.k8s.api.core.v1.Container", "io.k8s.api.core.v1.Volume",
                     "io.k8s.api.core.v1.VolumeMount", "io.k8s.api.networking.v1.NetworkPolicyEgressRule")
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def k8s_field_kinds() -> dict[str, dict[str, str]]:
    """{type: {field: kind}} for K8S_SECTION_TYPES and the types they reach, keeping only fields that
    lead to an integer or boolean. A kind is "int", "bool", "intstr" (IntOrString), another type's
    short name, "[]<kind>" (a list) or "{}<kind>" (a map's values)."""
    import kubernetes_validate  # ci/requirements.txt; imported here so the rest needs only PyYAML

    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    defs = json.loads((schemas / f"v{K8S_VERSION}-local-strict" / "_definitions.json")
                      .read_text(encoding="utf-8"))["$defs"]
    fields_of: dict[str, dict[str, str]] = {}

    def kind_of(node: dict):
        ref = node.get("$ref", "").rsplit("/", 1)[-1]
        if ref == INT_OR_STRING:
            return "intstr"
        if ref:
            return ref.rsplit(".", 1)[1] if walk(ref) else None
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "integer" in types:
            return "int"
        if "boolean" in types:
            return "bool"
        for container, prefix in (("items", "[]"), ("additionalProperties", "{}")):
            if isinstance(node.get(container), dict):
                inner = kind_of(node[container])
                return prefix + inner if inner else None
        return None

    def walk(name: str) -> dict[str, str]:
        if name not in fields_of:
            fields_of[name] = {}  # a type that refers to itself adds nothing through itself
            found = {field: kind for field, sub in sorted(defs[name].get("properties", {}).items())
                     if (kind := kind_of(sub))}
            fields_of[name] = found
        return fields_of[name]

    for root in K8S_SECTION_TYPES:
        walk(root)
    table: dict[str, dict[str, str]] = {}
    for name, found in sorted(fields_of.items()):
        if not found:
            continue
        short = name.rsplit(".", 1)[1]
        if short in table:
            raise SourceError(f"two Kubernetes types are both called {short}; the table needs another name")
        table[short] = found
    return table


def render_k8s_types() -> str:
    lines = [
        "{{/* GENERATED by schema/generate.py from the Kubernetes " + K8S_VERSION + " schemas (kubernetes-validate):",
        "     do not edit. The fields of the Kubernetes types of the chart's templated sections that are",
        "     integer, boolean or int-or-string, directly or below. */}}",
        "",
        "{{/* agent-backend.k8s.types: takes nothing; returns JSON {type: {field: kind}}, kind one of int, bool,"
        " intstr, a type, []kind (list), {}kind (map values). */}}",
        '{{- define "agent-backend.k8s.types" -}}',
        "{",
    ]
    table = k8s_field_kinds()
    for i, (name, found) in enumerate(table.items()):
        comma = "," if i < len(table) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(found, separators=(',', ':'))}{comma}")
    lines += ["}", "{{- end -}}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Chart.yaml's Artifact Hub annotations

# Everything above this line of Chart.yaml is hand-written; everything below it is generated.
CHART_MARKER = "  # GENERATED below by schema/generate.py (`make docs`), do not edit:"
# The images the chart's defaults pull: Artifact Hub name -> path of the image section in values.
CHART_IMAGES = {
    "agent-backend": ("image",),  # the app and its db-migration init container
    "wait-for-mysql": ("initContainerDependencies", "waitForMySQL", "image"),
}
# The default tag templates the generator can evaluate (as agent-backend.images.image does in helm).
APP_VERSION_TAGS = {"", "{{ .chart.AppVersion }}", "{{ .Chart.AppVersion }}"}
CHANGE_KINDS = {"Added": "added", "Changed": "changed", "Deprecated": "deprecated",
                "Removed": "removed", "Fixed": "fixed", "Security": "security"}


def default_images(source: dict, chart: dict) -> list[dict]:
    """[{name, image}] for each image the defaults render, in the chart's `[registry/]repository:tag[@digest]`."""
    values = default_of(source)
    images = []
    for name, path in CHART_IMAGES.items():
        image = values
        for part in path:
            image = image[part]
        registry = (values["global"].get("imageRegistry") or image.get("registry") or "").rstrip("/")
        tag = str(image.get("tag", ""))
        if tag in APP_VERSION_TAGS:
            tag = str(chart["appVersion"])
        elif "{{" in tag:
            raise SourceError(f"{'.'.join(path)}.tag: default {tag!r} is a template generate.py cannot "
                              "evaluate for artifacthub.io/images")
        ref = f"{registry}/{image['repository']}" if registry else image["repository"]
        ref += f":{tag}" + (f"@{image['digest']}" if image.get("digest") else "")
        images.append({"name": name, "image": ref})
    return images


def changelog_sections(text: str) -> list[tuple[str, list[dict]]]:
    """(heading, [{kind, description}]) for each `## ` section of a Keep a Changelog file, in order.

    An entry is a top-level `- ` item with its indented continuation lines, joined into one line."""
    sections: list[tuple[str, list[dict]]] = []
    kind = entry = None
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
            kind = entry = None
        elif line.startswith("### ") and sections:
            title = line[4:].strip()
            if title not in CHANGE_KINDS:
                raise SourceError(f"CHANGELOG.md: unknown heading {line!r} (Keep a Changelog: "
                                  f"{', '.join(CHANGE_KINDS)})")
            kind, entry = CHANGE_KINDS[title], None
        elif line.startswith("- ") and kind:
            entry = {"kind": kind, "description": line[2:].strip()}
            sections[-1][1].append(entry)
        elif line.startswith("  ") and line.strip() and entry:
            entry["description"] += " " + line.strip()
        else:
            entry = None
    for _, entries in sections:
        for e in entries:
            e["description"] = e["description"].replace("**BREAKING**", "BREAKING:")
    return sections


def current_changes(changelog: str, version: str) -> list[dict]:
    """The entries of `## [Unreleased]` when it has any, else those of `## [<version>]`."""
    sections = dict(changelog_sections(changelog))
    for heading, entries in sections.items():
        if heading.startswith("[Unreleased]") and entries:
            return entries
    for heading, entries in sections.items():
        if heading.startswith(f"[{version}]") and entries:
            return entries
    raise SourceError(f"CHANGELOG.md: no entries under [Unreleased] nor under [{version}]")


def _block(key: str, value: list) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=WIDTH - 4)
    return [f"  {key}: |"] + [f"    {line}".rstrip() for line in text.splitlines()]


def render_chart_yaml(source: dict, chart_text: str, changelog: str) -> str:
    head, marker, _ = chart_text.partition(CHART_MARKER + "\n")
    if not marker:
        raise SourceError(f"Chart.yaml: no line {CHART_MARKER!r} inside its annotations")
    chart = yaml.safe_load(head)
    images = default_images(source, chart)
    changes = current_changes(changelog, str(chart["version"]))
    lines = _block("artifacthub.io/images", images) + _block("artifacthub.io/changes", changes)
    text = head + marker + "\n".join(lines) + "\n"
    annotations = yaml.safe_load(text)["annotations"]
    if (yaml.safe_load(annotations["artifacthub.io/images"]) != images
            or yaml.safe_load(annotations["artifacthub.io/changes"]) != changes):
        raise SourceError("generated Chart.yaml annotations do not round-trip")
    return text


# ---------------------------------------------------------------------------------------------

def render_all() -> dict[str, str]:
    source = load_source()
    errors = check_source(source)
    if errors:
        raise SourceError("schema/values.schema.yaml breaks its rules:\n  " + "\n  ".join(errors))
    chart_text = (CHART / "Chart.yaml").read_text(encoding="utf-8")
    chart = yaml.safe_load(chart_text)
    changelog = CHANGELOG.read_text(encoding="utf-8")
    return {
        "values": render_values(source),
        "schema": render_schema(source),
        "readme": render_readme(source, chart),
        "k8sTypes": render_k8s_types(),
        "chart": render_chart_yaml(source, chart_text, changelog),
        "changelog": changelog,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 and print a diff when a generated file is stale")
    args = parser.parse_args(argv)
    try:
        rendered = render_all()
    except SourceError as exc:
        print(f"generate.py: {exc}", file=sys.stderr)
        return 2
    stale = 0
    for name, text in rendered.items():
        path = OUTPUTS[name]
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        rel = path.relative_to(ROOT)
        if args.check:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{rel} (committed)", tofile=f"{rel} (generated)"))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
    if stale:
        print(f"generate.py: {stale} generated file(s) are stale; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
