"""What a POST did, kept for the page it redirects to (``?outcome=KEY``), then forgotten.

A redirect after a POST cannot carry the message in its URL without letting any link show
any text on the studio's pages, so the text stays here, under a random key, once.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

KEPT = 100


@dataclass(frozen=True)
class Outcome:
    """A message for the next page.

    Attributes:
        ok: True: it was done (shown with role ``status``); False: refused (role ``alert``).
        text: What happened, or why not.
    """

    ok: bool
    text: str


class Outcomes:
    """The last ``KEPT`` outcomes, each read at most once."""

    def __init__(self) -> None:
        """An empty store."""
        self._kept: OrderedDict[str, Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, outcome: Outcome) -> str:
        """Keep ``outcome``; the key the next page asks for it with."""
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._kept[key] = outcome
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return key

    def take(self, key: str | None) -> Outcome | None:
        """The outcome kept under ``key`` (None when unknown); forgotten once taken."""
        if not key:
            return None
        with self._lock:
            return self._kept.pop(key, None)
