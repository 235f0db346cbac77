"""Merchant profiles, stores, cart-signing keys, products, variants, stock, search index.

The PostgreSQL full-text index (a GIN index over the weighted ``search_vector``) is made here;
on SQLite the column stays NULL and the catalog service keeps an FTS5 table instead (made on
first use, see ``paywarden.services.catalog``), which :func:`downgrade` drops with its shadow
tables.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_profiles",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("tax_bps", sa.Integer(), nullable=False),
        sa.Column("fulfillment", sa.JSON(), nullable=False),
        sa.Column("cart_key_mode", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "tax_bps >= 0 AND tax_bps <= 10000", name=op.f("ck_merchant_profiles_tax_bps_range")
        ),
        sa.CheckConstraint(
            "cart_key_mode IN ('hosted', 'own')",
            name=op.f("ck_merchant_profiles_cart_key_mode_known"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_profiles_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchant_profiles")),
    )
    op.create_table(
        "merchant_stores",
        sa.Column("id", sa.String(length=40), nullable=False, comment="sto_"),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_stores_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_stores")),
    )
    with op.batch_alter_table("merchant_stores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_merchant_stores_merchant_id"), ["merchant_id"], unique=False
        )
    op.create_table(
        "merchant_cart_keys",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False, comment="RFC 7638 JWK thumbprint"),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_ciphertext", sa.Text(), nullable=True),
        sa.Column("hosted", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.Column("publish_until", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'revoked')",
            name=op.f("ck_merchant_cart_keys_status_known"),
        ),
        sa.CheckConstraint("alg = 'ES256'", name=op.f("ck_merchant_cart_keys_alg_es256")),
        sa.CheckConstraint(
            "hosted = (private_ciphertext IS NOT NULL)",
            name=op.f("ck_merchant_cart_keys_hosted_keys_are_sealed"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_cart_keys_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "kid", name="pk_merchant_cart_keys"),
    )
    with op.batch_alter_table("merchant_cart_keys", schema=None) as batch_op:
        batch_op.create_index(
            "uq_merchant_cart_keys_one_active",
            ["merchant_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
    op.create_table(
        "products",
        sa.Column("id", sa.String(length=40), nullable=False, comment="prd_"),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("price_from", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("option_groups", sa.JSON(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column(
            "search_vector",
            sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_products_amount_not_negative")),
        sa.CheckConstraint("price_from >= 0", name=op.f("ck_products_price_from_not_negative")),
        sa.CheckConstraint(
            "stock IS NULL OR stock >= 0", name=op.f("ck_products_stock_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_products_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("merchant_id", "sku", name="uq_products_merchant_sku"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(
            "ix_products_merchant_category", ["merchant_id", "category"], unique=False
        )
        batch_op.create_index(
            "ix_products_search_vector",
            ["search_vector"],
            unique=False,
            postgresql_using="gin",
        )
    op.create_table(
        "product_variants",
        sa.Column("id", sa.String(length=40), nullable=False, comment="var_"),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("unit_quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_product_variants_amount_not_negative")),
        sa.CheckConstraint(
            "stock IS NULL OR stock >= 0", name=op.f("ck_product_variants_stock_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_variants_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_variants")),
        sa.UniqueConstraint("product_id", "sku", name="uq_product_variants_product_sku"),
    )
    op.create_table(
        "catalog_imports",
        sa.Column("id", sa.String(length=40), nullable=False, comment="imp_"),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "format IN ('json', 'csv')", name=op.f("ck_catalog_imports_format_known")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_catalog_imports_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_imports")),
    )
    with op.batch_alter_table("catalog_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_imports_merchant_id"), ["merchant_id"], unique=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS catalog_search")  # the FTS5 index and its shadows
    with op.batch_alter_table("catalog_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_imports_merchant_id"))
    op.drop_table("catalog_imports")
    op.drop_table("product_variants")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_search_vector", postgresql_using="gin")
        batch_op.drop_index("ix_products_merchant_category")
    op.drop_table("products")
    with op.batch_alter_table("merchant_cart_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_merchant_cart_keys_one_active")
    op.drop_table("merchant_cart_keys")
    with op.batch_alter_table("merchant_stores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_stores_merchant_id"))
    op.drop_table("merchant_stores")
    op.drop_table("merchant_profiles")
