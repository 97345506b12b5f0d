"""Issue 28 item 6 in process: form text that is not valid UTF-8 is a 422 naming the field, in every text
field of every form, multipart or URL-encoded; before, it was decoded as Latin-1 and stored ("ÿþý", 201).
(Framing, Content-Length with Transfer-Encoding, is tested against the real server in test_uvicorn.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.index.tiny_artifacts import RARE
from tests.serve.conftest import API_KEY, photo_bytes

BAD = b"\xff\xfe\xfd"


def add(client: TestClient, artifacts: Path, **fields: bytes | str):
    """A listing add as multipart, each text field its own part (bytes sent as they are)."""
    parts = {"title": "a chair", "category": RARE, **fields}
    files = [(name, (None, value)) for name, value in parts.items()]
    files.append(("photos", ("p.jpg", photo_bytes(artifacts, "img-003-0"), "image/jpeg")))
    return client.post("/v1/listings", files=files, headers={"X-API-Key": API_KEY})


@pytest.mark.parametrize("field", ["title", "description", "location", "category", "price"])
def test_invalid_utf8_in_a_listing_field_is_422_and_nothing_is_stored(rw_client: TestClient, artifacts: Path,
                                                                     field: str) -> None:
    before = rw_client.app.state.engine.store.counts()
    r = add(rw_client, artifacts, **{field: BAD})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"{field}: not valid utf-8 text"
    assert rw_client.app.state.engine.store.counts() == before


def test_valid_utf8_is_kept_as_sent(rw_client: TestClient, artifacts: Path) -> None:
    title = "Café chair ☕ — ÿþý"
    r = add(rw_client, artifacts, title=title.encode())
    assert r.status_code == 201, r.text
    assert rw_client.get(f"/v1/listings/{r.json()['id']}").json()["title"] == title


def test_invalid_utf8_in_search_text_is_422_multipart_or_urlencoded(client: TestClient,
                                                                     built_artifacts: Path) -> None:
    image = ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")
    r = client.post("/v1/search", files=[("image", image), ("text", (None, BAD))])
    assert r.status_code == 422 and r.json()["detail"] == "text: not valid utf-8 text", r.text
    for body in (b"text=%FF%FE", b"text=chair&location=\xff"):
        r = client.post("/v1/search", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422 and "not valid" in r.json()["detail"], r.text
    r = client.post("/v1/search", content=b"location=L%C3%A9eds+West",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["filters"] == {"location": "Léeds West"}, r.text


def test_invalid_utf8_in_a_field_or_file_name_is_422(client: TestClient, built_artifacts: Path) -> None:
    photo = photo_bytes(built_artifacts)
    boundary = b"xyz"
    for disposition in (b'name="image"; filename="\xff.jpg"', b'name="te\xffxt"'):
        body = (b"--xyz\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n" + photo
                + b"\r\n--xyz--\r\n")
        r = client.post("/v1/search", content=body,
                        headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"})
        assert r.status_code == 422 and "not valid utf-8" in r.json()["detail"], r.text
