"""Offline fitting, never imported by ``search`` or ``serve``: the category predictor, the re-ranker,
relevance calibration and the no-match threshold, all fit on queries run through ``search.pipeline``."""
