"""Buying ads told from sale ads that sound like them, by hand (the measured sample: evaluate key buying_ads)."""

from __future__ import annotations

import pytest

from listing_search.core.ads import is_buying_ad


@pytest.mark.parametrize("title, description", [
    ("IPHONE 13 PRO 12 PRO MAX MINI 11 / USED / WANTED", "BEST PRICES PAID FOR YOUR IPHONES"),
    ("✅ GET CASH FOR IPHONE 13, 13 PRO MAX New Used Faulty", ""),
    ("Wanted scrap gold best prices paid", ""),
    ("Looking for weights barbell and bench", "cash is waiting"),
    ("LOOKING FOR 2x2 slabs", "hi i am looking for 25 used 2x2 slabs"),
    ("Techno and House Vinyl Wanted , DJ collections bought", ""),
    ("Scrap car", "We pay good rates and collection same day. We buy non runners"),
    ("Xbox one power plug", "Anyone selling one of these, preferably available today"),
])
def test_buying_ads_are_recognised(title: str, description: str) -> None:
    assert is_buying_ad(title, description)


@pytest.mark.parametrize("title, description", [
    ("Superdry wristwatch", "a few light scratches, no longer wanted"),
    ("Brand new hello kitty headband", "Unwanted gift. Still attached to packaging."),
    ("WORK JACKETS CLEARANCE. Wholesaler wanted?", "65% poly, heavy zip"),
    ("Child's car seat", "looking for £20 from clydebank area"),
    ("IKEA flintan office chair", "Looking for 35 or offers"),
    ("Brand new rad", "first to see will buy bargain"),
    ("Road bike Raleigh Airlite 300", "cycle shoes if wanted."),
    ("Reclaimed Yellow Stock Bricks", "at 90p per brick. I buy reclaimed stock bricks at competitive prices"),
    ("Iphone 6s for sale or swap", "Very good condition"),
])
def test_sale_ads_that_sound_like_buying_are_not(title: str, description: str) -> None:
    assert not is_buying_ad(title, description)
