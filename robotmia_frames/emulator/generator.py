"""A deterministic, seeded generator of robotmia export lines.

Every event is a dict in the export's line format::

    {"event": "Played song",
     "properties": {"time": 1704103200, "distinct_id": "user-00042",
                    "$insert_id": "...", "$os": "Linux", ..., "Genre": "Jazz"}}

``properties.time`` is *project-local* wall-clock seconds, as the real export sends
it: for day ``D`` it is ``(D - 1970-01-01).days * 86400 + seconds_into_day``, so the
project-local day of an event is ``time // 86400`` days after 1970-01-01.

Determinism: the events of one day depend only on ``(seed, day, events_per_day,
start_id)``. Generating a day alone gives exactly the events that generating any
range containing it gives for that day.

The mix is meant to look like a real project: about 40 event names with Zipf-like
frequencies, each with its own property set, ``$``-prefixed defaults, strings, ints,
floats, bools, lists, occasional nested objects and nulls, and about 1% of rows with
a type conflict (an int sent as ``"42"`` or ``"n/a"``, a bool sent as ``"true"``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import gzip as _gzip
import itertools
import math
import os
import random
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .._fsutil import replacing

__all__ = [
    "generate_events",
    "hostile_lines",
    "iter_generated_events",
    "write_export_file",
]

_EPOCH = _dt.date(1970, 1, 1)
_DAY = 86400
_N_USERS = 20_000
_CONFLICT_RATE = 0.01
_FRACTIONAL_TIME_RATE = 0.0005
_NULL_RATE = 0.01

DateLike = _dt.date | str
Sampler = Callable[[random.Random], Any]


# --------------------------------------------------------------------------- dates


def _to_date(value: DateLike, name: str) -> _dt.date:
    """Parse a ``datetime.date`` or a strict ``'YYYY-MM-DD'`` string."""
    if isinstance(value, _dt.datetime):
        raise ValueError(f"{name} must be a date or a 'YYYY-MM-DD' string, got a datetime")
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            try:
                return _dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(f"{name} must be a 'YYYY-MM-DD' date, got {value!r}")
    raise TypeError(f"{name} must be a date or a 'YYYY-MM-DD' string, got {type(value).__name__}")


def _check_timezone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown project_timezone {name!r}: use an IANA name") from exc


# --------------------------------------------------------------------------- samplers


def _choice(values: list[Any], skew: float = 1.0) -> Sampler:
    """A sampler picking from ``values``; ``skew > 1`` favours the first ones."""
    n = len(values)
    if skew == 1.0:
        return lambda rng: values[int(rng.random() * n)]
    return lambda rng: values[int(rng.random() ** skew * n)]


def _int(lo: int, hi: int, skew: float = 1.0) -> Sampler:
    span = hi - lo + 1
    if skew == 1.0:
        return lambda rng: lo + int(rng.random() * span)
    return lambda rng: lo + int(rng.random() ** skew * span)


def _float(lo: float, hi: float, digits: int = 2) -> Sampler:
    span = hi - lo
    return lambda rng: round(lo + rng.random() * span, digits)


def _bool(p_true: float) -> Sampler:
    return lambda rng: rng.random() < p_true


def _str_list(values: list[str], max_len: int) -> Sampler:
    n = len(values)
    return lambda rng: [values[int(rng.random() * n)] for _ in range(int(rng.random() * max_len))]


def _int_list(lo: int, hi: int, max_len: int) -> Sampler:
    span = hi - lo + 1
    return lambda rng: [
        lo + int(rng.random() * span) for _ in range(1 + int(rng.random() * max_len))
    ]


def _pattern(fmt: str, lo: int, hi: int) -> Sampler:
    span = hi - lo + 1
    return lambda rng: fmt % (lo + int(rng.random() * span))


_UTM_SOURCES = ["google", "newsletter", "facebook", "twitter", "linkedin", "partner-blog"]
_UTM_MEDIUMS = ["cpc", "email", "social", "referral", "display"]
_UTM_CAMPAIGNS = ["spring_sale_2024", "brand_awareness", "retargeting_q1", "launch_week"]


def _utm(rng: random.Random) -> dict[str, Any]:
    return {
        "utm": {
            "source": _UTM_SOURCES[int(rng.random() * len(_UTM_SOURCES))],
            "medium": _UTM_MEDIUMS[int(rng.random() * len(_UTM_MEDIUMS))],
            "campaign": _UTM_CAMPAIGNS[int(rng.random() * len(_UTM_CAMPAIGNS))],
        }
    }


def _cart(rng: random.Random) -> dict[str, Any]:
    items = 1 + int(rng.random() * 6)
    return {
        "items": items,
        "value": round(items * (5 + rng.random() * 60), 2),
        "currency": "USD",
        "coupon": None if rng.random() < 0.7 else "SAVE10",
    }


def _device(rng: random.Random) -> dict[str, Any]:
    return {
        "battery": round(rng.random(), 2),
        "charging": rng.random() < 0.3,
        "network": ["wifi", "4g", "5g", "3g"][int(rng.random() * 4)],
    }


_SONGS = [
    "Blue in Green",
    "So What",
    "Bohemian Rhapsody",
    "Hey Jude",
    "Clair de Lune",
    "Lose Yourself",
    "Billie Jean",
    "Smells Like Teen Spirit",
    "Hotel California",
    "Imagine",
    "Take Five",
    "Halo",
    "Rolling in the Deep",
    "Fix You",
    "Redbone",
    "Africa",
]
_ARTISTS = ["Miles Davis", "Queen", "The Beatles", "Debussy", "Eminem", "Michael Jackson"]
_ARTISTS += ["Nirvana", "Eagles", "John Lennon", "Dave Brubeck", "Beyonce", "Adele", "Toto"]
_GENRES = ["Jazz", "Rock", "Pop", "Classical", "Hip-Hop", "Electronic", "Folk", "Soul"]
_PLANS = ["free", "starter", "pro", "business", "enterprise"]
_REPORTS = ["Insights", "Funnels", "Flows", "Retention", "Signal", "Impact", "Dashboards"]
_CATEGORIES = ["Electronics", "Books", "Home & Kitchen", "Toys", "Garden", "Sports", "Beauty"]
_PRODUCTS = ["Wireless Headphones", "Espresso Machine", "Running Shoes", "Desk Lamp"]
_PRODUCTS += ["Mechanical Keyboard", "Yoga Mat", "Cast Iron Pan", "Board Game", "Backpack"]
_CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL"]
_PAYMENT = ["card", "paypal", "apple_pay", "google_pay", "bank_transfer", "gift_card"]
_SEARCH = ["jazz playlist", "running shoes", "how to export data", "retention report"]
_SEARCH += ["cheap flights", "weekly dashboard", "café crème", "東京 ラーメン", "best headphones"]
_TAGS = ["new", "sale", "featured", "limited", "eco", "bestseller", "gift", "premium", "bundle"]
_FILTERS = ["price<50", "brand:acme", "color:blue", "rating>=4", "in_stock", "size:M"]
_PERMISSIONS = ["read", "write", "admin", "billing", "export", "invite"]
_LANGS = ["en-US", "fr-FR", "de-DE", "es-ES", "ja-JP", "pt-BR", "it-IT", "nl-NL"]
_ERRORS = [
    "TimeoutError: request to /api/v2/items took longer than 30000 ms",
    "TypeError: Cannot read properties of undefined (reading 'length')",
    "NetworkError when attempting to fetch resource.",
    "HTTP 502 Bad Gateway from upstream payments service",
    "QuotaExceededError: the quota has been exceeded (localStorage)",
]
_FEATURES = ["dark_mode", "new_onboarding", "smart_search", "bulk_export", "ai_summary"]
_PAGES = ["home", "pricing", "docs", "blog", "checkout", "settings", "profile", "search"]

# Property name -> sampler. A key has one "normal" type everywhere it appears.
_PROPS: dict[str, Sampler] = {
    "Plan": _choice(_PLANS, 1.6),
    "Report name": _pattern("Weekly KPI report #%d", 1, 400),
    "Report type": _choice(_REPORTS, 1.4),
    "Dashboard ID": _pattern("dash_%06d", 1, 50_000),
    "Project ID": _pattern("%d", 1, 40),
    "Song title": _choice(_SONGS, 1.5),
    "Artist": _choice(_ARTISTS, 1.5),
    "Genre": _choice(_GENRES, 1.3),
    "Playlist": _pattern("Playlist %d", 1, 500),
    "Search term": _choice(_SEARCH, 1.8),
    "Product ID": _pattern("SKU-%05d", 1, 20_000),
    "Product name": _choice(_PRODUCTS, 1.4),
    "Category": _choice(_CATEGORIES, 1.3),
    "Currency": _choice(_CURRENCIES, 2.5),
    "Payment method": _choice(_PAYMENT, 1.7),
    "Coupon code": _choice([None, None, None, "WELCOME10", "SPRING24", "FREESHIP"]),
    "Error message": _choice(_ERRORS),
    "Error code": _int(400, 599),
    "Page": _choice(_PAGES, 1.5),
    "Button": _choice(["Sign up", "Buy now", "Learn more", "Add to cart", "Share", "Close"]),
    "Video title": _pattern("Tutorial part %d: getting started with reports", 1, 60),
    "Video quality": _choice(["240p", "480p", "720p", "1080p", "4k"]),
    "Share channel": _choice(["email", "twitter", "facebook", "copy_link", "whatsapp"]),
    "Notification type": _choice(["push", "email", "in_app", "sms"]),
    "Experiment name": _choice(["checkout_button_color", "onboarding_v3", "pricing_page_copy"]),
    "Variant": _choice(["control", "A", "B", "C"]),
    "Language": _choice(_LANGS, 1.8),
    "Login method": _choice(["password", "google", "apple", "sso", "magic_link"]),
    "Signup source": _choice(["organic", "ads", "referral", "partner", "invite"]),
    "Referral code": _pattern("REF%07d", 1, 9_999_999),
    "Team ID": _pattern("team-%05d", 1, 3_000),
    "File type": _choice(["csv", "pdf", "png", "xlsx", "json", "parquet"]),
    "Feature": _choice(_FEATURES),
    "Support topic": _choice(["billing", "bug", "how-to", "account", "data export"]),
    "Level name": _pattern("World %d", 1, 12),
    "Comment": _choice(
        [
            "Loving the new dashboard, but the export button is hard to find on mobile.",
            "Could you add a dark mode to the report builder? My eyes would thank you.",
            "Great app. Crashes sometimes when I switch playlists while offline.",
            "",
        ]
    ),
    "Duration": _int(1, 3_600, 2.0),
    "Quantity": _int(1, 10, 2.5),
    "Items in cart": _int(1, 25, 2.0),
    "Results count": _int(0, 500, 3.0),
    "Page number": _int(1, 40, 3.0),
    "Rating": _int(1, 5),
    "Level": _int(1, 120, 1.5),
    "Score": _int(0, 1_000_000, 2.0),
    "Retry count": _int(0, 5, 3.0),
    "Track number": _int(1, 18),
    "Seats": _int(1, 500, 3.0),
    "File size bytes": _int(1_000, 5_000_000_000, 3.0),
    "Position": _int(1, 50, 2.0),
    "Price": _float(0.99, 499.99),
    "Amount": _float(1.0, 2_500.0),
    "Discount": _float(0.0, 0.5, 3),
    "Load time": _float(0.05, 12.0, 3),
    "Progress": _float(0.0, 1.0, 4),
    "Volume": _float(0.0, 1.0, 2),
    "Is trial": _bool(0.3),
    "Shuffle": _bool(0.4),
    "First time": _bool(0.15),
    "Success": _bool(0.9),
    "Is premium": _bool(0.25),
    "Autoplay": _bool(0.6),
    "Push enabled": _bool(0.5),
    "Tags": _str_list(_TAGS, 5),
    "Product IDs": _str_list([f"SKU-{i:05d}" for i in range(1, 400, 7)], 6),
    "Filters": _str_list(_FILTERS, 4),
    "Genres": _str_list(_GENRES, 4),
    "Permissions": _str_list(_PERMISSIONS, 4),
    "Item quantities": _int_list(1, 5, 5),
    "Selected rows": _int_list(0, 999, 8),
    "Lap times ms": _int_list(20_000, 90_000, 6),
}

# Occasional nested objects: (probability, sampler returning keys to merge).
_NESTED: list[tuple[float, Callable[[random.Random], dict[str, Any]]]] = [
    (0.04, _utm),
]

# Property key -> probability it is present (default 1.0: always present).
_OPTIONAL: dict[str, float] = {
    "Coupon code": 0.6,
    "Tags": 0.7,
    "Comment": 0.2,
    "Referral code": 0.3,
    "Experiment name": 0.5,
    "Variant": 0.5,
    "Discount": 0.4,
    "Filters": 0.6,
    "Error code": 0.8,
    "Selected rows": 0.5,
}

# (name, Zipf rank is the list order, custom property keys, extra nested samplers)
_EVENTS: list[tuple[str, list[str], list[tuple[str, Sampler]]]] = [
    ("Viewed report", ["Report name", "Report type", "Dashboard ID", "Project ID", "Load time", "Plan", "Filters"], []),
    ("Played song", ["Song title", "Artist", "Genre", "Duration", "Shuffle", "Playlist", "Track number", "Volume", "Autoplay"], []),
    ("Page viewed", ["Page", "Load time", "Language", "Experiment name", "Variant"], []),
    ("Logged in", ["Login method", "Plan", "First time", "Retry count"], []),
    ("Searched", ["Search term", "Results count", "Page number", "Filters", "Category"], []),
    ("Added to cart", ["Product ID", "Product name", "Category", "Price", "Quantity", "Currency", "Tags", "Items in cart"], [("Cart", _cart)]),
    ("Clicked button", ["Button", "Page", "Position", "Experiment name", "Variant"], []),
    ("Viewed product", ["Product ID", "Product name", "Category", "Price", "Currency", "Tags", "Position", "Is premium"], []),
    ("Skipped song", ["Song title", "Artist", "Genre", "Progress", "Shuffle"], []),
    ("Purchase", ["Amount", "Currency", "Payment method", "Coupon code", "Product IDs", "Item quantities", "Discount", "Items in cart", "Is trial", "Plan", "Success"], [("Cart", _cart)]),
    ("Started session", ["Language", "First time", "Push enabled"], [("Device", _device)]),
    ("Ended session", ["Duration", "Page number"], []),
    ("Watched video", ["Video title", "Video quality", "Duration", "Progress", "Autoplay", "Volume"], []),
    ("Shared content", ["Share channel", "Page", "Tags"], []),
    ("Opened notification", ["Notification type", "Push enabled", "Experiment name"], []),
    ("Created playlist", ["Playlist", "Genres", "Is premium", "Seats"], []),
    ("Liked song", ["Song title", "Artist", "Genre", "Rating"], []),
    ("Exported data", ["File type", "File size bytes", "Report type", "Success", "Load time", "Duration"], []),
    ("Signed up", ["Signup source", "Plan", "Referral code", "Language", "Is trial"], []),
    ("Error shown", ["Error message", "Error code", "Page", "Retry count", "Load time"], [("Device", _device)]),
    ("Removed from cart", ["Product ID", "Product name", "Price", "Quantity", "Items in cart"], []),
    ("Started checkout", ["Amount", "Currency", "Items in cart", "Product IDs", "Coupon code"], [("Cart", _cart)]),
    ("Updated profile", ["Language", "Permissions", "Push enabled"], []),
    ("Invited teammate", ["Team ID", "Permissions", "Seats", "Plan"], []),
    ("Created dashboard", ["Dashboard ID", "Report type", "Tags", "Team ID"], []),
    ("Filtered results", ["Filters", "Results count", "Category", "Search term"], []),
    ("Rated app", ["Rating", "Comment", "Language"], []),
    ("Completed level", ["Level", "Level name", "Score", "Duration", "Lap times ms", "First time"], []),
    ("Failed level", ["Level", "Level name", "Score", "Retry count"], []),
    ("Upgraded plan", ["Plan", "Amount", "Currency", "Seats", "Payment method", "Is trial"], []),
    ("Downgraded plan", ["Plan", "Comment", "Seats"], []),
    ("Contacted support", ["Support topic", "Comment", "Plan", "Is premium"], []),
    ("Uploaded file", ["File type", "File size bytes", "Duration", "Success"], []),
    ("Enabled feature", ["Feature", "Plan", "Experiment name", "Variant"], []),
    ("Disabled feature", ["Feature", "Comment"], []),
    ("Selected rows", ["Selected rows", "Report type", "Page number"], []),
    ("Viewed pricing", ["Plan", "Currency", "Experiment name", "Variant", "Page"], []),
    ("Applied coupon", ["Coupon code", "Discount", "Amount", "Currency", "Success"], []),
    ("Logged out", ["Duration", "Page"], []),
    ("Deleted account", ["Comment", "Plan", "Seats", "Support topic"], []),
]  # fmt: skip

EVENT_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _EVENTS)
_EVENT_CUM_WEIGHTS = list(itertools.accumulate(1.0 / (k + 1) ** 1.1 for k in range(len(_EVENTS))))

# Hourly activity curve (share of the day's events per local hour).
_HOURLY = [2, 1.5, 1, 0.8, 0.7, 1, 2, 3.5, 5, 6, 6.5, 7, 7, 7, 7, 7, 7, 7.5, 8, 8.5, 8, 6.5, 5, 3.5]
_HOUR_CUM_WEIGHTS = list(itertools.accumulate(_HOURLY))
_HOURS = list(range(24))


class _EventKind:
    """Precomputed per-event-name sampling plan."""

    __slots__ = ("always", "conflictable", "name", "nested", "optional")

    def __init__(self, name: str, keys: list[str], nested: list[tuple[str, Sampler]]) -> None:
        self.name = name
        self.always: list[tuple[str, Sampler]] = [
            (k, _PROPS[k]) for k in keys if _OPTIONAL.get(k, 1.0) >= 1.0
        ]
        self.optional: list[tuple[str, Sampler, float]] = [
            (k, _PROPS[k], _OPTIONAL[k]) for k in keys if _OPTIONAL.get(k, 1.0) < 1.0
        ]
        self.nested = nested
        self.conflictable = [k for k in keys if _is_scalar_non_str(k)]


def _is_scalar_non_str(key: str) -> bool:
    probe = _PROPS[key](random.Random(0))
    return isinstance(probe, (int, float)) and not isinstance(probe, str)


_KINDS = [_EventKind(name, keys, nested) for name, keys, nested in _EVENTS]

# --------------------------------------------------------------------------- users

_OS = [
    ("Windows", "web", "Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"),
    ("Mac OS X", "web", "Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v}.1 Safari/605.1.15"),
    ("Mac OS X", "web", "Chrome", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"),
    ("Linux", "web", "Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"),
    ("iOS", "iphone", "Mobile Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v}.0 Mobile/15E148 Safari/604.1"),
    ("Android", "android", "Chrome Mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36"),
    ("Windows", "web", "Microsoft Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0"),
]  # fmt: skip
_OS_CUM = list(itertools.accumulate([30, 12, 14, 6, 20, 16, 7]))
_PLACES = [
    ("San Francisco", "California", "US"),
    ("New York", "New York", "US"),
    ("Austin", "Texas", "US"),
    ("London", "England", "GB"),
    ("Paris", "Île-de-France", "FR"),
    ("Berlin", "Land Berlin", "DE"),
    ("München", "Bavaria", "DE"),
    ("Tokyo", "Tokyo", "JP"),
    ("São Paulo", "São Paulo", "BR"),
    ("Toronto", "Ontario", "CA"),
    ("Sydney", "New South Wales", "AU"),
    ("Bengaluru", "Karnataka", "IN"),
    ("Madrid", "Madrid", "ES"),
    ("Amsterdam", "North Holland", "NL"),
]
_PLACES_CUM = list(itertools.accumulate([14, 12, 6, 10, 8, 6, 3, 7, 5, 5, 4, 8, 4, 3]))
_SCREENS = [(1920, 1080), (1440, 900), (2560, 1440), (1366, 768), (390, 844), (412, 915)]
_REFERRERS = [
    ("$direct", "$direct"),
    ("https://www.google.com/", "www.google.com"),
    ("https://news.ycombinator.com/item?id=38846281", "news.ycombinator.com"),
    ("https://www.bing.com/search?q=robotmia+export", "www.bing.com"),
    ("https://t.co/x8Yh2kPqL1", "t.co"),
    ("https://www.linkedin.com/feed/", "www.linkedin.com"),
]
_REFERRERS_CUM = list(itertools.accumulate([40, 30, 6, 8, 8, 8]))
_LIB_VERSIONS = {"web": "2.48.1", "iphone": "4.2.0", "android": "7.3.1"}
_HOSTS = ["https://app.example-music.com", "https://shop.example.com"]


@functools.lru_cache(maxsize=8)
def _user_profiles(seed: int) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The pool of users for ``seed``: (distinct_id, default properties) each."""
    rng = random.Random(f"robotmia-users:{seed}")
    os_picks = rng.choices(_OS, cum_weights=_OS_CUM, k=_N_USERS)
    place_picks = rng.choices(_PLACES, cum_weights=_PLACES_CUM, k=_N_USERS)
    ref_picks = rng.choices(_REFERRERS, cum_weights=_REFERRERS_CUM, k=_N_USERS)
    users = []
    for i in range(_N_USERS):
        os_name, lib, browser, ua = os_picks[i]
        city, region, country = place_picks[i]
        mobile = lib != "web"
        width, height = _SCREENS[4 + rng.randrange(2)] if mobile else _SCREENS[rng.randrange(4)]
        version = 118 + rng.randrange(8) if "Chrome" in ua or "Firefox" in ua else 17
        referring_domain = ref_picks[i][1]
        profile: dict[str, Any] = {
            "$os": os_name,
            "$browser": browser,
            "$browser_version": float(version),
            "$city": city,
            "$region": region,
            "mp_country_code": country,
            "$device_id": f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}-{rng.getrandbits(64):016x}",
            "$screen_width": width,
            "$screen_height": height,
            "$lib_version": _LIB_VERSIONS[lib],
            "mp_lib": lib,
            "$user_agent": ua.format(v=version),
            "$initial_referring_domain": referring_domain,
        }
        if mobile:
            profile["$app_version_string"] = f"5.{rng.randrange(12)}.{rng.randrange(4)}"
            profile["$carrier"] = ["Verizon", "T-Mobile", "Vodafone", "Orange", "NTT Docomo"][
                rng.randrange(5)
            ]
            profile["$model"] = "iPhone15,2" if lib == "iphone" else "Pixel 8"
        users.append((f"user-{i:05d}", profile))
    return tuple(users)


