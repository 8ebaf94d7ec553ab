"""The page's files as the API serves them: no key needed, ``/`` redirects to it, every asset it references
exists, and nothing is fetched from another site (the page must work with no internet). No browser needed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.web import STATIC_DIR
from core.settings import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("web-static")
    settings = Settings(state_dir=state, database_url="", broker_url="", artifact_root=None)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_root_redirects_to_the_page_which_needs_no_key(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>GenMix</title>" in page.text
    assert client.get("/datasets").status_code == 401  # the API itself still needs the key
    assert not any(path.startswith("/ui") for path in client.get("/openapi.json").json()["paths"])


def test_every_referenced_asset_is_served(client: TestClient) -> None:
    html = client.get("/ui/").text
    assets = re.findall(r'(?:href|src)="([^"#:]+)"', html)
    modules = [f"js/{name}" for name in re.findall(r'from "\./([\w.-]+\.js)"', _all_js())]
    assert "app.css" in assets and "js/app.js" in assets
    for asset in {*assets, *modules}:
        response = client.get(f"/ui/{asset}")
        assert response.status_code == 200, asset
        if asset.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript")


def _all_js() -> str:
    return "\n".join(path.read_text() for path in sorted((STATIC_DIR / "js").glob("*.js")))


def test_nothing_comes_from_another_site() -> None:
    for path in sorted(Path(STATIC_DIR).rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"https?://", text), f"{path.name} refers to another site"
            assert "@import" not in text and "cdn" not in text.lower(), path.name
