"""Redaction masks a registered secret wherever it stands as itself, and a
long one wherever it occurs; it never mangles the words around it."""

from __future__ import annotations

import contextlib
import string
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from robotmia_frames import _redact
from robotmia_frames._redact import ANYWHERE, MASK, redact, register_secret

_TOKEN = st.text(string.ascii_letters + string.digits + "-", min_size=3, max_size=40)
_FILLER = st.text(string.printable, max_size=30)


@contextlib.contextmanager
def _registered(*secrets: str) -> Iterator[None]:
    """Register ``secrets`` for one check, then forget them again, so that the
    random secrets drawn here never mask other tests' messages."""
    with _redact._lock:
        saved = set(_redact._secrets), _redact._pattern
    try:
        for secret in secrets:
            register_secret(secret)
        yield
    finally:
        with _redact._lock:
            _redact._secrets.clear()
            _redact._secrets.update(saved[0])
            _redact._pattern = saved[1]


@given(secret=_TOKEN, before=_FILLER, after=_FILLER)
def test_a_secret_between_separators_never_survives(secret: str, before: str, after: str) -> None:
    text = f"{before} {secret}&{secret}\n'{secret}'={after}"
    with _registered(secret):
        out = redact(text)
    assert f" {secret}&" not in out
    assert f"'{secret}'" not in out
    assert out.count(MASK) >= 3


@given(secret=st.text(string.ascii_letters + string.digits, min_size=ANYWHERE, max_size=40))
def test_a_long_secret_is_masked_even_inside_a_word(secret: str) -> None:
    with _registered(secret):
        assert secret not in redact(f"x{secret}y and {secret}_tail")


def test_a_short_secret_does_not_mangle_words_that_contain_it() -> None:
    with _registered("secret", "..."):
        assert redact("Check ROBOTMIA_API_SECRET; api_secret= is empty") == (
            "Check ROBOTMIA_API_SECRET; api_secret= is empty"
        )
        assert redact("api_secret=secret") == f"api_secret={MASK}"
        assert redact("Basic secret.") == f"Basic {MASK}."
