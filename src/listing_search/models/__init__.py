"""Fitted models loaded and applied at serving time, numpy only (the LambdaMART kind: its trees
compiled by lleaves, LightGBM's scorer as the fallback): the ranker (a registry of kinds), the
category predictor, relevance calibration, and the bundle that loads them together with their
versions. Fitting them is ``fit``'s job."""
