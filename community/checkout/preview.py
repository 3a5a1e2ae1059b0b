"""The owner's look at an offer page before buyers can see it: a short-lived signed token in the
URL of the landing and checkout pages, minted by the console for staff.

The offer pages answer on the community's own origin, where no platform session exists (the
session cookie is host-only on the platform's origin), so the console cannot vouch for the
visitor there with a cookie. The token names one offer and an expiry, signed with a key kept
for this purpose alone. It opens that offer's pages for a few minutes and nothing else: no
checkout can be completed with it (the checkout's POST serves published offers only), and
whoever reads it (the owner's own custom code runs on the page) can do no more than look.
"""

from __future__ import annotations

import base64
import hmac
import time
from hashlib import blake2b

from community.web import derived_key

PREVIEW_SECONDS = 15 * 60
QUERY = "preview"  # the query parameter that carries it


def _sign(secret_key: str, payload: str) -> str:
    digest = blake2b(payload.encode(), key=derived_key(secret_key, "offer-preview"), digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(secret_key: str, *, community_id: int, offer_id: int, now: float | None = None) -> str:
    """A token that opens this offer's pages until PREVIEW_SECONDS from now."""
    expires = int((time.time() if now is None else now) + PREVIEW_SECONDS)
    payload = f"{community_id}.{offer_id}.{expires}"
    return f"{offer_id}.{expires}.{_sign(secret_key, payload)}"


def opens(secret_key: str, token: str | None, *, community_id: int, offer_id: int, now: float | None = None) -> bool:
    """The token is this offer's, unexpired and signed by us."""
    if not token or len(token) > 200 or token.count(".") != 2:
        return False
    token_offer, expires, signature = token.split(".")
    if not (token_offer.isdigit() and expires.isdigit()) or int(token_offer) != offer_id:
        return False
    expected = _sign(secret_key, f"{community_id}.{offer_id}.{expires}")
    # As bytes: compare_digest refuses str with non-ASCII characters, which a URL may carry.
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return False
    return int(expires) > (time.time() if now is None else now)
