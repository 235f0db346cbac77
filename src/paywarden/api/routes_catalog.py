"""Merchants' profiles and stores, cart keys, catalogs, import and search.

- ``GET|POST /v1/merchants/{id}/profile``: tax rate and fulfillment methods (the merchant
  itself or an admin; anyone else gets 404).
- ``GET|POST /v1/merchants/{id}/stores``, ``POST /v1/merchants/{id}/stores/{sto}``: shops.
- ``GET /v1/merchants/{id}/cart_keys``: the published cart-signing keys (a JWK set; public).
  ``POST …/cart_keys`` registers the merchant's own key (``{"jwk": …}``),
  ``POST …/cart_keys/rotate`` makes a new hosted key, ``POST …/cart_keys/{kid}/revoke``.
- ``POST /v1/products`` (create or replace by sku), ``POST /v1/products/{id}`` (change some
  fields), ``DELETE /v1/products/{id}``: the merchant (an admin names ``merchant``).
- ``GET /v1/products/{id}`` and ``GET /v1/products?q=…&merchant=&category=&max_amount=&
  in_stock=&limit=&offset=`` (search): anyone authenticated, signed agents included.
- ``POST /v1/catalog/imports`` (``{"format": "json"|"csv", "content": "…"}``): bulk import.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import (
    authenticated,
    body_docs,
    json_response,
    post,
    read_json,
    refuse_nul,
    runtime,
)
from paywarden.commerce.catalog import parse_draft
from paywarden.kernel.errors import InvalidRequest, NotFound
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import catalog, catalog_import, merchants
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
_TAGS: list[str | Any] = ["catalog"]


def own_merchant(principal: Principal, merchant_id: str | None) -> str:
    """The merchant a merchant key or an admin acts for; someone else's is 'missing'."""
    if principal.is_admin and merchant_id:
        return merchant_id
    if principal.type is PrincipalType.MERCHANT and principal.id is not None:
        if merchant_id in (None, principal.id):
            return principal.id
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    if principal.is_admin:
        raise InvalidRequest(
            "an admin names the merchant", code="parameter_missing", param="$.merchant"
        )
    raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")


async def _get(
    request: Request,
    work: Callable[[UnitOfWork, Principal], dict[str, Any]],
    *,
    allow_agents: bool = False,
) -> Response:
    return await read_json(request, work, allow_agents=allow_agents)


def _ok(status: int = 200) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    return lambda body: (status, body)


# --- profile, stores, cart keys ----------------------------------------------------------


class ProfileUpdate(s.Body):
    tax_bps: StrictInt | None = Field(None, description="tax rate in basis points (0 to 10000)")
    fulfillment: list[dict[str, Any]] | None = Field(
        None, description="methods: {type: pickup|local_delivery|shipping|digital, amount, stores}"
    )


class StoreBody(s.Body):
    name: StrictStr | None = Field(None, max_length=200)
    address: StrictStr | None = Field(None, max_length=500)
    timezone: StrictStr | None = Field(
        None, max_length=64, description="IANA, such as Europe/Paris"
    )
    hours: dict[str, Any] | None = Field(None, description='{"mon": [["07:00", "19:00"]], …}')


class CartKeyRegister(s.Body):
    jwk: dict[str, Any] = Field(description="the merchant's own ES256 (P-256) public JWK")


@router.get("/v1/merchants/{merchant_id}/profile", tags=_TAGS)
async def get_profile(request: Request, merchant_id: str) -> Response:
    """The merchant's profile: stores, fulfillment methods, tax rate, cart-key mode."""

    def work(uow: UnitOfWork, p: Principal) -> dict[str, Any]:
        mid = own_merchant(p, merchant_id)
        return merchants.wire_profile(merchants.get_profile(uow, mid, p.livemode))

    return await _get(request, work)


@router.post(
    "/v1/merchants/{merchant_id}/profile", openapi_extra=body_docs(ProfileUpdate), tags=_TAGS
)
async def update_profile(request: Request, merchant_id: str) -> Response:
    """Change the tax rate and/or replace the fulfillment methods."""

    def work(uow: UnitOfWork, p: Principal, b: ProfileUpdate) -> Any:
        mid = own_merchant(p, merchant_id)
        profile = merchants.update_profile(
            uow, p, mid, p.livemode, tax_bps=b.tax_bps, fulfillment=b.fulfillment
        )
        return merchants.wire_profile(profile)

    return await post(request, ProfileUpdate, work, render=_ok())


@router.get("/v1/merchants/{merchant_id}/stores", tags=_TAGS)
async def list_stores(request: Request, merchant_id: str) -> Response:
    def work(uow: UnitOfWork, p: Principal) -> dict[str, Any]:
        mid = own_merchant(p, merchant_id)
        stores = merchants.list_stores(uow, mid, p.livemode)
        data = [merchants.wire_store(store) for store in stores]
        return {"object": "list", "data": data, "has_more": False}

    return await _get(request, work)


