"""Synthetic catalogues of embeddings with a realistic clustered distribution (for bench_index_scale).

Two sources, both seeded and unit-normalised (cosine = inner product):

* ``around_real``: new vectors sampled around real image embeddings (``ART/image_embeddings.npy``):
  a random real vector plus noise drawn from the real embeddings' own principal components, so
  the synthetic cloud has the real spectrum (few strong directions, a long weak tail) and near
  duplicates around every real photo, as a grown catalogue would.
* ``mixture``: a seeded mixture of Gaussians whose centres and spreads follow a power-law spectrum
  (variance of the i-th direction ~ 1/i) in a random 128-d subspace, plus a weak isotropic floor:
  a stand-in with the same kind of low effective dimension.
"""

from __future__ import annotations

import numpy as np

CHUNK = 50_000


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows to unit length, in place; returns ``x``."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    x /= norms
    return x


def mixture(n: int, d: int, seed: int, n_clusters: int | None = None, spread: float = 0.6,
            rank: int = 128, floor: float = 0.05) -> np.ndarray:
    """``n`` unit vectors of a Gaussian mixture living mostly in a random ``rank``-dim subspace.

    Within the subspace the variance of the i-th direction is ~ 1/i (centres and spread alike);
    an isotropic ``floor`` in every dimension keeps the data full-rank, as real embeddings are.
    """
    rng = np.random.default_rng(seed)
    k = n_clusters or max(16, min(4096, n // 250))
    r = min(rank, d)
    scale = (1.0 / np.sqrt(np.arange(1, r + 1, dtype=np.float32))).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((d, r), dtype=np.float32))[0].T.astype(np.float32)
    centres = rng.standard_normal((k, r), dtype=np.float32) * scale
    weights = rng.dirichlet(np.full(k, 2.0))
    iso = floor * float(np.sqrt((scale**2).sum() / d))
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        which = rng.choice(k, size=m, p=weights)
        coeffs = centres[which] + rng.standard_normal((m, r), dtype=np.float32) * (scale * spread)
        chunk = coeffs @ basis
        chunk += rng.standard_normal((m, d), dtype=np.float32) * iso
        out[start:start + m] = chunk
    return normalise(out)


def around_real(
    n: int, real: np.ndarray, seed: int, components: int = 128, noise: float = 0.5, floor: float = 0.02
) -> np.ndarray:
    """``n`` unit vectors near random real embeddings, noise shaped by the real principal components.

    ``noise`` is the noise length relative to the median distance between a real embedding and its
    nearest real neighbour; ``floor`` adds a little isotropic noise so no two vectors coincide.
    """
    rng = np.random.default_rng(seed)
    base = normalise(np.asarray(real, dtype=np.float32).copy())
    d = base.shape[1]
    centred = base - base.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred[: min(len(centred), 20_000)], full_matrices=False)
    c = min(components, vt.shape[0])
    std = (sing[:c] / np.sqrt(max(1, len(centred) - 1))).astype(np.float32)
    basis = vt[:c].astype(np.float32)
    length = float(np.sqrt((std**2).sum()))
    scale = noise * _median_nn_distance(base, rng) / max(length, 1e-12)
    iso = floor * _median_nn_distance(base, rng) / np.sqrt(d)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        z = rng.standard_normal((m, c), dtype=np.float32) * (std * scale)
        chunk = base[rng.integers(0, len(base), size=m)] + z @ basis
        chunk += rng.standard_normal((m, d), dtype=np.float32) * iso
        out[start:start + m] = chunk
    return normalise(out)


def _median_nn_distance(x: np.ndarray, rng: np.random.Generator, sample: int = 1000) -> float:
    """Median distance from a sample of rows to their nearest other row."""
    idx = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    sims = x[idx] @ x.T
    sims[np.arange(len(idx)), idx] = -np.inf
    best = sims.max(axis=1)
    return float(np.median(np.sqrt(np.maximum(0.0, 2.0 - 2.0 * best))))


def catalogue(n: int, d: int, seed: int, real: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The synthetic catalogue and the name of the distribution it came from."""
    if real is not None and len(real) >= 100 and real.shape[1] == d:
        return around_real(n, real, seed), f"around_real({len(real)} embeddings)"
    return mixture(n, d, seed), "mixture_of_gaussians"
