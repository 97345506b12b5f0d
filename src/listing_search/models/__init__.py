"""Fitted models loaded and applied at serving time, numpy only (LightGBM's scorer for its kind):
the ranker (a registry of kinds), the category predictor, relevance calibration, and the bundle
that loads them together with their versions. Fitting them is ``fit``'s job."""
