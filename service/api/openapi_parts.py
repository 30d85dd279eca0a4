"""Small builders for the OpenAPI document's parts, shared by its modules."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Schema]:
    text = {
        400: "Malformed or invalid input",
        401: "Missing or wrong credentials (WWW-Authenticate says which forms)",
        403: "Valid credentials without the permission (or for another app)",
        404: "No such resource",
        409: "Already exists",
        413: "Body too large",
        503: "Redis unavailable (Retry-After set); introspection is never answered active",
    }
    return {str(s): json_body(ref("Error"), text[s]) for s in statuses}


def request_body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def param(
    name: str, where: str, description: str, required: bool = False, schema: Schema | None = None
) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def text(
    pattern: str | None = None,
    *,
    min_length: int = 0,
    max_length: int | None = None,
    allow_empty: bool = False,
) -> Schema:
    """A string schema. ``pattern`` is matched whole (anchored here); ``allow_empty`` also
    admits "" (a parameter sent empty counts as absent)."""
    schema: Schema = {"type": "string"}
    if pattern is not None:
        body = f"(?:{pattern})"
        schema["pattern"] = f"^{body}?$" if allow_empty else f"^{body}$"
    if min_length:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def path_segment(max_length: int | None = None) -> Schema:
    """A path parameter's string: one segment, never "." or ".." (a client's URL library
    resolves those away before sending)."""
    return {**text(min_length=1, max_length=max_length), "not": {"enum": [".", ".."]}}
