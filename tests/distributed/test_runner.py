"""The Dask runner gives the same results as the local one, on a real (local) Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_search.data.prepare import prepare
from listing_search.distributed.runner import DaskRunner, LocalRunner, get_runner
from listing_search.settings import Settings
from tests.realparts import need_module

need_module("distributed", "dask[distributed] is not installed")


def _square(x: int) -> int:
    return x * x


def test_local_runner_keeps_order() -> None:
    assert LocalRunner(workers=2).map(_square, list(range(100))) == [x * x for x in range(100)]


def test_unknown_runner_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown runner 'spark'"):
        get_runner("spark")


@pytest.mark.slow
def test_prepare_on_dask_matches_local(tiny_dataset: Path, tmp_path: Path) -> None:
    base = Settings()
    local = base.model_copy(update={"data": base.data.model_copy(update={"image_size": 32, "workers": 1})})
    dask = base.model_copy(update={"data": local.data.model_copy(update={"runner": "dask", "workers": 2})})
    a = prepare(local, str(tiny_dataset), tmp_path / "local")
    b = prepare(dask, str(tiny_dataset), tmp_path / "dask")
    assert a.photos == b.photos == {"ok": 24}
    assert (tmp_path / "local/training_data.csv").read_text() == (tmp_path / "dask/training_data.csv").read_text()
    assert DaskRunner(workers=1, batch=7).map(_square, list(range(20))) == [x * x for x in range(20)]
