"""OpenAPI post-processing: the error answers every operation can give, documented once.

drf-spectacular documents what each view declares; these answers come from layers around the
views, for every operation alike, so they are added here instead of on each view:

- 401: any request carrying a bad, expired or revoked token is refused before the view runs
  (knox), even on endpoints that anonymous clients may use; protected ones also refuse none.
- 403: unsafe methods with session authentication and no CSRF token, or without the permission
  an operation needs.
- 414: a request line longer than the server's limit (4 KB in gunicorn, 8 KB in nginx) is
  refused before Django sees it, with the server's own plain page.
- 429: nginx's per-address rate limits (API, login), and the login lockout (token endpoint).

`make security` runs schemathesis against the schema: an answer missing here would be an
"undocumented status code".
"""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/Error"}
SAFE_METHODS = {"get", "head", "options"}
COMMON_ERRORS = {
    "401": "Authentication failed: a missing, invalid, expired or revoked token or session.",
    "403": "Forbidden: no CSRF token with session authentication, or a permission is missing.",
    "429": "Too many requests: a rate limit of the proxy, or a lockout after failed logins "
    "(Retry-After tells when to try again).",
}
# Answered by gunicorn or nginx before Django, as their own HTML page: no JSON body.
URI_TOO_LONG = {"description": "URI Too Long: the request line exceeds the server's limit."}


def add_common_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] entry: add 401/403/414/429 where missing."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                if status == "403" and method in SAFE_METHODS:
                    continue  # reads are never refused for CSRF; private reads answer 401/404
                responses.setdefault(
                    status,
                    {
                        "content": {"application/json": {"schema": ERROR_REF}},
                        "description": description,
                    },
                )
            responses.setdefault("414", URI_TOO_LONG)
    return result
