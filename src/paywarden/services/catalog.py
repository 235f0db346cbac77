"""The catalog as checkout and agents use it: price lines, reserve and release stock,
write products, search.

::

    lines = [LineRequest("latte", 2, {"size": "large"})]
    priced = catalog.price_lines(uow, merchant_id, livemode, lines)
    catalog.reserve_stock(uow, merchant_id, livemode, priced)   # all or nothing, or Conflict
    catalog.release_stock(uow, merchant_id, livemode, priced)   # on cancel, decline, expiry

Stock never oversells, on either backend, however many checkouts complete at once: a
reservation is one conditional ``UPDATE … SET stock = stock - n WHERE … AND stock >= n`` per
item, and a row count other than one means "short". Items are reserved in a fixed order (by
id) so that two reservations never wait on each other in a cycle; when an item is short, the
items already reserved in this call are released again before ``out_of_stock`` is raised, so
the call is all-or-nothing even for a caller that catches the error and commits.

Search (``search``) matches every word of the query as the start of a word of a product's
title, category, sku or description, on both backends: the text is reduced to lowercase
letter-and-digit words here, in Python, and those words are what PostgreSQL's ``simple``
``tsvector`` (weighted: title A, category and sku B, description C; GIN index) and SQLite's
FTS5 table (``catalog_search``; bm25 with the same relative weights) index. The FTS5 table is
made by this module on first use, with the products already present, because alembic's schema
comparison cannot describe a virtual table and its shadow tables.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    bindparam,
    column,
    delete,
    exists,
    insert,
    literal,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Row

from paywarden.adapters.ids import new_id
from paywarden.commerce import catalog as domain
from paywarden.commerce.catalog import (
    LineRequest,
    OptionGroup,
    OptionValue,
    PricedLine,
    Product,
    ProductDraft,
    Variant,
)
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal
from paywarden.store import schema
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all, prepared
from paywarden.store.tables_catalog import product_variants, products
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "LINES_MAX",
    "SEARCH_LIMIT_MAX",
    "SearchQuery",
    "SearchResult",
    "delete_product",
    "get_product",
    "list_products",
    "price_lines",
    "release_stock",
    "reserve_stock",
    "search",
    "update_product",
    "upsert_product",
    "wire_product",
]

LINES_MAX = 100
SEARCH_LIMIT_MAX = 100
_P = products
_V = product_variants


# --- pricing and stock -------------------------------------------------------------------


def price_lines(
    uow: UnitOfWork, merchant_id: str, livemode: bool, lines: Sequence[LineRequest]
) -> list[PricedLine]:
    """Price each line at the catalog's current prices. ``NotFound`` (``$.line_items[i].item``)
    for an item the merchant does not sell; ``InvalidRequest`` for bad options, variants or
    quantities. Unavailable or short items are priced with ``available`` false: the caller
    decides how to tell the buyer."""
    if len(lines) > LINES_MAX:
        raise InvalidRequest(f"at most {LINES_MAX} line items", param="$.line_items")
    found = _load_many(uow, merchant_id, livemode, [line.item for line in lines])
    priced = []
    for index, line in enumerate(lines):
        product = found.get(line.item)
        if product is None:
            raise NotFound(
                f"{merchant_id} sells no item {line.item!r}", param=f"$.line_items[{index}].item"
            )
        priced.append(domain.price_line(product, line, f"$.line_items[{index}]"))
    return priced


def reserve_stock(
    uow: UnitOfWork, merchant_id: str, livemode: bool, lines: Sequence[PricedLine]
) -> None:
    """Take the lines' quantities out of stock, all or nothing; ``Conflict`` with code
    ``out_of_stock`` (``$.line_items[i]``, the first line of the short item) when short or no
    longer for sale. Unlimited items always succeed."""
    reserved: list[tuple[tuple[str, str | None], int]] = []
    for key, (quantity, index) in _totals(lines):
        if _take(uow, merchant_id, livemode, key, quantity) != 1:
            for done_key, done_quantity in reserved:
                _give_back(uow, merchant_id, livemode, done_key, done_quantity)
            raise Conflict(
                f"{lines[index].title} is out of stock for {quantity}",
                code="out_of_stock",
                param=f"$.line_items[{index}]",
            )
        reserved.append((key, quantity))


def release_stock(
    uow: UnitOfWork, merchant_id: str, livemode: bool, lines: Sequence[PricedLine]
) -> None:
    """Put the lines' quantities back (a canceled, declined or expired checkout)."""
    for key, (quantity, _index) in _totals(lines):
        _give_back(uow, merchant_id, livemode, key, quantity)


