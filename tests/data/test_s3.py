"""The S3 reader against a real S3-compatible server (moto's standalone server) on loopback.

boto3 is not mocked: the code path is the one that would talk to AWS, pointed at another endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_search.data.prepare import prepare
from listing_search.settings import Settings

boto3 = pytest.importorskip("boto3")


def _upload(dataset: Path, endpoint: str, bucket: str, prefix: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for path in dataset.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(dataset).as_posix()}")


def test_prepare_from_s3_matches_local(tiny_dataset: Path, tmp_path: Path, s3_endpoint: str) -> None:
    (tiny_dataset / "images" / "img-003-1.jpg").write_bytes(b"corrupt")
    _upload(tiny_dataset, s3_endpoint, "market", "dumps/2022")
    base = Settings()
    settings = base.model_copy(update={"data": base.data.model_copy(
        update={"image_size": 32, "workers": 1, "s3_endpoint_url": s3_endpoint})})

    from_s3 = prepare(settings, "s3://market/dumps/2022", tmp_path / "s3art")
    local = prepare(settings, str(tiny_dataset), tmp_path / "localart")

    assert from_s3.photo_rows_kept == local.photo_rows_kept == 23
    assert from_s3.dropped == local.dropped == {"photo_not_an_image": 1}
    assert (tmp_path / "s3art/training_data.csv").read_text() == (tmp_path / "localart/training_data.csv").read_text()


def test_missing_table_in_bucket_is_a_clear_error(tmp_path: Path, s3_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="empty")
    base = Settings()
    settings = base.model_copy(update={"data": base.data.model_copy(update={"s3_endpoint_url": s3_endpoint})})
    with pytest.raises(FileNotFoundError, match="Products.csv not found at s3://empty/"):
        prepare(settings, "s3://empty", tmp_path / "art")
