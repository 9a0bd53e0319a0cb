"""The OpenAPI document says what every route also does: errors as problem+json, the X-Client-Id header,
and which routes need a bearer token."""

from __future__ import annotations

from typing import Any

from quart_schema import OpenAPIProvider
from werkzeug.routing import Rule

from app.http.authentication import is_public
from app.http.conditional import CONDITIONAL_ATTRIBUTE
from app.http.documented import HEADERS_ATTRIBUTE
from app.routes.adapter import Access, access_of
from app.src.api.common.models.service import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BEARER = "bearer"
SECURITY_SCHEMES: dict[str, Any] = {BEARER: {"type": "http", "scheme": "bearer", "bearer_format": "sealed token"}}
CLIENT_ID = {
    "name": "X-Client-Id",
    "in": "header",
    "required": True,
    "description": "Who is calling: 1-64 letters, digits, '.', '_' or '-'.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
}


class ProblemDocumentingProvider(OpenAPIProvider):
    def build_querystring_parameters(self, model: type[Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """quart-schema's, and a parameter the model requires is `required` (quart-schema leaves that out)."""
        parameters, components = super().build_querystring_parameters(model)
        required = set(model.model_json_schema().get("required", []))
        for parameter in parameters:
            if parameter["name"] in required:
                parameter["required"] = True
        return parameters, components

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        view = self._app.view_functions[rule.endpoint]
        guarded = access_of(rule.rule) is Access.GUARDED
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components |= problem.pop("$defs", {})  # where its references point: components, not the model's own $defs
        components["Problem"] = problem
        for operations in paths.values():
            for operation in operations.values():
                operation["responses"] = {
                    **{str(status): response for status, response in operation["responses"].items()},
                    "default": {
                        "description": "An error, as RFC 9457 problem details",
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    },
                }
                if (headers := getattr(view, CONDITIONAL_ATTRIBUTE, None)) is not None:
                    _document_conditional(operation, headers)
                operation["parameters"] = [*operation["parameters"], *getattr(view, HEADERS_ATTRIBUTE, [])]
                if "requestBody" in operation:
                    operation["requestBody"] = {**operation["requestBody"], "required": True}
                if guarded:
                    operation["parameters"] = [*operation["parameters"], CLIENT_ID]
                    operation["security"] = [] if is_public(view) else [{BEARER: []}]
        return paths, components


ETAG_HEADER = {"description": "A weak entity tag: send it in If-None-Match", "schema": {"type": "string"}}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of a representation you have: 304 while it is still the current one",
    "schema": {"type": "string"},
}


def _document_conditional(operation: dict[str, Any], headers: dict[str, Any]) -> None:
    all_headers = {"ETag": ETAG_HEADER, **headers}
    operation["parameters"] = [*operation["parameters"], IF_NONE_MATCH]
    operation["responses"]["200"] = {**operation["responses"]["200"], "headers": all_headers}
    not_modified = "Not Modified: the ETag sent is still current"
    operation["responses"]["304"] = {"description": not_modified, "headers": all_headers}
