"""Issue 11, item 8: ``/openapi.json`` is a valid OpenAPI 3.1 document that documents every answer a route gives:
the 400 of the request guard, 401 without a key, 404 for ids, 409, 413 and 415 where they apply, and 422 in the
shape the API really sends (``detail`` a list of problems, or one sentence for a refused dataset)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

EXPECTED = {
    ("post", "/datasets"): {413, 415},
    ("delete", "/datasets/{dataset_id}"): {404, 409},
    ("post", "/jobs"): {404, 409, 413},
    ("post", "/jobs/{job_id}/cancel"): {404, 409},
}


def _list_items(node: Any, where: str = "") -> list[str]:
    """Places where ``items`` is a list (OpenAPI 3.0 / JSON Schema 2019 tuple form, invalid in OpenAPI 3.1)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "items" and isinstance(value, list):
                found.append(where)
            found += _list_items(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _list_items(value, f"{where}[{index}]")
    return found


def test_openapi_documents_every_answer(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert _list_items(doc) == []
    image_size = doc["components"]["schemas"]["DatasetOut"]["properties"]["image_size"]
    assert image_size["type"] == "array" and image_size["items"] == {"type": "integer"}
    assert image_size["minItems"] == image_size["maxItems"] == 2
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = {int(code) for code in operation["responses"]}
            needed = {400, 422} | ({401} if path != "/healthz" else set()) | ({404} if "{" in path else set())
            needed |= EXPECTED.get((method, path), set())
            assert needed <= codes, (method, path, sorted(needed - codes))
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert "$ref" in schema or "anyOf" in schema, (method, path, code)


def test_parameters_carry_the_bounds_the_api_checks(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                options = schema.get("anyOf", [schema])
                for option in options:
                    if option.get("type") == "integer":
                        assert "maximum" in option, (method, path, parameter["name"])
                    if option.get("type") == "string" and parameter["in"] == "path":
                        assert "pattern" in option, (method, path, parameter["name"])
