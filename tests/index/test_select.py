"""The index type follows catalogue size and memory budget, as the infos file records."""

from __future__ import annotations

import pytest

from listing_search.index.select import FLAT, HNSW, IVF_PQ, choose_index, pq_m_for


def test_small_catalogue_gets_exact_flat() -> None:
    choice = choose_index(11_330, 1000, memory_budget_mb=1536, exact_max=200_000)
    assert choice.kind == FLAT and choice.factory == "Flat" and "exact_max" in choice.reason


def test_beyond_exact_max_gets_hnsw_when_it_fits() -> None:
    choice = choose_index(300_000, 256, memory_budget_mb=1536, exact_max=200_000)
    assert choice.kind == HNSW and choice.factory.startswith("HNSW")


def test_over_budget_gets_compressed_ivfpq() -> None:
    choice = choose_index(5_000_000, 1000, memory_budget_mb=256, exact_max=200_000)
    assert choice.kind == IVF_PQ and choice.factory.startswith("IVF") and ",PQ" in choice.factory
    assert choice.estimated_bytes <= 256 * 1024 * 1024 and 1000 % choice.pq_m == 0


def test_flat_over_budget_is_not_chosen_even_when_small() -> None:
    assert choose_index(100_000, 1000, memory_budget_mb=64, exact_max=200_000).kind != FLAT


def test_forced_kind_and_unknown_kind() -> None:
    assert choose_index(100, 8, 1536, 200_000, kind=HNSW).kind == HNSW
    with pytest.raises(ValueError, match="unknown index kind"):
        choose_index(100, 8, 1536, 200_000, kind="lsh")


def test_pq_m_divides_dim_and_fits() -> None:
    m = pq_m_for(1_000_000, 1000, 50 * 1024 * 1024)
    assert 1000 % m == 0 and 1_000_000 * (m + 8) <= 50 * 1024 * 1024
