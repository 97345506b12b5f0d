"""Facet counting counts each group of copies once per value its listings hold (brute force)."""

import numpy as np

from listing_search.search.collapse import distinct_per_value


def test_distinct_per_value_counts_groups_once_per_value() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(0, 40))
        labels = np.where(rng.random(n) < 0.5, rng.integers(0, 6, n), -1 - np.arange(n))  # groups, and loners
        values = rng.integers(-2, 5, n)
        want: dict[int, set] = {}
        for label, value in zip(labels.tolist(), values.tolist()):
            want.setdefault(value, set()).add(label)
        got_values, got_counts = distinct_per_value(labels, values)
        assert dict(zip(got_values.tolist(), got_counts.tolist())) == {v: len(s) for v, s in want.items()}
