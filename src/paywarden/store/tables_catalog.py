"""Tables for merchant profiles, stores, cart keys, products, variants, stock and search.

- ``merchant_profiles``: one row per merchant once it has a profile: its tax rate (basis
  points), the fulfillment methods it offers (JSON list) and whether its cart-signing key is
  hosted by the platform or its own.
- ``merchant_stores``: shop locations (``sto_``) with an IANA time zone and weekly hours.
- ``merchant_cart_keys``: ES256 cart-signing keys per merchant. A hosted key keeps only the
  AES-256-GCM envelope of its secret (``paywarden.trust.custody``); a merchant's own key has
  no private part here. One ``active`` key per merchant (a partial unique index).
- ``products`` and ``product_variants``: the catalog. ``stock`` is NULL for unlimited; the
  CHECK constraints keep counts from going below zero, which the conditional UPDATE of a
  reservation relies on. ``price_from`` is the lowest base price (the product's, or its
  cheapest variant's): what the price-ceiling filter compares.
- ``search_vector`` is PostgreSQL's weighted ``tsvector`` (GIN-indexed) kept by the catalog
  service; on SQLite the column stays NULL and an FTS5 table (``catalog_search``, made by the
  service on first use, see ``paywarden.services.catalog``) answers instead.
- ``catalog_imports``: one row per bulk import, with its counts and per-row error report.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from paywarden.store.schema import Instant, metadata

__all__ = [
    "catalog_imports",
    "merchant_cart_keys",
    "merchant_profiles",
    "merchant_stores",
    "product_variants",
    "products",
]

merchant_profiles = Table(
    "merchant_profiles",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("tax_bps", Integer, nullable=False),
    Column("fulfillment", JSON, nullable=False),
    Column("cart_key_mode", String(8), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    CheckConstraint("tax_bps >= 0 AND tax_bps <= 10000", name="tax_bps_range"),
    CheckConstraint("cart_key_mode IN ('hosted', 'own')", name="cart_key_mode_known"),
)

merchant_stores = Table(
    "merchant_stores",
    metadata,
    Column("id", String(40), primary_key=True, comment="sto_"),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("livemode", Boolean, nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", String(500), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("hours", JSON, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
)

merchant_cart_keys = Table(
    "merchant_cart_keys",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("kid", String(64), nullable=False, comment="RFC 7638 JWK thumbprint"),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_ciphertext", Text, nullable=True),
    Column("hosted", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("retired_at", Instant(), nullable=True),
    Column("publish_until", Instant(), nullable=True),
    PrimaryKeyConstraint("merchant_id", "kid", name="pk_merchant_cart_keys"),
    CheckConstraint("status IN ('active', 'retired', 'revoked')", name="status_known"),
    CheckConstraint("alg = 'ES256'", name="alg_es256"),
    CheckConstraint("hosted = (private_ciphertext IS NOT NULL)", name="hosted_keys_are_sealed"),
)
Index(
    "uq_merchant_cart_keys_one_active",
    merchant_cart_keys.c.merchant_id,
    unique=True,
    sqlite_where=text("status = 'active'"),
    postgresql_where=text("status = 'active'"),
)

products = Table(
    "products",
    metadata,
    Column("id", String(40), primary_key=True, comment="prd_"),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(100), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("price_from", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("option_groups", JSON, nullable=False),
    Column("stock", BigInteger, nullable=True),
    Column("available", Boolean, nullable=False),
    Column("deleted_at", Instant(), nullable=True),
    Column("search_vector", Text().with_variant(TSVECTOR(), "postgresql"), nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    UniqueConstraint("merchant_id", "sku", name="uq_products_merchant_sku"),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("price_from >= 0", name="price_from_not_negative"),
    CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
)
Index("ix_products_merchant_category", products.c.merchant_id, products.c.category)
Index("ix_products_search_vector", products.c.search_vector, postgresql_using="gin")

product_variants = Table(
    "product_variants",
    metadata,
    Column("id", String(40), primary_key=True, comment="var_"),
    Column("product_id", String(40), ForeignKey("products.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("stock", BigInteger, nullable=True),
    Column("available", Boolean, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("unit_quantity", Integer, nullable=False),
    Column("created_at", Instant(), nullable=False),
    UniqueConstraint("product_id", "sku", name="uq_product_variants_product_sku"),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
)

catalog_imports = Table(
    "catalog_imports",
    metadata,
    Column("id", String(40), primary_key=True, comment="imp_"),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("livemode", Boolean, nullable=False),
    Column("format", String(8), nullable=False),
    Column("rows_total", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("errors", JSON, nullable=False),
    Column("created_at", Instant(), nullable=False),
    CheckConstraint("format IN ('json', 'csv')", name="format_known"),
)
