"""The offer editor in the console: creating an offer, then one page per section of the help
pages (main information, thumbnail and cover, confirmation email, purchase destination, resell
rights, custom code, landing page, status). Community permissions are their own screen
(offers/access_pages.py); the list of offers is the console's (console/offers.py).

Every save reads the posted section into the API's own input struct (`OfferUpdate`, with
amounts read in major units by editor_forms), calls the same service function as the API, and
on a refusal shows the form again with the message next to its field. Owners and admins save;
managers see the same pages read-only (a save from them is refused as in the API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.errors import DomainError, Forbidden, NotFound
from community.forms import FORM, FormBody, Posted, read_input
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.mail.owner_templates import (
    CONFIRMATION_VARIABLES,
    check_template,
    render_confirmation,
)
from community.markdown import render_markdown
from community.money import MINIMUM_CHARGE, format_amount
from community.offers import editor_forms as forms
from community.offers import service
from community.offers.api import (
    UPLOAD_BODY_MAX,
    Files,
    allow_local_http,
    drop_files,
    provide_storage,
    read_image,
)
from community.offers.models import Destination, Offer, OfferStatus, Pricing
from community.offers.schemas import OfferCreate, OfferUpdate, given
from community.offers.storage import Storage
from community.web import Db, ObjectId

SLOTS = {"thumbnail": "Thumbnail", "cover": "Cover image"}


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins change offers")


# The API's field -> the input that stands for it on a page, where their names differ.
INPUT_OF = {"destination": "custom_link"}


def shown_errors(exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    """The refusal next to its field when this page has it, else above the form (with the
    field's name, so a rule about another section still says what it is about)."""
    if exc.field in fields:
        return {INPUT_OF.get(exc.field, exc.field): exc.detail}
    return {FORM: f"{exc.field}: {exc.detail}" if exc.field else exc.detail}


def _sample_access_url(state: State, frame: Frame, offer: Offer) -> str:
    if offer.destination is Destination.custom_url and offer.destination_url:
        return offer.destination_url
    return f"{state.settings.base_url}/communities/{frame.community.id}"


# One editor section: its template, what the page shows of an offer, how a posted form becomes
# the API's fields, and the fields it has (a refusal about another field shows above the form).
SectionForm = Callable[[Offer], Posted]
SectionFields = Callable[[Posted, Offer], dict[str, Any]]

SECTIONS: dict[str, tuple[str, SectionForm, SectionFields, tuple[str, ...]]] = {
    "main": (
        "offers/main.html", forms.main_form, lambda form, offer: forms.main_fields(form),
        ("title", "slug", "description", "pricing", "currency", "amount", "old_amount", "interval_months",
         "trial_days", "trial_requires_card", "access_days"),
    ),
    "email": (
        "offers/email.html", forms.email_form, lambda form, offer: forms.email_fields(form),
        ("confirmation_subject", "confirmation_body"),
    ),
    "destination": (
        "offers/destination.html", forms.destination_form, lambda form, offer: forms.destination_fields(form),
        ("destination", "destination_url"),
    ),
    "resell": (
        "offers/resell.html", forms.resell_form, lambda form, offer: forms.resell_fields(form, offer.currency),
        ("resell_enabled", "resell_commission_bps", "resell_commission_flat", "resell_earns", "resell_earn_months",
         "resell_window_days", "resell_hold_days", "resell_min_payout", "resell_description"),
    ),
    "code": (
        "offers/code.html", forms.code_form, lambda form, offer: forms.code_fields(form),
        ("checkout_code_head", "checkout_code_body"),
    ),
    "landing": (
        "offers/landing.html", forms.landing_form, lambda form, offer: forms.landing_fields(form),
        ("landing_page.enabled", "landing_page.headline", "landing_page.body", "landing_page.call_to_action"),
    ),
}  # fmt: skip

SAVED = {
    "main": "Main information saved.",
    "email": "Confirmation email saved.",
    "destination": "Purchase destination saved.",
    "resell": "Resell rights saved.",
    "code": "Custom code saved.",
    "landing": "Landing page saved.",
}


class OfferEditorPages(Controller):
    path = "/dashboard/communities/{community_id:int}/offers"
    include_in_schema = False
    dependencies = {**CONSOLE_DEPENDENCIES, "storage": Provide(provide_storage)}

    # ------------------------------------------------------------ creating

    @get("/new")
    async def new(self, frame: CurrentFrame) -> Template:
        _editor(frame)
        return self._new_page(frame, Posted({"pricing": "one_time", "interval_months": "1"}))

    @post("/new")
    async def create(self, frame: CurrentFrame, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            fields = given(read_input(forms.new_fields(form, frame.community.default_currency), OfferCreate))
            async with db.begin_nested():  # a refusal leaves nothing half-written
                offer = await service.create_offer(db, frame.community.id, fields, allow_local_http=allow_local_http(state))
        except DomainError as exc:
            errors = shown_errors(exc, ("title", "slug", "pricing", "amount", "interval_months"))
            return self._new_page(frame, form, errors, exc.status_code)
        flash(request, f"“{offer.title}” is created as a draft. Fill in its sections, then publish it.", "success")
        return Redirect(f"{frame.base}/offers/{offer.id}", status_code=303)

    @staticmethod
    def _new_page(frame: Frame, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        currency = frame.community.default_currency
        return console_page(
            "offers/new.html", frame, "offers", form=form, errors=errors or {}, status_code=status_code,
            currency=currency, minimum=forms.minimum_charge(currency),
            pricing_choices=forms.PRICING_CHOICES, interval_choices=forms.INTERVAL_CHOICES,
        )

    # ------------------------------------------------------------ text sections

    async def _show(self, key: str, frame: Frame, db: Db, state: State, offer_id: int) -> Template:
        offer = await service.get_offer(db, frame.community.id, offer_id)
        form_of = SECTIONS[key][1]
        return await self._section_page(key, frame, db, state, offer, form_of(offer))

    async def _save(
        self, key: str, frame: Frame, data: dict[str, Any], request: Request, db: Db, state: State, offer_id: int
    ) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        _, _, fields_of, fields = SECTIONS[key]
        offer = await service.get_offer(db, frame.community.id, offer_id)
        if form.text("action") == "preview":  # show the posted text rendered, save nothing
            return await self._section_page(key, frame, db, state, offer, form, previewing=True)
        try:
            update = given(read_input(fields_of(form, offer), OfferUpdate))
            async with db.begin_nested():
                await service.update_offer(db, frame.community.id, offer_id, update, allow_local_http=allow_local_http(state))
        except DomainError as exc:
            await db.refresh(offer)  # the page shows the offer as saved, the form as typed
            return await self._section_page(key, frame, db, state, offer, form, shown_errors(exc, fields), exc.status_code)
        flash(request, SAVED[key], "success")
        return Redirect(f"{frame.base}/offers/{offer_id}{'' if key == 'main' else '/' + key}", status_code=303)

    async def _section_page(
        self, key: str, frame: Frame, db: Db, state: State, offer: Offer, form: Posted,
        errors: dict[str, str] | None = None, status_code: int = 200, *, previewing: bool = False,
    ) -> Template:
        errors = dict(errors or {})
        extra: dict[str, Any] = {}
        if key == "main":
            extra = {
                "pricing_choices": forms.PRICING_CHOICES, "interval_choices": forms.INTERVAL_CHOICES,
                "access_choices": forms.ACCESS_CHOICES, "currency_choices": [(code, code) for code in sorted(MINIMUM_CHARGE)],
                "minimums": {code: format_amount(amount, code) for code, amount in MINIMUM_CHARGE.items()},
                "held": await service.has_holders(db, frame.community.id, offer.id),
                "pages_origin": state.settings.pages_origin(frame.community.slug),
            }
        elif key == "email":
            extra = self._email_preview(frame, state, offer, form, errors)
        elif key == "landing":
            extra = {"body_html": render_markdown(form.text("landing_page.body") or offer.description)}
        elif key == "code":
            extra = {"pages_origin": state.settings.pages_origin(frame.community.slug)}
        elif key == "resell":
            extra = {"commission_choices": forms.COMMISSION_CHOICES, "earns_choices": forms.EARNS_CHOICES}
        template = SECTIONS[key][0]
        return console_page(
            template, frame, "offers", offer=offer, editor_section=key, form=form, errors=errors,
            status_code=status_code, previewing=previewing, **extra,
        )

    @staticmethod
    def _email_preview(frame: Frame, state: State, offer: Offer, form: Posted, errors: dict[str, str]) -> dict[str, Any]:
        """The email as a buyer would get it, from the text on the page, through the sandboxed
        renderer the purchase email uses, with sample values."""
        subject, body = form.text("confirmation_subject"), form.text("confirmation_body")
        for name, source in (("confirmation_subject", subject), ("confirmation_body", body)):
            if name not in errors:
                try:
                    check_template(source, name)
                except DomainError as exc:
                    errors[name] = exc.detail
        if errors:
            return {"variables": CONFIRMATION_VARIABLES, "preview": None}
        variables = forms.sample_variables(offer, frame.community.name, _sample_access_url(state, frame, offer))
        rendered = render_confirmation(subject, body, variables, fallback_subject=offer.title)
        return {"variables": CONFIRMATION_VARIABLES, "preview": rendered, "samples": variables}

    @get("/{offer_id:int}")
    async def main(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("main", frame, db, state, offer_id)

    @post("/{offer_id:int}")
    async def save_main(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("main", frame, data, request, db, state, offer_id)

    @get("/{offer_id:int}/email")
    async def email(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("email", frame, db, state, offer_id)

    @post("/{offer_id:int}/email")
    async def save_email(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("email", frame, data, request, db, state, offer_id)

    @get("/{offer_id:int}/destination")
    async def destination(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("destination", frame, db, state, offer_id)

    @post("/{offer_id:int}/destination")
    async def save_destination(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("destination", frame, data, request, db, state, offer_id)

    @get("/{offer_id:int}/resell")
    async def resell(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("resell", frame, db, state, offer_id)

    @post("/{offer_id:int}/resell")
    async def save_resell(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("resell", frame, data, request, db, state, offer_id)

    @get("/{offer_id:int}/code")
    async def code(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("code", frame, db, state, offer_id)

    @post("/{offer_id:int}/code")
    async def save_code(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("code", frame, data, request, db, state, offer_id)

    @get("/{offer_id:int}/landing")
    async def landing(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, state: State) -> Template:
        return await self._show("landing", frame, db, state, offer_id)

    @post("/{offer_id:int}/landing")
    async def save_landing(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db, state: State) -> Template | Redirect:
        return await self._save("landing", frame, data, request, db, state, offer_id)

    # ------------------------------------------------------------ thumbnail and cover

    @get("/{offer_id:int}/images")
    async def images(self, frame: CurrentFrame, offer_id: ObjectId, db: Db, storage: Files) -> Template:
        offer = await service.get_offer(db, frame.community.id, offer_id)
        return self._images_page(frame, offer, storage)

    @post("/{offer_id:int}/images/{slot:str}", request_max_body_size=UPLOAD_BODY_MAX)
    async def upload(
        self, frame: CurrentFrame, offer_id: ObjectId, slot: FromPath[str], request: Request, db: Db, storage: Files
    ) -> Template | Redirect:
        """The console's upload form (multipart), into the service the API's image endpoints use."""
        _editor(frame)
        if slot not in SLOTS:
            raise NotFound("no such image")
        offer = await service.get_offer(db, frame.community.id, offer_id)
        try:
            data = await read_image(request, slot)
            async with db.begin_nested():
                offer, old = await service.set_image(db, storage, frame.community.id, offer_id, slot, data)
        except DomainError as exc:
            await db.refresh(offer)
            return self._images_page(frame, offer, storage, shown_errors(exc, tuple(SLOTS)), exc.status_code)
        flash(request, f"{SLOTS[slot]} uploaded.", "success")
        return Redirect(f"{frame.base}/offers/{offer_id}/images", status_code=303, background=drop_files(storage, old))

    @post("/{offer_id:int}/images/{slot:str}/remove")
    async def remove_image(self, frame: CurrentFrame, offer_id: ObjectId, slot: FromPath[str], request: Request, db: Db, storage: Files) -> Redirect:
        _editor(frame)
        if slot not in SLOTS:
            raise NotFound("no such image")
        old = await service.clear_image(db, frame.community.id, offer_id, slot)
        flash(request, f"{SLOTS[slot]} removed.", "success")
        return Redirect(f"{frame.base}/offers/{offer_id}/images", status_code=303, background=drop_files(storage, old))

    @staticmethod
    def _images_page(frame: Frame, offer: Offer, storage: Storage, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        urls = {slot: storage.url(key) if (key := getattr(offer, slot)) else None for slot in SLOTS}
        return console_page(
            "offers/images.html", frame, "offers", offer=offer, editor_section="images", errors=errors or {},
            status_code=status_code, slots=SLOTS, urls=urls, max_mb=service.MAX_IMAGE_BYTES // (1024 * 1024),
        )

    # ------------------------------------------------------------ status and deleting

    @get("/{offer_id:int}/status")
    async def status(self, frame: CurrentFrame, offer_id: ObjectId, db: Db) -> Template:
        offer = await service.get_offer(db, frame.community.id, offer_id)
        return await self._status_page(frame, db, offer)

    @post("/{offer_id:int}/status")
    async def change_status(self, frame: CurrentFrame, offer_id: ObjectId, data: FormBody, request: Request, db: Db) -> Template | Redirect:
        _editor(frame)
        wanted = Posted(data).text("status")
        offer = await service.get_offer(db, frame.community.id, offer_id)
        try:
            if wanted not in OfferStatus.__members__:
                raise NotFound("no such status")
            async with db.begin_nested():
                offer = await service.set_status(db, frame.community.id, offer_id, OfferStatus(wanted))
        except DomainError as exc:
            await db.refresh(offer)
            return await self._status_page(frame, db, offer, {"status": exc.detail}, exc.status_code, refused=wanted)
        words = {"published": "published: buyers can open its page", "archived": "archived: no new sales", "draft": "back to draft"}
        flash(request, f"“{offer.title}” is {words[offer.status.value]}.", "success")
        return Redirect(f"{frame.base}/offers/{offer_id}/status", status_code=303)

    async def _status_page(
        self, frame: Frame, db: Db, offer: Offer, errors: dict[str, str] | None = None, status_code: int = 200,
        refused: str | None = None,
    ) -> Template:
        held = await service.has_holders(db, frame.community.id, offer.id)
        holders = (await service.holder_counts(db, frame.community.id, [offer.id]))[offer.id]
        return console_page(
            "offers/status.html", frame, "offers", offer=offer, editor_section="status", errors=errors or {},
            status_code=status_code, held=held, holders=holders, refused=refused,
            paid=offer.pricing is not Pricing.free, charges_enabled=frame.community.charges_enabled,
        )

    @get("/{offer_id:int}/delete")
    async def confirm_delete(self, frame: CurrentFrame, offer_id: ObjectId, db: Db) -> Template:
        _editor(frame)
        offer = await service.get_offer(db, frame.community.id, offer_id)
        held = await service.has_holders(db, frame.community.id, offer.id)
        return console_page("offers/delete.html", frame, "offers", offer=offer, editor_section="status", held=held, errors={})

    @post("/{offer_id:int}/delete")
    async def delete(self, frame: CurrentFrame, offer_id: ObjectId, request: Request, db: Db, storage: Files) -> Template | Redirect:
        _editor(frame)
        offer = await service.get_offer(db, frame.community.id, offer_id)
        title = offer.title
        try:
            async with db.begin_nested():
                keys = await service.delete_offer(db, frame.community.id, offer_id)
        except DomainError as exc:
            await db.refresh(offer)
            return console_page(
                "offers/delete.html", frame, "offers", offer=offer, editor_section="status", held=True,
                errors={"offer_id": exc.detail}, status_code=exc.status_code,
            )
        flash(request, f"“{title}” is deleted.", "success")
        return Redirect(f"{frame.base}/offers", status_code=303, background=drop_files(storage, *keys))
