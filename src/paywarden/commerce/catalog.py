"""Products, their option groups and variants, and the price of one cart line.

A product has a base price (``amount`` in the merchant's currency, minor units) and may have

- option groups (a drink: ``size``, ``milk``, ``sugar``, ``temperature``): each value carries
  an ``amount_delta`` (minor units, may be negative) and at most one value is the default; a
  required group without a default must be chosen by the buyer, an optional one without a
  default adds nothing when left out;
- variants (``var_…``; a grocery item by weight or count): each with its own ``sku``, price
  and stock, replacing the product's price and stock.

Stock is an integer count or ``None`` for unlimited; it lives on the variant when the product
has variants, on the product otherwise. The price of a line is the base (product or variant)
plus the deltas of the chosen (or default) option values, times nothing: ``unit_amount`` is
per unit and the caller multiplies. Every combination of option values is checked at write
time to price at zero or more, so pricing never yields a negative amount.

Pure: no I/O, no clock. Errors are the kernel's ``InvalidRequest`` with a JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.money import AMOUNT_MINOR_MAX, parse_amount

__all__ = [
    "DRAFT_FIELDS",
    "OPTION_GROUPS_MAX",
    "OPTION_VALUES_MAX",
    "QUANTITY_MAX",
    "STOCK_MAX",
    "VARIANTS_MAX",
    "VARIANT_FIELDS",
    "LineRequest",
    "OptionGroup",
    "OptionValue",
    "PricedLine",
    "Product",
    "ProductDraft",
    "Variant",
    "VariantDraft",
    "choose_options",
    "document_words",
    "parse_draft",
    "price_line",
    "search_terms",
]

QUANTITY_MAX = 1000  # units of one item in one line
STOCK_MAX = 10_000_000
OPTION_GROUPS_MAX = 16
OPTION_VALUES_MAX = 32
VARIANTS_MAX = 64
SKU_LENGTH_MAX = 64
TITLE_LENGTH_MAX = 200
DESCRIPTION_LENGTH_MAX = 2000
CATEGORY_LENGTH_MAX = 100
NAME_LENGTH_MAX = 40  # an option group's or value's name
SEARCH_TERMS_MAX = 8
_SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
UNITS = ("each", "g", "kg", "ml", "l")
DRAFT_FIELDS = (
    "sku",
    "title",
    "amount",
    "description",
    "category",
    "option_groups",
    "variants",
    "stock",
    "available",
)
VARIANT_FIELDS = ("sku", "title", "amount", "stock", "available", "unit", "unit_quantity")


@dataclass(frozen=True, slots=True)
class OptionValue:
    name: str
    amount_delta: int = 0
    default: bool = False


@dataclass(frozen=True, slots=True)
class OptionGroup:
    name: str
    values: tuple[OptionValue, ...]
    required: bool = False

    @property
    def default(self) -> OptionValue | None:
        return next((value for value in self.values if value.default), None)

    def value(self, name: str) -> OptionValue | None:
        return next((value for value in self.values if value.name == name), None)


@dataclass(frozen=True, slots=True)
class VariantDraft:
    sku: str
    title: str
    amount: int
    stock: int | None
    available: bool = True
    unit: str = "each"
    unit_quantity: int = 1  # 500 with unit "g": a 500 g pack


@dataclass(frozen=True, slots=True)
class Variant(VariantDraft):
    id: str = ""


@dataclass(frozen=True, slots=True)
class ProductDraft:
    """A product as the merchant describes it, checked; what create, update and import write."""

    sku: str
    title: str
    amount: int
    description: str = ""
    category: str = ""
    option_groups: tuple[OptionGroup, ...] = ()
    variants: tuple[VariantDraft, ...] = ()
    stock: int | None = None  # None: unlimited (or held by the variants)
    available: bool = True


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    merchant_id: str
    livemode: bool
    currency: str
    draft: ProductDraft
    variants: tuple[Variant, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def sku(self) -> str:
        return self.draft.sku

    @property
    def title(self) -> str:
        return self.draft.title

    def variant(self, ref: str) -> Variant | None:
        return next((v for v in self.variants if ref in (v.id, v.sku)), None)

    def in_stock(self) -> bool:
        if not self.draft.available:
            return False
        if not self.variants:
            return self.draft.stock is None or self.draft.stock > 0
        return any(v.available and (v.stock is None or v.stock > 0) for v in self.variants)


@dataclass(frozen=True, slots=True)
class LineRequest:
    item: str  # a prd_ id or the merchant's sku
    quantity: int
    options: Mapping[str, str] = field(default_factory=dict)  # option group name -> value
    variant: str | None = None  # a var_ id or variant sku


@dataclass(frozen=True, slots=True)
class PricedLine:
    product_id: str
    variant_id: str | None
    sku: str
    title: str
    options: tuple[tuple[str, str], ...]  # sorted, defaults filled in
    quantity: int
    unit_amount: int
    currency: str
    stock_available: int | None  # None = unlimited
    available: bool  # for sale and enough stock for `quantity`


# --- pricing -----------------------------------------------------------------------------


def choose_options(
    groups: Sequence[OptionGroup], chosen: Mapping[str, str], param: str
) -> tuple[tuple[tuple[str, str], ...], int]:
    """The chosen values with defaults filled in (sorted by group), and their total delta."""
    known = {group.name: group for group in groups}
    for name in chosen:
        if name not in known:
            raise InvalidRequest(
                f"no option group {name!r}; this item has {sorted(known) or 'none'}",
                code="unknown_option",
                param=f"{param}.{name}",
            )
    picked: list[tuple[str, str]] = []
    delta = 0
    for group in groups:
        value = _pick(group, chosen.get(group.name), f"{param}.{group.name}")
        if value is not None:
            picked.append((group.name, value.name))
            delta += value.amount_delta
    return tuple(sorted(picked)), delta


def _pick(group: OptionGroup, name: str | None, param: str) -> OptionValue | None:
    if name is None:
        if group.default is None and group.required:
            raise InvalidRequest(
                f"choose a {group.name}: one of {[v.name for v in group.values]}",
                code="option_required",
                param=param,
            )
        return group.default
    value = group.value(name) if isinstance(name, str) else None
    if value is None:
        raise InvalidRequest(
            f"{name!r} is not a {group.name}; choose one of {[v.name for v in group.values]}",
            code="unknown_option_value",
            param=param,
        )
    return value


def price_line(product: Product, line: LineRequest, param: str) -> PricedLine:
    """Price one line of ``product`` (``param`` is the line's JSON path, ``$.line_items[0]``)."""
    quantity = line.quantity
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidRequest("quantity is an integer", code="invalid_quantity", param=param)
    if not 1 <= quantity <= QUANTITY_MAX:
        raise InvalidRequest(
            f"quantity is 1 to {QUANTITY_MAX}", code="invalid_quantity", param=f"{param}.quantity"
        )
    variant = _variant_for(product, line.variant, f"{param}.variant")
    options, delta = choose_options(product.draft.option_groups, line.options, f"{param}.options")
    base = variant.amount if variant else product.draft.amount
    stock = variant.stock if variant else product.draft.stock
    for_sale = product.draft.available and (variant.available if variant else True)
    return PricedLine(
        product_id=product.id,
        variant_id=variant.id if variant else None,
        sku=variant.sku if variant else product.sku,
        title=f"{product.title} ({variant.title})" if variant else product.title,
        options=options,
        quantity=quantity,
        unit_amount=base + delta,
        currency=product.currency,
        stock_available=stock,
        available=for_sale and (stock is None or stock >= quantity),
    )


def _variant_for(product: Product, ref: str | None, param: str) -> Variant | None:
    if ref is None:
        if len(product.variants) > 1:
            raise InvalidRequest(
                f"choose a variant of {product.sku}: {[v.sku for v in product.variants]}",
                code="variant_required",
                param=param,
            )
        return product.variants[0] if product.variants else None
    variant = product.variant(ref) if isinstance(ref, str) else None
    if variant is None:
        raise InvalidRequest(
            f"{product.sku} has no variant {ref!r}", code="unknown_variant", param=param
        )
    return variant


# --- checking what merchants send ------------------------------------------------------


def parse_draft(raw: Mapping[str, Any], param: str = "$") -> ProductDraft:
    """Check a product as JSON (API body, import row) and build the draft, or raise
    ``InvalidRequest`` naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("a product is a JSON object", param=param)
    for name in raw:
        if name not in DRAFT_FIELDS:
            raise InvalidRequest(
                f"unknown field {name!r}", code="unknown_parameter", param=f"{param}.{name}"
            )
    groups = _option_groups(raw.get("option_groups") or [], f"{param}.option_groups")
    variants = _variants(raw.get("variants") or [], f"{param}.variants")
    stock = _stock(raw.get("stock"), f"{param}.stock")
    if variants and stock is not None:
        raise InvalidRequest(
            "a product with variants keeps its stock on each variant",
            param=f"{param}.stock",
        )
    draft = ProductDraft(
        sku=_sku(raw.get("sku"), f"{param}.sku"),
        title=_text(raw.get("title"), f"{param}.title", TITLE_LENGTH_MAX, required=True),
        amount=parse_amount(raw.get("amount"), f"{param}.amount", allow_zero=True),
        description=_text(raw.get("description"), f"{param}.description", DESCRIPTION_LENGTH_MAX),
        category=_text(raw.get("category"), f"{param}.category", CATEGORY_LENGTH_MAX).lower(),
        option_groups=groups,
        variants=variants,
        stock=stock,
        available=_flag(raw.get("available", True), f"{param}.available"),
    )
    _check_prices(draft, param)
    return draft


def _check_prices(draft: ProductDraft, param: str) -> None:
    """The cheapest combination of options on the cheapest base must not go below zero,
    and the dearest must stay within the amount bound."""
    bases = [v.amount for v in draft.variants] or [draft.amount]
    low = min(bases) + sum(min(_deltas(g)) for g in draft.option_groups)
    high = max(bases) + sum(max(_deltas(g)) for g in draft.option_groups)
    if low < 0:
        raise InvalidRequest(
            "some choice of options prices this product below zero",
            code="invalid_amount",
            param=f"{param}.option_groups",
        )
    if high > AMOUNT_MINOR_MAX:
        raise InvalidRequest(
            "some choice of options prices this product above the amount bound",
            code="invalid_amount",
            param=f"{param}.option_groups",
        )


def _deltas(group: OptionGroup) -> list[int]:
    deltas = [value.amount_delta for value in group.values]
    if not group.required and group.default is None:
        deltas.append(0)  # leaving it out is a choice too
    return deltas


def _option_groups(raw: Any, param: str) -> tuple[OptionGroup, ...]:
    if not isinstance(raw, list) or len(raw) > OPTION_GROUPS_MAX:
        raise InvalidRequest(f"option_groups is a list of at most {OPTION_GROUPS_MAX}", param=param)
    groups = tuple(_option_group(item, f"{param}[{i}]") for i, item in enumerate(raw))
    names = [group.name for group in groups]
    if len(set(names)) != len(names):
        raise InvalidRequest("option group names are unique", param=param)
    return groups


def _option_group(raw: Any, param: str) -> OptionGroup:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("an option group is an object", param=param)
    name = _name(raw.get("name"), f"{param}.name")
    values_raw = raw.get("values")
    if not isinstance(values_raw, list) or not 1 <= len(values_raw) <= OPTION_VALUES_MAX:
        raise InvalidRequest(
            f"values is a list of 1 to {OPTION_VALUES_MAX}", param=f"{param}.values"
        )
    values = tuple(_option_value(v, f"{param}.values[{i}]") for i, v in enumerate(values_raw))
    if len({v.name for v in values}) != len(values):
        raise InvalidRequest("option value names are unique", param=f"{param}.values")
    if sum(v.default for v in values) > 1:
        raise InvalidRequest("at most one value is the default", param=f"{param}.values")
    return OptionGroup(name, values, _flag(raw.get("required", False), f"{param}.required"))


def _option_value(raw: Any, param: str) -> OptionValue:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("an option value is an object", param=param)
    delta = raw.get("amount_delta", 0)
    if isinstance(delta, bool) or not isinstance(delta, int) or abs(delta) > AMOUNT_MINOR_MAX:
        raise InvalidRequest(
            "amount_delta is an integer count of minor units",
            code="invalid_amount",
            param=f"{param}.amount_delta",
        )
    return OptionValue(
        _name(raw.get("name"), f"{param}.name"),
        delta,
        _flag(raw.get("default", False), f"{param}.default"),
    )


def _variants(raw: Any, param: str) -> tuple[VariantDraft, ...]:
    if not isinstance(raw, list) or len(raw) > VARIANTS_MAX:
        raise InvalidRequest(f"variants is a list of at most {VARIANTS_MAX}", param=param)
    variants = tuple(_variant(item, f"{param}[{i}]") for i, item in enumerate(raw))
    if len({v.sku for v in variants}) != len(variants):
        raise InvalidRequest("variant skus are unique within a product", param=param)
    return variants


def _variant(raw: Any, param: str) -> VariantDraft:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("a variant is an object", param=param)
    unit = raw.get("unit", "each")
    if unit not in UNITS:
        raise InvalidRequest(f"unit is one of {list(UNITS)}", param=f"{param}.unit")
    unit_quantity = raw.get("unit_quantity", 1)
    if isinstance(unit_quantity, bool) or not isinstance(unit_quantity, int):
        raise InvalidRequest("unit_quantity is an integer", param=f"{param}.unit_quantity")
    if not 1 <= unit_quantity <= 1_000_000:
        raise InvalidRequest("unit_quantity is 1 to 1000000", param=f"{param}.unit_quantity")
    return VariantDraft(
        sku=_sku(raw.get("sku"), f"{param}.sku"),
        title=_text(raw.get("title"), f"{param}.title", TITLE_LENGTH_MAX, required=True),
        amount=parse_amount(raw.get("amount"), f"{param}.amount", allow_zero=True),
        stock=_stock(raw.get("stock"), f"{param}.stock"),
        available=_flag(raw.get("available", True), f"{param}.available"),
        unit=str(unit),
        unit_quantity=unit_quantity,
    )


def _sku(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("sku is required", code="parameter_missing", param=param)
    if len(value) > SKU_LENGTH_MAX or not _SKU_RE.match(value):
        raise InvalidRequest(
            f"sku is up to {SKU_LENGTH_MAX} letters, digits, '.', '_' or '-'", param=param
        )
    if value.startswith(("prd_", "var_")):
        raise InvalidRequest("a sku must not look like a paywarden id", param=param)
    return value


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("name is required", code="parameter_missing", param=param)
    if len(value) > NAME_LENGTH_MAX or not _NAME_RE.match(value):
        raise InvalidRequest(
            f"a name is up to {NAME_LENGTH_MAX} lowercase letters, digits, '_' or '-'",
            param=param,
        )
    return value


def _text(value: Any, param: str, length_max: int, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        code = "parameter_missing" if value is None else "invalid_value"
        raise InvalidRequest(f"{param[2:]} is a non-empty string", code=code, param=param)
    if len(value) > length_max or "\x00" in value:
        raise InvalidRequest(f"{param[2:]} is at most {length_max} characters", param=param)
    return value.strip()


def _stock(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= STOCK_MAX:
        raise InvalidRequest(
            f"stock is null (unlimited) or an integer 0 to {STOCK_MAX}", param=param
        )
    return value


def _flag(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{param[2:]} is true or false", param=param)
    return value


# --- search ------------------------------------------------------------------------------


def search_terms(query: str) -> tuple[str, ...]:
    """The words of a search query, lowercased: letters and digits, split on anything else.
    A product matches when each word begins a word of its title, description, category or
    sku (both backends implement exactly this). At most ``SEARCH_TERMS_MAX`` words count."""
    words = [word.lower() for word in _WORD_RE.findall(query)]
    return tuple(dict.fromkeys(words))[:SEARCH_TERMS_MAX]


def document_words(*texts: str) -> str:
    """The words of ``texts`` as search indexes them: lowercase, letters and digits, one
    space apart (so both backends' tokenizers see the same words)."""
    return " ".join(word.lower() for text in texts for word in _WORD_RE.findall(text))
