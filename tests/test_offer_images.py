"""Offer images through the API: thumbnail and cover uploads judged by their bytes (PNG, JPEG,
WebP; anything else refused naming the field), served publicly under a key that changes with
the content, removed with the offer or on request (the rest of offers: test_offers.py)."""

from __future__ import annotations

import httpx
import pytest

from community.offers import service
from community.offers.api import UPLOAD_BODY_MAX
from tests.conftest import Account
from tests.images import GIF, jpeg_bytes, media_files, png_bytes, webp_bytes
from tests.test_offers import API, PAID, Offers, field_of, hold, offer_rows, offers

__all__ = ["offers"]  # a pytest fixture from test_offers, used by name


# ---------------------------------------------------------------- images


async def test_upload_images_and_serve_them_publicly(client: httpx.AsyncClient, offers: Offers, settings) -> None:
    offer = await offers.create("Pass", **PAID)
    png, jpeg, webp = png_bytes(), jpeg_bytes(), webp_bytes()

    raw = await offers.upload(offer["id"], "thumbnail", png, headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    thumbnail_url = raw.json()["thumbnail_url"]
    assert thumbnail_url.startswith(settings.base_url + "/media/") and thumbnail_url.endswith(".png")
    form = await offers.upload(offer["id"], "cover", b"", files={"file": ("cover.jpg", jpeg, "image/jpeg")})
    assert form.status_code == 200, form.text
    cover_url = form.json()["cover_url"]
    assert cover_url.endswith(".jpg") and form.json()["thumbnail_url"] == thumbnail_url
    assert (await offers.get(offer["id"]))["cover_url"] == cover_url

    for url, data, content_type in [(thumbnail_url, png, "image/png"), (cover_url, jpeg, "image/jpeg")]:
        served = await client.get(url)  # no token: media is public
        assert served.status_code == 200
        assert served.content == data
        assert served.headers["content-type"] == content_type
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["etag"]

    # The type is read from the bytes: a WebP declared as anything still is a WebP.
    replaced = await offers.upload(offer["id"], "thumbnail", webp, headers={"content-type": "application/octet-stream"})
    assert replaced.status_code == 200, replaced.text
    new_url = replaced.json()["thumbnail_url"]
    assert new_url.endswith(".webp") and new_url != thumbnail_url
    assert (await client.get(new_url)).content == webp
    assert (await client.get(thumbnail_url)).status_code == 404  # the replaced file is gone

    # The same bytes uploaded again get a new key: no key is ever shared between uploads.
    again = await offers.upload(offer["id"], "cover", jpeg)
    assert again.json()["cover_url"] != cover_url
    assert (await client.get(again.json()["cover_url"])).content == jpeg


async def test_uploads_are_judged_by_their_bytes(offers: Offers, sessions, settings) -> None:
    offer = await offers.create("Pass", **PAID)
    before, files = await offer_rows(sessions), media_files(settings)
    too_big = png_bytes() + b"\x00" * (service.MAX_IMAGE_BYTES + 1 - len(png_bytes()))
    cases = [
        ("thumbnail", {"files": {"file": ("picture.png", GIF, "image/png")}}),  # a GIF named .png
        ("thumbnail", {"content": GIF, "headers": {"content-type": "image/png"}}),
        ("cover", {"content": b"<svg xmlns='http://www.w3.org/2000/svg'/>", "headers": {"content-type": "image/svg+xml"}}),
        ("cover", {"content": b""}),
        ("cover", {"content": b"\x89PNG\r\n\x1a\n"}),  # a signature and nothing after it
        ("cover", {"content": b"RIFF\x00\x00\x00\x00WAVEfmt "}),  # RIFF, but audio
        ("thumbnail", {"content": too_big}),
        ("thumbnail", {"files": {"file": ("big.png", too_big, "image/png")}}),
        ("thumbnail", {"content": b"\x89PNG" + b"\x00" * UPLOAD_BODY_MAX}),  # refused before it is read
        ("thumbnail", {"files": {"a": ("a.png", png_bytes(), "image/png"), "b": ("b.png", png_bytes(), "image/png")}}),
        ("thumbnail", {"files": {"file": (None, "not a file")}}),  # a plain form field
        ("thumbnail", {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("thumbnail", {"content": b"abc", "headers": {"content-type": "multipart/form-data"}}),  # no boundary
        (
            "thumbnail",
            {
                "content": b"--x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\xff\xfe\x00\r\n--x--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
        ),  # binary in a non-file part
    ]
    for slot, kwargs in cases:
        response = await offers.upload(offer["id"], slot, b"", **kwargs)
        assert response.status_code == 422, (slot, str(kwargs)[:120], response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field_of(response) == [slot], response.text
    too_big_response = await offers.upload(offer["id"], "thumbnail", too_big)
    assert "5 MB" in too_big_response.json()["detail"]
    assert await offer_rows(sessions) == before
    assert media_files(settings) == files
    # At the limit exactly, an image is taken.
    at_limit = png_bytes() + b"\x00" * (service.MAX_IMAGE_BYTES - len(png_bytes()))
    assert (await offers.upload(offer["id"], "thumbnail", at_limit)).status_code == 200


async def test_removing_images(client: httpx.AsyncClient, offers: Offers, settings) -> None:
    offer = await offers.create("Pass", **PAID)
    thumbnail_url = (await offers.upload(offer["id"], "thumbnail", png_bytes())).json()["thumbnail_url"]
    cover_url = (await offers.upload(offer["id"], "cover", webp_bytes())).json()["cover_url"]
    removed = await offers.request("DELETE", f"/{offer['id']}/thumbnail")
    assert removed.status_code == 204
    assert (await offers.get(offer["id"]))["thumbnail_url"] is None
    assert (await client.get(thumbnail_url)).status_code == 404
    assert (await offers.request("DELETE", f"/{offer['id']}/thumbnail")).status_code == 204  # nothing left: fine
    # Deleting the offer takes its images with it.
    assert (await client.get(cover_url)).status_code == 200
    assert (await offers.request("DELETE", f"/{offer['id']}")).status_code == 204
    assert (await client.get(cover_url)).status_code == 404


async def test_images_of_a_held_offer_survive_a_refused_delete(client: httpx.AsyncClient, offers: Offers, sessions, owner: Account) -> None:
    offer = await offers.create("Pass", **PAID)
    cover_url = (await offers.upload(offer["id"], "cover", png_bytes())).json()["cover_url"]
    await hold(sessions, offers.community_id, offer["id"], owner.id)
    assert (await offers.request("DELETE", f"/{offer['id']}")).status_code == 409
    assert (await client.get(cover_url)).status_code == 200


@pytest.mark.parametrize(
    "key",
    [
        "nothing.png",
        "../secret_key",
        "..%2F..%2Fsecret_key",
        "0" * 32 + "-" + "0" * 12 + ".png",  # well formed, never stored
        "0" * 32 + "-" + "0" * 12 + ".gif",
        "x" * 300,
    ],
)
async def test_unknown_media_answers_404(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get(f"/media/{key}")
    assert response.status_code == 404


async def test_media_route_is_in_the_api_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert "get" in document["paths"]["/media/{key}"]
    upload = document["paths"][f"{API}/communities/{{community_id}}/offers/{{offer_id}}/thumbnail"]["put"]
    assert {"multipart/form-data", "image/png", "image/jpeg", "image/webp"} <= set(upload["requestBody"]["content"])