def _totals(
    lines: Sequence[PricedLine],
) -> list[tuple[tuple[str, str | None], tuple[int, int]]]:
    """Quantity per (product, variant), with the index of its first line, in id order."""
    totals: dict[tuple[str, str | None], tuple[int, int]] = {}
    for index, line in enumerate(lines):
        invariant(line.quantity > 0, "a reserved line has a positive quantity")
        key = (line.product_id, line.variant_id)
        quantity, first = totals.get(key, (0, index))
        totals[key] = (quantity + line.quantity, first)
    return sorted(totals.items(), key=lambda item: (item[0][0], item[0][1] or ""))


def _merchant_products(merchant_id: str, livemode: bool) -> Any:
    return select(_P.c.id).where(
        _P.c.merchant_id == merchant_id,
        _P.c.livemode == livemode,
        _P.c.deleted_at.is_(None),
        _P.c.available.is_(True),
    )


def _take(
    uow: UnitOfWork, merchant_id: str, livemode: bool, key: tuple[str, str | None], n: int
) -> int:
    product_id, variant_id = key
    table = _V if variant_id else _P
    row_id = variant_id or product_id
    owned = table.c.product_id if variant_id else table.c.id
    statement = (
        update(table)
        .where(
            table.c.id == row_id,
            owned.in_(_merchant_products(merchant_id, livemode)),
            table.c.available.is_(True),
            or_(table.c.stock.is_(None), table.c.stock >= n),
        )
        .values(stock=table.c.stock - n)  # NULL - n stays NULL: unlimited
    )
    if variant_id:
        statement = statement.where(table.c.product_id == product_id)
    return int(uow.execute(statement).rowcount)


def _give_back(
    uow: UnitOfWork, merchant_id: str, livemode: bool, key: tuple[str, str | None], n: int
) -> None:
    product_id, variant_id = key
    table = _V if variant_id else _P
    owner = _P.c.merchant_id == merchant_id
    mine = select(_P.c.id).where(owner, _P.c.livemode == livemode)
    owned = table.c.product_id if variant_id else table.c.id
    uow.execute(
        update(table)
        .where(table.c.id == (variant_id or product_id), owned.in_(mine))
        .where(table.c.stock.is_not(None))
        .values(stock=table.c.stock + n)
    )


# --- reading -----------------------------------------------------------------------------


def get_product(uow: UnitOfWork, merchant_id: str | None, livemode: bool, ref: str) -> Product:
    """A product by id (any merchant when ``merchant_id`` is None) or by sku (of the
    merchant); deleted products are missing."""
    query = select(_P).where(_P.c.livemode == livemode, _P.c.deleted_at.is_(None))
    if merchant_id is not None:
        query = query.where(_P.c.merchant_id == merchant_id)
    if domain_is_product_id(ref):
        query = query.where(_P.c.id == ref)
    elif merchant_id is not None:
        query = query.where(_P.c.sku == ref)
    else:
        raise NotFound(f"no such product: {ref}", param="$.product")
    row = uow.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"no such product: {ref}", param="$.product")
    return _product(row, _variants_of(uow, [row.id]).get(row.id, ()))


def domain_is_product_id(ref: str) -> bool:
    return ref.startswith("prd_")


def list_products(
    uow: UnitOfWork, merchant_id: str, livemode: bool, *, limit: int = 50, offset: int = 0
) -> tuple[list[Product], bool]:
    rows = uow.execute(
        select(_P)
        .where(
            _P.c.merchant_id == merchant_id, _P.c.livemode == livemode, _P.c.deleted_at.is_(None)
        )
        .order_by(_P.c.sku)
        .limit(limit + 1)
        .offset(offset)
    ).all()
    return _products(uow, rows[:limit]), len(rows) > limit