# --------------------------------------------------------------------------- days


def _day_offset_seconds(day: _dt.date, tz: zoneinfo.ZoneInfo) -> int:
    """The project timezone's UTC offset at local noon of ``day``, in seconds."""
    offset = _dt.datetime(day.year, day.month, day.day, 12, tzinfo=tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _conflict(rng: random.Random, props: dict[str, Any], keys: list[str]) -> None:
    """Send one normally non-string property as a string (a type conflict)."""
    candidates = [k for k in keys if k in props and props[k] is not None]
    candidates.append("$screen_width")
    key = candidates[int(rng.random() * len(candidates))]
    value = props[key]
    if isinstance(value, bool):
        props[key] = "true" if value else "false"
    elif rng.random() < 0.3:
        props[key] = "n/a"
    else:
        props[key] = str(value)


def _generate_day(
    day: _dt.date,
    events_per_day: int,
    seed: int,
    tz: zoneinfo.ZoneInfo,
    start_id: int,
    conflict_rate: float = _CONFLICT_RATE,
) -> list[dict[str, Any]]:
    """All events of one project-local day, sorted by time (deterministic)."""
    if events_per_day <= 0:
        return []
    ordinal = day.toordinal()
    rng = random.Random(f"robotmia-events:{seed}:{ordinal}")
    rnd = rng.random
    n = events_per_day
    base = (day - _EPOCH).days * _DAY
    hours = rng.choices(_HOURS, cum_weights=_HOUR_CUM_WEIGHTS, k=n)
    times: list[int | float] = [base + h * 3600 + int(rnd() * 3600) for h in hours]
    for i in range(n):
        if rnd() < _FRACTIONAL_TIME_RATE:
            times[i] += (0.25, 0.5, 0.75, 0.125)[int(rnd() * 4)]
    times.sort()
    kinds = rng.choices(_KINDS, cum_weights=_EVENT_CUM_WEIGHTS, k=n)
    users = _user_profiles(seed)
    n_users = len(users)
    processing_base = (base - _day_offset_seconds(day, tz)) * 1000
    hosts = _HOSTS
    referrers = _REFERRERS
    n_referrers = len(referrers)
    out: list[dict[str, Any]] = []
    append = out.append
    for i in range(n):
        t = times[i]
        kind = kinds[i]
        distinct_id, profile = users[int(rnd() ** 2.2 * n_users)]
        props: dict[str, Any] = {
            "time": t,
            "distinct_id": distinct_id,
            "$insert_id": f"{rng.getrandbits(60):015x}{ordinal:06x}{start_id + i:011x}",
        }
        props.update(profile)
        page = kind.name.lower().replace(" ", "-")
        props["$current_url"] = (
            f"{hosts[i & 1]}/{page}/{int(rnd() * 100_000)}?ref=nav&session={rng.getrandbits(40):010x}"
        )
        referrer = referrers[int(rnd() ** 1.5 * n_referrers)]
        props["$referrer"] = referrer[0]
        props["$referring_domain"] = referrer[1]
        props["mp_processing_time_ms"] = (
            processing_base + int((t - base) * 1000) + 80 + int(rnd() ** 6 * 400_000_000)
        )
        for key, sample in kind.always:
            props[key] = sample(rng)
        for key, sample, p in kind.optional:
            if rnd() < p:
                props[key] = sample(rng)
        for key, sample in kind.nested:
            if rnd() < 0.3:
                props[key] = sample(rng)
        for p, nested in _NESTED:
            if rnd() < p:
                props.update(nested(rng))
        r = rnd()
        if r < _NULL_RATE:
            key = kind.always[int(rnd() * len(kind.always))][0] if kind.always else "$city"
            props[key] = None
        elif r < _NULL_RATE + conflict_rate:
            _conflict(rng, props, kind.conflictable)
        append({"event": kind.name, "properties": props})
    return out


def iter_generated_events(
    from_date: DateLike,
    to_date: DateLike,
    *,
    events_per_day: int = 1000,
    seed: int = 0,
    project_timezone: str = "UTC",
    start_id: int = 0,
    conflict_rate: float = _CONFLICT_RATE,
) -> Iterator[dict[str, Any]]:
    """Yield generated export lines for each project-local day of a range.

    Days come in order, and the events of a day are sorted by ``properties.time``
    (project-local seconds). A day's events depend only on ``(seed, day,
    events_per_day, start_id)``, so a day generated alone equals the same day
    inside any range. ``start_id`` offsets the per-day sequence number embedded in
    every ``$insert_id``. ``conflict_rate`` is the share of events that send one
    property with a conflicting type (0 gives a "clean" export). ``project_timezone`` only shapes metadata
    (``mp_processing_time_ms``, a true UTC epoch in ms); it never changes ``time``.

    Example:
        >>> evs = list(iter_generated_events("2024-01-01", "2024-01-02", events_per_day=3))
        >>> len(evs), sorted({e["properties"]["time"] // 86400 for e in evs})
        (6, [19723, 19724])
    """
    start = _to_date(from_date, "from_date")
    end = _to_date(to_date, "to_date")
    if start > end:
        raise ValueError(f"from_date {start} is after to_date {end}")
    if events_per_day < 0:
        raise ValueError(f"events_per_day must be >= 0, got {events_per_day}")
    tz = _check_timezone(project_timezone)
    day = start
    while day <= end:
        yield from _generate_day(day, events_per_day, seed, tz, start_id, conflict_rate)
        day += _dt.timedelta(days=1)


def generate_events(
    n: int,
    *,
    from_date: DateLike = "2024-01-01",
    days: int = 14,
    seed: int = 0,
    project_timezone: str = "UTC",
) -> list[dict[str, Any]]:
    """Generate exactly ``n`` events spread over ``days`` days from ``from_date``.

    Each day gets ``ceil(n / days)`` events; the last days are cut so that exactly
    ``n`` are returned (the events of a day stay a prefix of that day's events).

    Example:
        >>> evs = generate_events(10, days=2, seed=1)
        >>> len(evs), evs == generate_events(10, days=2, seed=1)
        (10, True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if n == 0:
        return []
    start = _to_date(from_date, "from_date")
    per_day = math.ceil(n / days)
    it = iter_generated_events(
        start,
        start + _dt.timedelta(days=days - 1),
        events_per_day=per_day,
        seed=seed,
        project_timezone=project_timezone,
    )
    return list(itertools.islice(it, n))


_BIG_INT = "18446744073709551616"  # 2**64: beyond int64 and uint64
_HUGE_INT = "100000000000000000000000000000"  # 1e29, as an integer


def hostile_lines(day: DateLike = "2024-01-01", *, depth: int = 1000) -> dict[str, bytes]:
    """Raw export lines that stress a reader, by name: serve them with ``ExportServer``.

    Each is one JSON object line (no newline) that ``orjson`` cannot write: an
    event at 12:00 project-local time of ``day``, with ``distinct_id`` ``"hostile"``
    and ``$insert_id`` ``"hostile-<name>"``. The names:

    - ``deep_list``, ``deep_object``: ``properties.v`` nested ``depth`` levels deep;
    - ``inf_top``, ``inf_in_object``, ``inf_in_list``: ``1e400`` (infinity as a double)
      as a property, inside an object, inside a list;
    - ``big_int_property``, ``big_int_in_object``: ``2**64`` as a property, ``10**29``
      inside an object;
    - ``big_int_event``, ``int_event``, ``float_event``, ``null_event``,
      ``bool_event``, ``list_event``, ``object_event``: a non-string ``event``
      (``2**64``, ``42``, ``1.5``, ``null``, ``true``, ``["a"]``, ``{"a": 1}``).

    Example:
        >>> lines = hostile_lines("2024-01-01", depth=3)
        >>> lines["deep_list"]
        b'{"event":"hostile","properties":{"time":1704110400,"distinct_id":"hostile","$insert_id":"hostile-deep_list","v":[[[1]]]}}'
        >>> lines["big_int_event"][:31]
        b'{"event":18446744073709551616,"'
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    start = _to_date(day, "day")
    t = (start - _EPOCH).days * _DAY + 12 * 3600
    extras = {
        "deep_list": ("hostile", '"v":' + "[" * depth + "1" + "]" * depth),
        "deep_object": ("hostile", '"v":' + '{"a":' * depth + "1" + "}" * depth),
        "inf_top": ("hostile", '"x":1e400'),
        "inf_in_object": ("hostile", '"o":{"x":1e400}'),
        "inf_in_list": ("hostile", '"l":[1,1e400]'),
        "big_int_property": ("hostile", f'"n":{_BIG_INT}'),
        "big_int_in_object": ("hostile", f'"o":{{"n":{_HUGE_INT}}}'),
        "big_int_event": (_BIG_INT, None),
        "int_event": ("42", None),
        "float_event": ("1.5", None),
        "null_event": ("null", None),
        "bool_event": ("true", None),
        "list_event": ('["a"]', None),
        "object_event": ('{"a":1}', None),
    }
    out: dict[str, bytes] = {}
    for name, (event, extra) in extras.items():
        event_json = '"hostile"' if event == "hostile" else event
        props = f'"time":{t},"distinct_id":"hostile","$insert_id":"hostile-{name}"'
        if extra is not None:
            props += "," + extra
        out[name] = f'{{"event":{event_json},"properties":{{{props}}}}}'.encode()
    return out


def write_export_file(
    path: str | os.PathLike[str],
    events: Iterable[dict[str, Any]],
    *,
    gzip: bool = True,
    compresslevel: int = 6,
) -> int:
    """Write ``events`` as an export file (JSONL, gzip-compressed if ``gzip``).

    Lines are compact orjson, each ending in ``"\\n"``. The file appears atomically
    (written to a temporary file in the same directory, then renamed), and the gzip
    header carries no timestamp, so equal events give byte-identical files.
    Returns the number of lines written.

    Example:
        >>> import tempfile, pathlib
        >>> d = tempfile.mkdtemp()
        >>> write_export_file(pathlib.Path(d) / "x.jsonl.gz", generate_events(5))
        5
    """
    count = 0
    dumps = orjson.dumps
    with replacing(Path(path)) as tmp, tmp.open("wb") as raw:
        sink: Any
        sink = (
            _gzip.GzipFile(
                filename="", fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0
            )
            if gzip
            else raw
        )
        try:
            it = iter(events)
            while True:
                batch = list(itertools.islice(it, 2048))
                if not batch:
                    break
                sink.write(b"\n".join(map(dumps, batch)) + b"\n")
                count += len(batch)
        finally:
            if sink is not raw:
                sink.close()
        raw.flush()
        os.fsync(raw.fileno())
    return count
