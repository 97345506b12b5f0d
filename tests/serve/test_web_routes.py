"""The web page's two addresses: ``/`` (search) and ``/listing/{id}`` (a listing's own page)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_listing_address_serves_the_page_with_the_sites_root_as_base(client: TestClient) -> None:
    home = client.get("/")
    page = client.get("/listing/listing-001")
    assert home.status_code == page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert "<base" not in home.text
    assert page.text == home.text.replace("<head>", '<head>\n  <base href="../">', 1)
    # "../" from /listing/<id> is the site's root (also under a path prefix): the page's relative
    # addresses, static/ and v1/, are served there. The browser tests load the page at this address.
    assert client.get("/static/app.js").status_code == 200


def test_an_unknown_listing_gets_the_page_which_says_so_with_404(client: TestClient) -> None:
    """The page asks the API (404) and shows "listing not found"; the browser tests check the words.
    The status is 404 too, so a dead link reads as dead to crawlers and link checkers."""
    home = client.get("/")
    for missing in ("no-such-listing", "x" * 500, "%00", "a%0Ab"):
        page = client.get(f"/listing/{missing}")
        assert page.status_code == 404 and page.text == home.text.replace("<head>", '<head>\n  <base href="../">', 1)
    assert client.get("/v1/listings/no-such-listing").status_code == 404
    assert client.get("/listing/listing-001").status_code == 200


def test_only_one_segment_is_a_listing(client: TestClient) -> None:
    assert client.get("/listing/a/b").status_code == 404
    assert client.get("/listing/").status_code == 404


def test_the_listing_page_says_503_while_the_engine_or_its_store_is_unavailable(tmp_path, monkeypatch,
                                                                               built_artifacts) -> None:
    from listing_search.errors import StorageUnavailable
    from listing_search.serve.app import create_app
    from tests.serve.conftest import serve_settings

    with TestClient(create_app(serve_settings(tmp_path / "nothing-built"))) as down:  # the engine failed to load
        page = down.get("/listing/listing-001")
        assert page.status_code == 503 and "<base href=\"../\">" in page.text
    with TestClient(create_app(serve_settings(built_artifacts))) as c:
        def unreadable(listing_id: str):
            raise StorageUnavailable("store unreachable")

        monkeypatch.setattr(c.app.state.engine, "get_listing", unreadable)
        page = c.get("/listing/listing-001")
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
