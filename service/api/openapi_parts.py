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


def param(name: str, where: str, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": {"type": "string"},
    }