@router.post(
    "/v1/merchants/{merchant_id}/stores",
    status_code=201,
    openapi_extra=body_docs(StoreBody),
    tags=_TAGS,
)
async def create_store(request: Request, merchant_id: str) -> Response:
    """A new shop location with its IANA time zone and weekly opening hours."""

    def work(uow: UnitOfWork, p: Principal, b: StoreBody) -> Any:
        mid = own_merchant(p, merchant_id)
        fields = b.model_dump(exclude_none=True)
        return merchants.wire_store(merchants.create_store(uow, p, mid, p.livemode, fields))

    return await post(request, StoreBody, work, render=_ok(201))


@router.post(
    "/v1/merchants/{merchant_id}/stores/{store_id}",
    openapi_extra=body_docs(StoreBody),
    tags=_TAGS,
)
async def update_store(request: Request, merchant_id: str, store_id: str) -> Response:
    def work(uow: UnitOfWork, p: Principal, b: StoreBody) -> Any:
        mid = own_merchant(p, merchant_id)
        fields = b.model_dump(exclude_none=True)
        store = merchants.update_store(uow, p, mid, p.livemode, store_id, fields)
        return merchants.wire_store(store)

    return await post(request, StoreBody, work, render=_ok())


@router.get("/v1/merchants/{merchant_id}/cart_keys", tags=_TAGS)
async def cart_keys(request: Request, merchant_id: str) -> Response:
    """The merchant's published cart-signing keys, a JWK set (no authentication: public).
    Test-mode and live merchants are both found by id."""
    refuse_nul(request)
    store = runtime(request).store

    def work(uow: UnitOfWork) -> dict[str, Any]:
        for livemode in (False, True):
            try:
                return merchants.cart_keys(uow, merchant_id, livemode)
            except NotFound:
                continue
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")

    body = await run_in_threadpool(store.run, work, read_only=True)
    return Response(
        json.dumps(body),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.post(
    "/v1/merchants/{merchant_id}/cart_keys",
    status_code=201,
    openapi_extra=body_docs(CartKeyRegister),
    tags=_TAGS,
)
async def register_cart_key(request: Request, merchant_id: str) -> Response:
    """Register the merchant's own ES256 public key: it signs its carts itself from now."""

    def work(uow: UnitOfWork, p: Principal, b: CartKeyRegister) -> Any:
        mid = own_merchant(p, merchant_id)
        return merchants.register_cart_key(uow, p, mid, p.livemode, b.jwk)

    return await post(request, CartKeyRegister, work, render=_ok(201))


@router.post(
    "/v1/merchants/{merchant_id}/cart_keys/rotate",
    status_code=201,
    openapi_extra=body_docs(s.Empty),
    tags=_TAGS,
)
async def rotate_cart_key(request: Request, merchant_id: str) -> Response:
    """A new platform-held key signs the merchant's carts; the old one keeps verifying."""
    master_key = runtime(request).master_key

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        mid = own_merchant(p, merchant_id)
        return merchants.rotate_cart_key(uow, p, mid, p.livemode, master_key=master_key)

    return await post(request, s.Empty, work, render=_ok(201))


@router.post(
    "/v1/merchants/{merchant_id}/cart_keys/{kid}/revoke",
    openapi_extra=body_docs(s.Empty),
    tags=_TAGS,
)
async def revoke_cart_key(request: Request, merchant_id: str, kid: str) -> Response:
    """Withdraw a (compromised) key: neither published nor trusted any more."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        mid = own_merchant(p, merchant_id)
        merchants.revoke_cart_key(uow, p, mid, p.livemode, kid)
        return {"object": "cart_key", "kid": kid, "status": "revoked"}

    return await post(request, s.Empty, work, render=_ok())


# --- products ----------------------------------------------------------------------------


class ProductBody(s.Body):
    merchant: StrictStr | None = Field(None, max_length=40, description="admins only")
    sku: StrictStr | None = Field(None, max_length=64)
    title: StrictStr | None = Field(None, max_length=200)
    description: StrictStr | None = Field(None, max_length=2000)
    category: StrictStr | None = Field(None, max_length=100)
    amount: s.AmountField = None
    option_groups: list[Any] | None = None
    variants: list[Any] | None = None
    stock: Any = Field(None, description="null: unlimited")
    available: StrictBool | None = None


class ImportBody(s.Body):
    merchant: StrictStr | None = Field(None, max_length=40, description="admins only")
    format: StrictStr = Field(description="json or csv")
    content: StrictStr = Field(max_length=20_000_000, description="the file's text")


def _fields(body: ProductBody) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True, exclude={"merchant"})


@router.post("/v1/products", status_code=201, openapi_extra=body_docs(ProductBody), tags=_TAGS)
async def create_product(request: Request) -> Response:
    """Create a product, or replace the one with the same sku (200 then)."""

    def work(uow: UnitOfWork, p: Principal, b: ProductBody) -> Any:
        mid = own_merchant(p, b.merchant)
        draft = parse_draft(_fields(b))
        return catalog.upsert_product(uow, p, mid, p.livemode, draft)

    def render(result: Any) -> tuple[int, dict[str, Any]]:
        product, created = result
        return (201 if created else 200), catalog.wire_product(product)

    return await post(request, ProductBody, work, render=render)


@router.post("/v1/products/{product_id}", openapi_extra=body_docs(ProductBody), tags=_TAGS)
async def update_product(request: Request, product_id: str) -> Response:
    """Change some fields of a product (price, options, stock, availability …)."""

    def work(uow: UnitOfWork, p: Principal, b: ProductBody) -> Any:
        mid = own_merchant(p, b.merchant)
        product = catalog.update_product(uow, p, mid, p.livemode, product_id, _fields(b))
        return catalog.wire_product(product)

    return await post(request, ProductBody, work, render=_ok())


@router.delete("/v1/products/{product_id}", tags=_TAGS)
async def delete_product(request: Request, product_id: str) -> Response:
    """Take a product off sale for good (the merchant, or an admin naming ``merchant``)."""
    principal, version = await authenticated(request)
    refuse_nul(request)
    merchant_param = request.query_params.get("merchant")
    store = runtime(request).store

    def work(uow: UnitOfWork) -> dict[str, Any]:
        mid = own_merchant(principal, merchant_param)
        product = catalog.delete_product(uow, principal, mid, principal.livemode, product_id)
        return {"id": product.id, "object": "product", "deleted": True}

    body = await run_in_threadpool(store.run, work)
    return json_response(200, json.dumps(body), version=version)


@router.get("/v1/products/{product_id}", tags=_TAGS)
async def get_product(request: Request, product_id: str) -> Response:
    """A product, for anyone authenticated in the same mode (signed agents included)."""

    def work(uow: UnitOfWork, p: Principal) -> dict[str, Any]:
        return catalog.wire_product(catalog.get_product(uow, None, p.livemode, product_id))

    return await _get(request, work, allow_agents=True)


@router.get("/v1/products", tags=_TAGS)
async def search_products(request: Request) -> Response:
    """Search: every word of ``q`` begins a word of the title, category, sku or
    description; best matches first. Filters: merchant, category, max_amount, in_stock."""
    query = _search_query(request)

    def work(uow: UnitOfWork, p: Principal) -> dict[str, Any]:
        found = catalog.search(uow, p.livemode, query)
        return {
            "object": "list",
            "url": request.url.path,
            "data": [catalog.wire_product(product) for product in found.products],
            "has_more": found.has_more,
            "next_offset": found.next_offset,
        }

    return await _get(request, work, allow_agents=True)


def _search_query(request: Request) -> catalog.SearchQuery:
    params = request.query_params

    def number(name: str, default: int | None) -> int | None:
        value = params.get(name)
        if value is None or value == "":
            return default
        if not value.isdigit() or len(value) > 15:
            raise InvalidRequest(f"{name} is a whole number", param=f"$.{name}")
        return int(value)

    in_stock = params.get("in_stock", "false").lower()
    if in_stock not in ("true", "false", "1", "0"):
        raise InvalidRequest("in_stock is true or false", param="$.in_stock")
    text = params.get("q", "")
    if len(text) > 200:
        raise InvalidRequest("q is at most 200 characters", param="$.q")
    return catalog.SearchQuery(
        text=text,
        merchant=params.get("merchant") or None,
        category=params.get("category") or None,
        max_amount=number("max_amount", None),
        in_stock=in_stock in ("true", "1"),
        limit=number("limit", 20) or 0,
        offset=number("offset", 0) or 0,
    )


@router.post(
    "/v1/catalog/imports", status_code=201, openapi_extra=body_docs(ImportBody), tags=_TAGS
)
async def import_catalog(request: Request) -> Response:
    """Import products from a JSON or CSV file's text: valid rows are created or updated by
    sku, invalid ones reported (row, field, reason). Emits ``catalog.imported``."""

    def work(uow: UnitOfWork, p: Principal, b: ImportBody) -> Any:
        mid = own_merchant(p, b.merchant)
        rows = catalog_import.parse_import(b.content, b.format)
        report = catalog_import.import_rows(uow, p, mid, p.livemode, rows)
        return catalog_import.record_import(uow, mid, p.livemode, b.format, report)

    return await post(request, ImportBody, work, render=_ok(201))
