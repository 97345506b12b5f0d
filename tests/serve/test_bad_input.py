"""Every kind of bad input gets a 4xx with the reason in JSON: never a 500, never a hang."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.serve.conftest import API_KEY, MAX_UPLOAD, photo_bytes


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat)))


def big_jpeg(size: int) -> bytes:
    """A valid JPEG of noise, larger than ``size`` bytes."""
    import numpy as np

    side = 64
    while True:
        arr = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=100)
        if buf.tell() > size:
            return buf.getvalue()
        side *= 2


def _post_image(client: TestClient, data: bytes, path: str = "/predict/feature_embedding"):
    return client.post(path, files={"image": ("x.jpg", data, "image/jpeg")})


@pytest.mark.parametrize("path", ["/predict/feature_embedding", "/predict/similar_images", "/v1/search",
                                  "/v1/predict/category"])
@pytest.mark.parametrize(("payload", "status", "reason"), [
    (b"this is not an image at all", 415, "not_an_image"),
    (b"", 400, "empty upload"),
    ("truncated", 422, "corrupt_or_truncated"),
    ("huge", 413, "too_large"),
])
def test_bad_photos(client: TestClient, built_artifacts: Path, path: str, payload, status: int, reason: str) -> None:
    if payload == "truncated":
        payload = photo_bytes(built_artifacts)[:600]
    elif payload == "huge":
        payload = huge_png_header()
    r = _post_image(client, payload, path)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]


def test_missing_image_field_and_wrong_content_type(client: TestClient) -> None:
    r = client.post("/predict/feature_embedding")
    assert r.status_code == 422 and "image: Field required" in r.json()["detail"]
    r = client.post("/predict/feature_embedding", json={"image": "aGVsbG8="})
    assert r.status_code == 422 and "image" in r.json()["detail"]


def test_upload_over_limit_is_refused(client: TestClient) -> None:
    r = _post_image(client, big_jpeg(MAX_UPLOAD + 1000))  # within the form slack: refused while read
    assert r.status_code == 413 and f"limit is {MAX_UPLOAD} bytes" in r.json()["detail"]
    r = _post_image(client, b"\xff\xd8" + b"\0" * (MAX_UPLOAD * 3))  # Content-Length over: refused unread
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_streamed_upload_over_limit_is_cut_off(client: TestClient) -> None:
    """No Content-Length (chunked): the body is counted as it arrives."""
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(64):
            yield b"\0" * 8192  # 512 KiB in all, far over the limit

    r = client.post("/predict/feature_embedding", content=body(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v1/listings/no-such-listing"), ("get", "/v1/listings/no-such-listing/similar"),
    ("get", "/v1/images/no-such-image"),
])
def test_unknown_ids_are_404(client: TestClient, method: str, path: str) -> None:
    r = getattr(client, method)(path)
    assert r.status_code == 404 and "unknown" in r.json()["detail"]


def test_image_id_with_odd_characters_is_refused(client: TestClient) -> None:
    r = client.get("/v1/images/a.b;c")
    assert r.status_code == 422 and "image_id" in r.json()["detail"]


@pytest.mark.parametrize("k", ["0", "51", "-3", "ten"])
def test_k_out_of_range(client: TestClient, built_artifacts: Path, k: str) -> None:
    files = {"image": ("x.jpg", photo_bytes(built_artifacts), "image/jpeg")}
    for r in (client.post("/v1/search", files=files, data={"k": k}),
              client.post("/predict/similar_images", files=files, data={"k": k}),
              client.get("/v1/listings/listing-001/similar", params={"k": k})):
        assert r.status_code == 422, r.text
        assert "k" in r.json()["detail"]


def test_search_needs_a_query_and_sane_filters(client: TestClient, built_artifacts: Path) -> None:
    files = {"image": ("x.jpg", photo_bytes(built_artifacts), "image/jpeg")}
    r = client.post("/v1/search", data={"k": "3"})
    assert r.status_code == 422 and "an image, a text query, filters to browse by" in r.json()["detail"]
    r = client.post("/v1/search", data={"text": "a red chair"})
    assert r.status_code == 400 and "text search is not available" in r.json()["detail"]
    r = client.post("/v1/search", files=files, data={"category": "Spaceships"})
    assert r.status_code == 422 and "unknown category 'Spaceships'" in r.json()["detail"]
    r = client.post("/v1/search", files=files, data={"price_min": "50", "price_max": "10"})
    assert r.status_code == 422 and "price_min" in r.json()["detail"]
    r = client.post("/v1/search", files=files, data={"price_min": "-1"})
    assert r.status_code == 422 and "price_min" in r.json()["detail"]


def test_writes_need_the_right_api_key(client: TestClient, built_artifacts: Path) -> None:
    photo = [("photos", ("x.jpg", photo_bytes(built_artifacts), "image/jpeg"))]
    data = {"title": "t", "category": "Appliances"}
    r = client.post("/v1/listings", data=data, files=photo)
    assert r.status_code == 401 and "missing X-API-Key" in r.json()["detail"]
    r = client.post("/v1/listings", data=data, files=photo, headers={"X-API-Key": "wrong"})
    assert r.status_code == 403 and "invalid API key" in r.json()["detail"]
    r = client.delete("/v1/listings/listing-001")
    assert r.status_code == 401
    r = client.delete("/v1/listings/listing-001", headers={"X-API-Key": "wrong"})
    assert r.status_code == 403
    assert client.get("/v1/listings/listing-001").status_code == 200


CONTENT = ("listings", "photos", "index", "log_seq")


def test_bad_new_listings_change_nothing(rw_client: TestClient, artifacts: Path) -> None:
    key = {"X-API-Key": API_KEY}
    good = ("photos", ("x.jpg", photo_bytes(artifacts), "image/jpeg"))
    before = rw_client.get("/health").json()
    cases = [
        ({"title": "t", "category": "Appliances"}, [good, ("photos", ("y.jpg", b"nope", "image/jpeg"))], 415,
         "not_an_image"),
        ({"title": "t", "category": "Spaceships"}, [good], 422, "unknown category"),
        ({"title": "", "category": "Appliances"}, [good], 422, "title"),
        ({"title": "t", "category": "Appliances", "price": "-5"}, [good], 422, "price"),
        ({"title": "t", "category": "Appliances"}, [good] * 11, 422, "1 to 10 photos"),
        ({"title": "t", "category": "Appliances"}, [], 422, "photos"),
    ]
    for data, files, status, reason in cases:
        r = rw_client.post("/v1/listings", data=data, files=files or None, headers=key)
        assert r.status_code == status, (data, r.text)
        assert reason in r.json()["detail"]
    after = rw_client.get("/health").json()
    assert {k: after[k] for k in CONTENT} == {k: before[k] for k in CONTENT}  # snapshot age moves on
    r = rw_client.delete("/v1/listings/no-such-listing", headers=key)
    assert r.status_code == 404 and "unknown listing" in r.json()["detail"]


def test_no_500_in_metrics(client: TestClient) -> None:
    assert 'status="500"' not in client.get("/metrics").text


def _history(*events: dict) -> str:
    return json.dumps([{"listing_id": "listing-001", "event": "viewed", **e} for e in events])


DAY = 86400.0
NOW = time.time()
SEARCH_HOSTILE = [  # (form fields besides the photo, field named in the reason)
    ({"price_min": "inf"}, "price_min"), ({"price_max": "Infinity"}, "price_max"), ({"text": "a\x00b"}, "text"),
    ({"text": "\x1b[31mred"}, "text"), ({"location": "Leeds\x00"}, "location"),
    ({"category": "Home\x07"}, "category: Value error"), ({"category": "x" * 501}, "category: Value should have at most 500"),
    ({"history": "[" * 50_000}, "recursion limit"), ({"history": _history(*[{}] * 201)}, "at most 200"), ({"history": _history({"timestamp": 0})}, "timestamp"),
    ({"history": _history({"timestamp": -5})}, "timestamp"), ({"history": _history({"timestamp": 1})}, "timestamp"),
    ({"history": _history({"timestamp": NOW + 10 * DAY})}, "future"), ({"history": _history({"timestamp": 1e308})}, "future"),
    ({"history": '[{"listing_id": "listing-001", "timestamp": NaN}]'}, "timestamp"),
    ({"history": '[{"listing_id": "listing-001", "timestamp": Infinity}]'}, "timestamp"),
    ({"history": '[{"listing_id": "a\\u0000"}]'}, "listing_id"),
]


@pytest.mark.parametrize(("data", "reason"), SEARCH_HOSTILE)
def test_hostile_search_fields(client: TestClient, built_artifacts: Path, data: dict, reason: str) -> None:
    files = {"image": ("x.jpg", photo_bytes(built_artifacts), "image/jpeg")}
    r = client.post("/v1/search", files=files, data=data)
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"]


def _event(**fields: object) -> dict:
    return {"listing_id": "listing-001", "event": "viewed", **fields}


RECOMMEND_HOSTILE = [  # (raw JSON body, field named in the reason)
    (json.dumps({"history": [_event(timestamp=0)]}), "timestamp"),
    (json.dumps({"history": [_event(timestamp=-1)]}), "timestamp"),
    (json.dumps({"history": [_event(timestamp=NOW + 10 * DAY)]}), "future"),
    ('{"history": [{"listing_id": "listing-001", "timestamp": NaN}]}', "invalid JSON"),
    ('{"history": [{"listing_id": "listing-001", "timestamp": Infinity}]}', "invalid JSON"),
    ('{"history": [{"listing_id": "listing-001", "timestamp": 1e400}]}', "timestamp"),
    (json.dumps({"history": [_event()] * 201}), "history"),
    ('{"history": [{"listing_id": "\\ud800"}]}', "invalid JSON"),
    (json.dumps({"history": [_event()], "query": "a\x00b"}), "query"),
    ('{"history": [], "query": "\\udfff"}', "invalid JSON"),
    (json.dumps({"history": [_event()], "category": "Home\x1b"}), "category: Value error"),
    (json.dumps({"history": [_event()], "category": "x" * 201}), "category: Value should have at most 200"),
    ("[" * 50_000, "recursion limit"),
    ('{"history": ' + "[" * 50_000, "recursion limit"),
]


@pytest.mark.parametrize(("body", "reason"), RECOMMEND_HOSTILE)
def test_hostile_recommend_bodies(client: TestClient, body: str, reason: str) -> None:
    r = client.post("/v1/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"]


LISTING_HOSTILE = [  # (form fields over a valid title and category, field named in the reason)
    ({"price": "inf"}, "price"), ({"price": "1e999"}, "price"), ({"title": "   "}, "title: Value error, must not be blank"),
    ({"title": "\t\n"}, "title"), ({"title": "a\x00b"}, "title"), ({"category": " "}, "category: Value error"),
    ({"description": "nice\x00"}, "description"), ({"location": "Leeds\x1b"}, "location"),
    ({"category_path": "a\x7fb"}, "category_path"),
]


@pytest.mark.parametrize(("fields", "reason"), LISTING_HOSTILE)
def test_hostile_listing_fields(rw_client: TestClient, artifacts: Path, fields: dict, reason: str) -> None:
    before = rw_client.get("/health").json()
    photo = [("photos", ("x.jpg", photo_bytes(artifacts), "image/jpeg"))]
    r = rw_client.post("/v1/listings", data={"title": "t", "category": "Appliances", **fields}, files=photo,
                       headers={"X-API-Key": API_KEY})
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"]
    after = rw_client.get("/health").json()
    assert {k: after[k] for k in CONTENT} == {k: before[k] for k in CONTENT}


def test_title_that_is_not_utf8_is_refused(rw_client: TestClient, artifacts: Path) -> None:
    """Invalid UTF-8 is read as Latin-1 by the form parser: its bytes become C1 controls, refused."""
    files = [("photos", ("x.jpg", photo_bytes(artifacts), "image/jpeg")), ("title", (None, b"a\xed\xa0\x80b")),
             ("category", (None, b"Appliances"))]
    r = rw_client.post("/v1/listings", files=files, headers={"X-API-Key": API_KEY})
    assert r.status_code == 422 and "title" in r.json()["detail"]


def test_text_is_stored_nfc_normalised_and_stripped(rw_client: TestClient, artifacts: Path) -> None:
    decomposed = "  Cafe\u0301 table  "
    r = rw_client.post("/v1/listings", data={"title": decomposed, "category": "Appliances",
                                             "location": "Ko\u0308ln"},
                       files=[("photos", ("x.jpg", photo_bytes(artifacts), "image/jpeg"))],
                       headers={"X-API-Key": API_KEY})
    assert r.status_code == 201, r.text
    stored = rw_client.get(f"/v1/listings/{r.json()['id']}").json()
    assert stored["title"] == "Caf\u00e9 table" and stored["location"] == "K\u00f6ln"
