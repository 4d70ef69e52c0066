"""/api/v1/docs works offline: Swagger UI's files come from trustyard, not from a CDN, and its
OAuth2 redirect page is served where the page says it is."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

A = "/api/v1"


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server("api-docs", TRUSTYARD_AUTH__ENABLED="true")


def test_the_docs_page_loads_only_files_of_its_own_origin(registry: TrustyardServer) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as http:
        page = http.get(f"{A}/docs")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?:https?:)?//[\w.-]+", page.text), page.text  # no other host
        linked = set(re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text))
        linked |= set(
            re.findall(r"""(?:url|oauth2RedirectUrl)['"]?:\s*['"]([^'"]+)['"]""", page.text)
        )
        linked |= set(re.findall(r"window\.location\.origin \+ '([^']+)'", page.text))
        wanted = {
            f"{A}/docs/static/swagger-ui-bundle.js": "text/javascript",
            f"{A}/docs/static/swagger-ui.css": "text/css",
            f"{A}/docs/static/favicon-32x32.png": "image/png",
            f"{A}/openapi.json": "application/json",
            f"{A}/docs/oauth2-redirect": "text/html",
        }
        assert linked == set(wanted), page.text
        for path, content_type in wanted.items():
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            assert answer.headers["content-type"].split(";")[0] == content_type, path
            assert answer.content, path
        assert "swagger-ui" in http.get(f"{A}/docs/static/swagger-ui-bundle.js").text[:2000].lower()


def test_only_the_pages_files_are_served(registry: TrustyardServer) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as http:
        for name in ("index.html", "swagger-ui-bundle.js.map", "..%2f__init__.py", "nothing"):
            assert http.get(f"{A}/docs/static/{name}").status_code == 404, name
