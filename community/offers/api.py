"""Offers through the API: owners and admins write, managers read. Uploaded images are served
publicly at /media/{key}."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import JSONBody, PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.errors import Invalid, NotFound
from community.offers import service
from community.offers.models import OfferStatus
from community.offers.schemas import (
    OfferCreate,
    OfferOut,
    OfferSummary,
    OfferUpdate,
    given,
    offer_out,
    offer_summary,
)
from community.offers.storage import Storage, storage_for
from community.web import Cursor, Db, ObjectId, Page, PageLimit, page_of

# Room for the multipart envelope around a full-size image; a bigger body is refused unread.
UPLOAD_BODY_MAX = service.MAX_IMAGE_BYTES + 64 * 1024
TOO_BIG = f"an image may be at most {service.MAX_IMAGE_BYTES // (1024 * 1024)} MB"


async def provide_storage(state: State) -> Storage:
    return storage_for(state.settings)


Files = NamedDependency[Storage]
StatusFilter = Annotated[
    Literal["draft", "published", "archived"] | None, QueryParameter(description="Only offers in this status.")
]


def allow_local_http(state: State) -> bool:
    # http://localhost destinations are for trying things out, never in production.
    return not state.settings.is_production


def drop_files(storage: Storage, *keys: str | None) -> BackgroundTask | None:
    """Delete replaced files once the response is on its way, which is after the commit (a
    failed commit never reaches the response, so its files stay)."""
    wanted = [key for key in keys if key]

    async def drop() -> None:
        for key in wanted:
            await storage.delete(key)

    return BackgroundTask(drop) if wanted else None


async def read_image(request: Request, field: str) -> bytes:
    """The uploaded bytes: the one file of a multipart form, or the raw body. What they are is
    judged by the service from the bytes themselves."""
    try:
        if request.content_type[0] == RequestEncodingType.MULTI_PART:
            form = await request.form()
            files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            if len(files) != 1:
                raise Invalid("send one image file in the form (or the image itself as the body)", field=field)
            return await files[0].read()
        return await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            raise Invalid(TOO_BIG, field=field) from None
        raise Invalid("the multipart form could not be read; send one image file", field=field) from None
    except UnicodeDecodeError:  # a non-file form part holding binary
        raise Invalid("send the image as a file part (with a filename) or as the body", field=field) from None


@dataclass
class ImageUpload(Operation):
    """The upload's body in the API document: the handler reads it itself, so it can take a
    multipart form or the raw bytes."""

    def __post_init__(self) -> None:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        self.request_body = RequestBody(
            required=True,
            description=(
                f"A PNG, JPEG or WebP image of at most {service.MAX_IMAGE_BYTES // (1024 * 1024)} MB, "
                "as a multipart form with one file or as the raw body. Its type is read from its "
                "bytes, never from a file name or a declared type."
            ),
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.OBJECT, properties={"file": binary}, required=["file"])
                ),
                **{
                    media: OpenAPIMediaType(schema=binary)
                    for media in ("image/png", "image/jpeg", "image/webp", "application/octet-stream")
                },
            },
        )


class OffersController(Controller):
    path = "/communities/{community_id:int}/offers"
    tags = ["offers"]
    dependencies = {**COMMUNITY_GUARDS, "storage": Provide(provide_storage)}

    @get("/", summary="Offers, oldest first (keyset pages), with how many people hold each now")
    async def list_offers(
        self,
        member: StaffMember,
        db: Db,
        storage: Files,
        after: Cursor = None,
        limit: PageLimit = 50,
        status: StatusFilter = None,
    ) -> Page[OfferSummary]:
        offers = await service.list_offers(
            db, member.community_id, after=after, limit=limit, status=OfferStatus(status) if status else None
        )
        holders = await service.holder_counts(db, member.community_id, [o.id for o in offers])
        return page_of([offer_summary(o, storage, holders[o.id]) for o in offers], limit, lambda item: item.id)

    @post("/", status_code=201, summary="Create an offer (a draft)")
    async def create_offer(
        self, data: JSONBody[OfferCreate], editor: StaffMember, db: Db, storage: Files, state: State
    ) -> OfferOut:
        offer = await service.create_offer(
            db, editor.community_id, given(data), allow_local_http=allow_local_http(state)
        )
        return offer_out(offer, storage)

    @get("/{offer_id:int}", summary="One offer")
    async def read_offer(self, offer_id: ObjectId, member: StaffMember, db: Db, storage: Files) -> OfferOut:
        return offer_out(await service.get_offer(db, member.community_id, offer_id), storage)

    @patch("/{offer_id:int}", summary="Change an offer's fields (only those sent)")
    async def update_offer(
        self, offer_id: ObjectId, data: JSONBody[OfferUpdate], editor: StaffMember, db: Db, storage: Files, state: State
    ) -> OfferOut:
        offer = await service.update_offer(
            db, editor.community_id, offer_id, given(data), allow_local_http=allow_local_http(state)
        )
        return offer_out(offer, storage)

    @delete("/{offer_id:int}", status_code=204, summary="Delete an offer nobody ever held (otherwise archive it)")
    async def delete_offer(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> Response[None]:
        keys = await service.delete_offer(db, editor.community_id, offer_id)
        return Response(None, status_code=204, background=drop_files(storage, *keys))

    @post("/{offer_id:int}/publish", status_code=200, summary="Publish (a paid offer needs Stripe charges enabled)")
    async def publish(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> OfferOut:
        return offer_out(await service.set_status(db, editor.community_id, offer_id, OfferStatus.published), storage)

    @post("/{offer_id:int}/archive", status_code=200, summary="Archive: no new sales, holders keep their access")
    async def archive(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> OfferOut:
        return offer_out(await service.set_status(db, editor.community_id, offer_id, OfferStatus.archived), storage)

    @post("/{offer_id:int}/unpublish", status_code=200, summary="Back to draft, while nobody holds the offer")
    async def unpublish(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> OfferOut:
        return offer_out(await service.set_status(db, editor.community_id, offer_id, OfferStatus.draft), storage)

    @put(
        "/{offer_id:int}/thumbnail",
        summary="Upload the thumbnail (PNG, JPEG or WebP)",
        operation_class=ImageUpload,
        request_max_body_size=UPLOAD_BODY_MAX,
    )
    async def put_thumbnail(
        self, offer_id: ObjectId, request: Request, editor: StaffMember, db: Db, storage: Files
    ) -> Response[OfferOut]:
        return await _put_image(request, db, storage, editor.community_id, offer_id, "thumbnail")

    @put(
        "/{offer_id:int}/cover",
        summary="Upload the cover image (PNG, JPEG or WebP)",
        operation_class=ImageUpload,
        request_max_body_size=UPLOAD_BODY_MAX,
    )
    async def put_cover(
        self, offer_id: ObjectId, request: Request, editor: StaffMember, db: Db, storage: Files
    ) -> Response[OfferOut]:
        return await _put_image(request, db, storage, editor.community_id, offer_id, "cover")

    @delete("/{offer_id:int}/thumbnail", status_code=204, summary="Remove the thumbnail")
    async def delete_thumbnail(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> Response[None]:
        old = await service.clear_image(db, editor.community_id, offer_id, "thumbnail")
        return Response(None, status_code=204, background=drop_files(storage, old))

    @delete("/{offer_id:int}/cover", status_code=204, summary="Remove the cover image")
    async def delete_cover(self, offer_id: ObjectId, editor: StaffMember, db: Db, storage: Files) -> Response[None]:
        old = await service.clear_image(db, editor.community_id, offer_id, "cover")
        return Response(None, status_code=204, background=drop_files(storage, old))


async def _put_image(
    request: Request, db: AsyncSession, storage: Storage, community_id: int, offer_id: int, slot: str
) -> Response[OfferOut]:
    data = await read_image(request, slot)
    offer, old = await service.set_image(db, storage, community_id, offer_id, slot, data)
    return Response(offer_out(offer, storage), background=drop_files(storage, old))


MediaKey = Annotated[str, PathParameter(max_length=100, description="An image's key, as in an offer's image URL.")]
# A key names the same bytes forever, so browsers and proxies may keep them for a year.
MEDIA_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    # Only images are stored; should a browser ever open one as a document, it runs nothing.
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


class MediaController(Controller):
    path = "/media"
    tags = ["media"]
    include_in_schema = True
    dependencies = {"storage": Provide(provide_storage)}

    @get("/{key:str}", summary="An uploaded image (public; its key changes with its content)")
    async def media(self, key: MediaKey, storage: Files) -> Response[bytes]:
        stored = await storage.get(key)
        if stored is None:
            raise NotFound("no such image")
        return Response(stored.data, media_type=stored.content_type, headers={**MEDIA_HEADERS, "ETag": f'"{key}"'})