def _load_many(
    uow: UnitOfWork, merchant_id: str, livemode: bool, refs: Sequence[str]
) -> dict[str, Product]:
    ids = [ref for ref in refs if isinstance(ref, str) and domain_is_product_id(ref)]
    skus = [ref for ref in refs if isinstance(ref, str) and not domain_is_product_id(ref)]
    if not ids and not skus:
        return {}
    by: dict[str, Any] = {"merchant_id": merchant_id, "livemode": livemode}
    if ids:
        by["ids"] = ids
    if skus:
        by["skus"] = skus
    statement = _PRODUCTS_BY_BOTH if ids and skus else _PRODUCTS_BY_ID if ids else _PRODUCTS_BY_SKU
    rows = uow.execute(statement, by).all()
    found: dict[str, Product] = {}
    for product in _products(uow, rows):
        found[product.id] = product
        found[product.sku] = product
    return found


def _products(uow: UnitOfWork, rows: Sequence[Row[Any]]) -> list[Product]:
    variants = _variants_of(uow, [row.id for row in rows])
    return [_product(row, variants.get(row.id, ())) for row in rows]


def _variants_of(uow: UnitOfWork, product_ids: Sequence[str]) -> dict[str, tuple[Variant, ...]]:
    if not product_ids:
        return {}
    rows = uow.execute(_VARIANTS_OF, {"product_ids": list(product_ids)}).all()
    grouped: dict[str, list[Variant]] = {}
    for row in rows:
        grouped.setdefault(row.product_id, []).append(
            Variant(
                sku=row.sku,
                title=row.title,
                amount=int(row.amount),
                stock=None if row.stock is None else int(row.stock),
                available=bool(row.available),
                unit=row.unit,
                unit_quantity=int(row.unit_quantity),
                id=row.id,
            )
        )
    return {key: tuple(value) for key, value in grouped.items()}


def _product(row: Row[Any], variants: tuple[Variant, ...]) -> Product:
    draft = ProductDraft(
        sku=row.sku,
        title=row.title,
        amount=int(row.amount),
        description=row.description,
        category=row.category,
        option_groups=tuple(_group(raw) for raw in row.option_groups),
        variants=variants,
        stock=None if row.stock is None else int(row.stock),
        available=bool(row.available),
    )
    return Product(
        id=row.id,
        merchant_id=row.merchant_id,
        livemode=bool(row.livemode),
        currency=row.currency,
        draft=draft,
        variants=variants,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _group(raw: dict[str, Any]) -> OptionGroup:
    values = tuple(
        OptionValue(v["name"], int(v["amount_delta"]), bool(v["default"])) for v in raw["values"]
    )
    return OptionGroup(raw["name"], values, bool(raw["required"]))


def _groups_json(groups: Sequence[OptionGroup]) -> list[dict[str, Any]]:
    return [
        {
            "name": group.name,
            "required": group.required,
            "values": [
                {"name": v.name, "amount_delta": v.amount_delta, "default": v.default}
                for v in group.values
            ],
        }
        for group in groups
    ]


def wire_product(product: Product) -> dict[str, Any]:
    """A product as every client sees it."""
    draft = product.draft
    return {
        "id": product.id,
        "object": "product",
        "livemode": product.livemode,
        "created": rfc3339(product.created_at),
        "updated": rfc3339(product.updated_at),
        "merchant": product.merchant_id,
        "sku": draft.sku,
        "title": draft.title,
        "description": draft.description,
        "category": draft.category,
        "amount": draft.amount,
        "price_from": _price_from(draft),
        "currency": product.currency,
        "option_groups": _groups_json(draft.option_groups),
        "variants": [
            {
                "id": v.id,
                "object": "product_variant",
                "sku": v.sku,
                "title": v.title,
                "amount": v.amount,
                "stock": v.stock,
                "available": v.available,
                "unit": v.unit,
                "unit_quantity": v.unit_quantity,
            }
            for v in product.variants
        ],
        "stock": draft.stock,
        "available": draft.available,
        "in_stock": product.in_stock(),
    }


def _price_from(draft: ProductDraft) -> int:
    return min([v.amount for v in draft.variants] or [draft.amount])


# --- writing -----------------------------------------------------------------------------


def upsert_product(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    draft: ProductDraft,
    *,
    events: bool = True,
) -> tuple[Product, bool]:
    """Create the product with ``draft.sku``, or replace the one the merchant already has
    under that sku (a deleted one comes back). Returns the product and whether it is new.
    Variants keep their ids by sku; variants no longer listed are removed."""
    currency = _merchant_currency(uow, merchant_id, livemode)
    now = uow.clock.now()
    existing = uow.execute(
        select(_P.c.id).where(_P.c.merchant_id == merchant_id, _P.c.sku == draft.sku)
    ).one_or_none()
    values = {
        "title": draft.title,
        "description": draft.description,
        "category": draft.category,
        "amount": draft.amount,
        "price_from": _price_from(draft),
        "option_groups": _groups_json(draft.option_groups),
        "stock": draft.stock,
        "available": draft.available,
        "deleted_at": None,
        "updated_at": now,
    }
    if existing is None:
        product_id = new_id("prd")
        uow.execute(
            insert(_P).values(
                id=product_id,
                merchant_id=merchant_id,
                livemode=livemode,
                sku=draft.sku,
                currency=currency,
                created_at=now,
                **values,
            )
        )
    else:
        product_id = existing.id
        uow.execute(update(_P).where(_P.c.id == product_id).values(**values))
    _write_variants(uow, product_id, draft)
    _index(uow, product_id, draft)
    product = get_product(uow, merchant_id, livemode, product_id)
    if events:
        kind = "product.created" if existing is None else "product.updated"
        emit(uow, kind, livemode, wire_product(product))
    _ = actor
    return product, existing is None


def update_product(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    ref: str,
    changes: dict[str, Any],
) -> Product:
    """Change some fields of a product (by id or sku); the sku itself does not change."""
    product = get_product(uow, merchant_id, livemode, ref)
    if "sku" in changes and changes["sku"] != product.sku:
        raise InvalidRequest("a product's sku does not change", param="$.sku")
    current = wire_product(product)
    raw = {name: current[name] for name in domain.DRAFT_FIELDS}
    raw["variants"] = [
        {name: v[name] for name in domain.VARIANT_FIELDS} for v in current["variants"]
    ]
    draft = domain.parse_draft({**raw, **changes}, "$")
    updated, _created = upsert_product(uow, actor, merchant_id, livemode, draft)
    return updated


def delete_product(
    uow: UnitOfWork, actor: Principal | None, merchant_id: str, livemode: bool, ref: str
) -> Product:
    """Take a product off sale for good (its sku can be created again later)."""
    product = get_product(uow, merchant_id, livemode, ref)
    now = uow.clock.now()
    uow.execute(
        update(_P)
        .where(_P.c.id == product.id)
        .values(deleted_at=now, available=False, updated_at=now)
    )
    _unindex(uow, product.id)
    emit(uow, "product.deleted", livemode, {**wire_product(product), "deleted": True})
    _ = actor
    return product


def _merchant_currency(uow: UnitOfWork, merchant_id: str, livemode: bool) -> str:
    m = schema.merchants
    row = uow.execute(
        select(m.c.currency).where(m.c.id == merchant_id, m.c.livemode == livemode)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    return str(row.currency)


def _write_variants(uow: UnitOfWork, product_id: str, draft: ProductDraft) -> None:
    current = {
        row.sku: row.id
        for row in uow.execute(select(_V.c.id, _V.c.sku).where(_V.c.product_id == product_id))
    }
    wanted = {variant.sku for variant in draft.variants}
    gone = [variant_id for sku, variant_id in current.items() if sku not in wanted]
    if gone:
        uow.execute(delete(_V).where(_V.c.id.in_(gone)))
    now = uow.clock.now()
    for position, variant in enumerate(draft.variants):
        values = {
            "position": position,
            "title": variant.title,
            "amount": variant.amount,
            "stock": variant.stock,
            "available": variant.available,
            "unit": variant.unit,
            "unit_quantity": variant.unit_quantity,
        }
        if variant.sku in current:
            uow.execute(update(_V).where(_V.c.id == current[variant.sku]).values(**values))
        else:
            uow.execute(
                insert(_V).values(
                    id=new_id("var"),
                    product_id=product_id,
                    sku=variant.sku,
                    created_at=now,
                    **values,
                )
            )


# --- search ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    merchant: str | None = None
    category: str | None = None
    max_amount: int | None = None  # price ceiling: the lowest base price is at most this
    in_stock: bool = False
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SearchResult:
    products: list[Product]
    has_more: bool
    next_offset: int | None


def search(uow: UnitOfWork, livemode: bool, query: SearchQuery) -> SearchResult:
    """Products matching every word of ``query.text`` (all, when it has none), best first,
    then by title; filtered by merchant, category, price ceiling and stock."""
    if not 1 <= query.limit <= SEARCH_LIMIT_MAX:
        raise InvalidRequest(f"limit is 1 to {SEARCH_LIMIT_MAX}", param="$.limit")
    if query.offset < 0:
        raise InvalidRequest("offset is not negative", param="$.offset")
    terms = domain.search_terms(query.text)
    by: dict[str, Any] = {"livemode": livemode, "limit": query.limit + 1, "offset": query.offset}
    if query.merchant:
        by["merchant"] = query.merchant
    if query.category:
        by["category"] = query.category.strip().lower()
    if query.max_amount is not None:
        by["max_amount"] = query.max_amount
    if terms and uow.dialect == "postgresql":
        by["tsquery"] = " & ".join(f"{term}:*" for term in terms)
    elif terms:
        _ensure_fts(uow)
        by["match"] = " AND ".join(f'"{term}"*' for term in terms)
    shape = (uow.dialect, bool(terms), *(name in by for name in _FILTERS), query.in_stock)
    rows = uow.execute(_search_statement(shape), by).all()
    has_more = len(rows) > query.limit
    found = _products(uow, rows[: query.limit])
    return SearchResult(found, has_more, query.offset + query.limit if has_more else None)


_FILTERS = ("merchant", "category", "max_amount")
# One statement a shape of search (dialect, words or not, which filters), built at its first
# use and run on the driver from then on (store.prepared); 2 x 2 x 16 shapes at most.
_SEARCHES: dict[tuple[Any, ...], Any] = {}
_SEARCHES_LOCK = threading.Lock()


def _search_statement(shape: tuple[Any, ...]) -> Any:
    statement = _SEARCHES.get(shape)
    if statement is None:
        with _SEARCHES_LOCK:
            statement = _SEARCHES.get(shape)
            if statement is None:
                statement = _SEARCHES[shape] = prepared(_built_search(*shape))
    return statement


def _built_search(
    dialect: str, words: bool, merchant: bool, category: bool, max_amount: bool, in_stock: bool
) -> Any:
    statement = select(_P).where(*_filters(merchant, category, max_amount, in_stock))
    if words and dialect == "postgresql":
        ts = text("to_tsquery('simple', :tsquery)")
        statement = statement.where(_P.c.search_vector.op("@@")(ts)).order_by(
            text("ts_rank(products.search_vector, to_tsquery('simple', :tsquery)) DESC")
        )
    elif words:
        ranked = (
            text(
                "SELECT product_id, bm25(catalog_search, 0.0, 10.0, 4.0, 1.0) AS score "
                "FROM catalog_search WHERE catalog_search MATCH :match"
            )
            .columns(column("product_id", String), column("score", Float))
            .subquery("ranked")
        )
        statement = statement.join(ranked, ranked.c.product_id == _P.c.id).order_by(ranked.c.score)
    return (
        statement.order_by(_P.c.title, _P.c.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


def _filters(merchant: bool, category: bool, max_amount: bool, in_stock: bool) -> list[Any]:
    filters: list[Any] = [_P.c.livemode == bindparam("livemode"), _P.c.deleted_at.is_(None)]
    if merchant:
        filters.append(_P.c.merchant_id == bindparam("merchant"))
    if category:
        filters.append(_P.c.category == bindparam("category"))
    if max_amount:
        filters.append(_P.c.price_from <= bindparam("max_amount"))
    if in_stock:
        has_variants = exists().where(_V.c.product_id == _P.c.id)
        variant_in_stock = exists().where(
            _V.c.product_id == _P.c.id,
            _V.c.available.is_(True),
            or_(_V.c.stock.is_(None), _V.c.stock > 0),
        )
        filters.append(_P.c.available.is_(True))
        filters.append(
            or_(
                and_(~has_variants, or_(_P.c.stock.is_(None), _P.c.stock > 0)),
                variant_in_stock,
            )
        )
    return filters


def _document(draft: ProductDraft) -> tuple[str, str, str]:
    """The words search sees: title; category and sku; description."""

    words = domain.document_words
    return words(draft.title), words(draft.category, draft.sku), words(draft.description)


def _index(uow: UnitOfWork, product_id: str, draft: ProductDraft) -> None:
    title, keywords, description = _document(draft)
    values = {"title": title, "keywords": keywords, "description": description, "id": product_id}
    if uow.dialect == "postgresql":
        uow.execute(
            text(
                "UPDATE products SET search_vector = "
                "setweight(to_tsvector('simple', :title), 'A') || "
                "setweight(to_tsvector('simple', :keywords), 'B') || "
                "setweight(to_tsvector('simple', :description), 'C') WHERE id = :id"
            ),
            values,
        )
        return
    _ensure_fts(uow)
    _unindex(uow, product_id)
    uow.execute(_FTS_INSERT, values)


_FTS_INSERT = text(
    "INSERT INTO catalog_search (product_id, title, keywords, description) "
    "VALUES (:id, :title, :keywords, :description)"
)


def _unindex(uow: UnitOfWork, product_id: str) -> None:
    if uow.dialect == "postgresql":
        uow.execute(update(_P).where(_P.c.id == product_id).values(search_vector=None))
        return
    _ensure_fts(uow)
    uow.execute(text("DELETE FROM catalog_search WHERE product_id = :id"), {"id": product_id})


def _ensure_fts(uow: UnitOfWork) -> None:
    """Make the SQLite FTS5 table and fill it from the live products, once."""
    made = uow.execute(_FTS_MADE).first()
    if made:
        return
    uow.execute(
        text(
            "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_search USING fts5("
            "product_id UNINDEXED, title, keywords, description, "
            "tokenize = 'unicode61 remove_diacritics 0')"
        )
    )
    for row in uow.execute(select(_P).where(_P.c.deleted_at.is_(None))).all():
        title, keywords, description = _document(_product(row, ()).draft)
        values = {"title": title, "keywords": keywords, "description": description, "id": row.id}
        uow.execute(_FTS_INSERT, values)


# What checkout pricing and search read at every request, built once and run on the driver
# (store.prepared): building and running each through SQLAlchemy Core cost about as much
# as the rest of a checkout session's creation.
_LIVE_OF_MERCHANT = (
    _P.c.merchant_id == bindparam("merchant_id"),
    _P.c.livemode == bindparam("livemode"),
    _P.c.deleted_at.is_(None),
)
_BY_ID = _P.c.id.in_(bindparam("ids", expanding=True))
_BY_SKU = _P.c.sku.in_(bindparam("skus", expanding=True))
_PRODUCTS_BY_ID = select(_P).where(*_LIVE_OF_MERCHANT, _BY_ID)
_PRODUCTS_BY_SKU = select(_P).where(*_LIVE_OF_MERCHANT, _BY_SKU)
_PRODUCTS_BY_BOTH = select(_P).where(*_LIVE_OF_MERCHANT, or_(_BY_ID, _BY_SKU))
_VARIANTS_OF = (
    select(_V)
    .where(_V.c.product_id.in_(bindparam("product_ids", expanding=True)))
    .order_by(_V.c.position)
)
_SQLITE_MASTER = table("sqlite_master", column("type"), column("name"))
_FTS_MADE = select(literal(1)).where(
    _SQLITE_MASTER.c.type == "table", _SQLITE_MASTER.c.name == "catalog_search"
)

prepare_all(globals())
