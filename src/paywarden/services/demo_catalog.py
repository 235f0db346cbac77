"""The demo merchants' profiles and catalogs: a coffee chain, an instant-commerce grocery
and an electronics shop. Everything is generated from the lists below, deterministically:
the same database gets the same products, prices and stock on every run."""

from __future__ import annotations

from typing import Any

from paywarden.commerce.catalog import parse_draft
from paywarden.services import catalog, merchants
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["load_catalogs"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

_COFFEE_STORES = (
    (
        "Harbour Coffee · Pier 39",
        "Pier 39, The Embarcadero, San Francisco, CA 94133",
        "06:30",
        "19:00",
    ),
    ("Harbour Coffee · Mission", "2180 Mission St, San Francisco, CA 94110", "07:00", "20:00"),
    (
        "Harbour Coffee · Ferry Building",
        "1 Ferry Building, San Francisco, CA 94111",
        "07:00",
        "18:00",
    ),
)

# name, base price (cents), description
_DRINKS = (
    ("Caffe Latte", 450, "Double espresso with steamed milk and a thin layer of foam"),
    ("Cappuccino", 430, "Espresso, steamed milk and a deep cap of foam"),
    ("Flat White", 460, "Ristretto shots with velvety microfoam"),
    ("Americano", 350, "Espresso lengthened with hot water"),
    ("Caffe Mocha", 520, "Espresso, chocolate and steamed milk"),
    ("Chai Latte", 480, "Spiced black tea with steamed milk"),
    ("Matcha Latte", 540, "Ceremonial-grade matcha whisked with milk"),
    ("Hot Chocolate", 400, "Dark chocolate melted into steamed milk"),
    ("Cold Brew", 450, "Steeped for 18 hours, smooth and low in acid"),
    ("Vanilla Latte", 510, "Caffe latte with house vanilla syrup"),
    ("Caramel Macchiato", 530, "Vanilla, milk, espresso and caramel drizzle"),
    ("London Fog", 470, "Earl Grey tea, vanilla and steamed milk"),
)
_TEAS = frozenset({"Chai Latte", "Matcha Latte", "London Fog"})
_PASTRIES = (
    ("Butter Croissant", 375, "Laminated with French butter, baked every morning"),
    ("Almond Croissant", 450, "Twice-baked with almond cream"),
    ("Blueberry Muffin", 350, "Wild blueberries and a crumb top"),
    ("Banana Bread", 325, "A thick slice, with walnuts"),
    ("Cinnamon Roll", 425, "With cream-cheese icing"),
)

_PRODUCE = (
    "Apples",
    "Bananas",
    "Pears",
    "Oranges",
    "Mandarins",
    "Grapes",
    "Tomatoes",
    "Potatoes",
    "Carrots",
    "Onions",
    "Cucumbers",
    "Bell Peppers",
    "Broccoli",
    "Spinach",
    "Bok Choy",
    "Mushrooms",
    "Ginger",
    "Garlic",
    "Lemons",
    "Strawberries",
    "Kiwis",
    "Mangoes",
    "Sweet Potatoes",
    "Cabbage",
    "Eggplant",
)
_COUNTED = {
    "dairy": (
        "Whole Milk 1 l",
        "Oat Milk 1 l",
        "Greek Yogurt 500 g",
        "Butter 250 g",
        "Cheddar 200 g",
        "Eggs",
        "Cream 250 ml",
        "Soy Milk 1 l",
        "Mozzarella 125 g",
    ),
    "bakery": (
        "Sourdough Loaf",
        "White Bread",
        "Whole Wheat Bread",
        "Bagels",
        "Baguette",
        "Steamed Buns",
        "Croissants",
        "Tortillas",
    ),
    "pantry": (
        "Jasmine Rice 5 kg",
        "Spaghetti 500 g",
        "Olive Oil 500 ml",
        "Soy Sauce 500 ml",
        "Canned Tomatoes",
        "Chickpeas",
        "Peanut Butter",
        "Honey",
        "Oats 1 kg",
        "Instant Noodles",
        "Flour 1 kg",
        "Sugar 1 kg",
        "Sesame Oil",
        "Black Vinegar",
    ),
    "drinks": (
        "Sparkling Water",
        "Orange Juice 1 l",
        "Green Tea Bottle",
        "Cola",
        "Coconut Water",
        "Oolong Tea Leaves",
        "Ground Coffee 250 g",
        "Lemonade",
    ),
    "snacks": (
        "Potato Chips",
        "Dark Chocolate",
        "Roasted Almonds",
        "Rice Crackers",
        "Cookies",
        "Seaweed Snack",
        "Granola Bars",
        "Popcorn",
    ),
    "household": (
        "Dish Soap",
        "Paper Towels",
        "Laundry Detergent",
        "Trash Bags",
        "Toilet Paper",
        "Sponges",
        "Hand Soap",
    ),
    "frozen": (
        "Frozen Dumplings",
        "Ice Cream",
        "Frozen Peas",
        "Frozen Pizza",
        "Fish Fillets",
        "Frozen Berries",
    ),
}
_TIERS = (("", 100), ("Organic ", 160), ("Value ", 75))

_ELECTRONICS = (
    ("usb-c-cable", "USB-C Cable 2 m", "cables", 1999, "Braided, 100 W charging, USB 3.2", 40),
    ("usb-c-charger", "USB-C Charger 65 W", "chargers", 4999, "GaN, two ports", 25),
    ("power-bank", "Power Bank 20000 mAh", "chargers", 5999, "USB-C PD, charges a laptop", 0),
    ("earbuds", "Wireless Earbuds", "audio", 12900, "Noise cancelling, 30 h with the case", 15),
    ("headphones", "Over-Ear Headphones", "audio", 24900, "Noise cancelling, 40 h", 8),
    ("speaker", "Bluetooth Speaker", "audio", 7900, "Waterproof, 12 h", 12),
    ("keyboard", "Mechanical Keyboard", "computers", 10900, "Hot-swappable, tenkeyless", 10),
    ("mouse", "Wireless Mouse", "computers", 3999, "Silent clicks, USB-C", 30),
    ("monitor-27", "27-inch 4K Monitor", "computers", 32900, "IPS, USB-C with 90 W", 4),
    ("webcam", "1080p Webcam", "computers", 5900, "Auto-focus, privacy shutter", 0),
    ("ssd-1tb", "Portable SSD 1 TB", "storage", 8900, "1050 MB/s, USB-C", 20),
    ("sd-card", "microSD Card 256 GB", "storage", 2999, "A2, V30", 50),
    ("smartwatch", "Smartwatch", "wearables", 19900, "GPS, heart rate, 7-day battery", 6),
    ("phone-case", "Phone Case", "accessories", 2499, "Shock-absorbing, MagSafe", 60),
    ("hdmi-cable", "HDMI 2.1 Cable", "cables", 1499, "8K, 2 m", 35),
    ("router", "Wi-Fi 7 Router", "networking", 27900, "Tri-band, 2.5 GbE", 3),
    ("gift-card-25", "Gift Card $25", "gift cards", 2500, "Delivered by e-mail", None),
    ("gift-card-100", "Gift Card $100", "gift cards", 10000, "Delivered by e-mail", None),
)


def load_catalogs(uow: UnitOfWork, cafe: str, grocer: str, shop: str) -> int:
    """Profiles, stores and products for the three demo merchants; returns the product count."""
    count = _coffee(uow, cafe)
    count += _grocery(uow, grocer)
    count += _electronics(uow, shop)
    return count


def _add(uow: UnitOfWork, merchant_id: str, raw: dict[str, Any]) -> None:
    catalog.upsert_product(uow, None, merchant_id, False, parse_draft(raw), events=False)


def _coffee(uow: UnitOfWork, merchant_id: str) -> int:
    store_ids = []
    for name, address, opens, closes in _COFFEE_STORES:
        hours = {day: [[opens, closes]] for day in _WEEKDAYS}
        hours |= {"sat": [["08:00", closes]], "sun": [["08:00", "16:00"]]}
        fields = {
            "name": name,
            "address": address,
            "timezone": "America/Los_Angeles",
            "hours": hours,
        }
        store_ids.append(merchants.create_store(uow, None, merchant_id, False, fields).id)
    merchants.update_profile(
        uow,
        None,
        merchant_id,
        False,
        tax_bps=863,
        fulfillment=[
            {"type": "pickup", "amount": 0, "stores": store_ids},
            {"type": "local_delivery", "amount": 299},
        ],
    )
    for index, (title, amount, description) in enumerate(_DRINKS):
        iced_only = title == "Cold Brew"
        _add(
            uow,
            merchant_id,
            {
                "sku": f"drink-{index + 1:02d}",
                "title": title,
                "description": description,
                "category": "tea" if title in _TEAS else "coffee",
                "amount": amount,
                "option_groups": _drink_options(iced_only),
            },
        )
    for index, (title, amount, description) in enumerate(_PASTRIES):
        _add(
            uow,
            merchant_id,
            {
                "sku": f"pastry-{index + 1:02d}",
                "title": title,
                "description": description,
                "category": "bakery",
                "amount": amount,
                "stock": 0 if index == 4 else 24,  # the cinnamon rolls sold out
            },
        )
    return len(_DRINKS) + len(_PASTRIES)


def _drink_options(iced_only: bool) -> list[dict[str, Any]]:
    temperatures = (
        [{"name": "iced", "default": True}]
        if iced_only
        else [
            {"name": "hot", "default": True},
            {"name": "iced", "amount_delta": 30},
        ]
    )
    return [
        {
            "name": "size",
            "required": True,
            "values": [
                {"name": "small", "amount_delta": -50},
                {"name": "medium", "default": True},
                {"name": "large", "amount_delta": 70},
            ],
        },
        {
            "name": "milk",
            "values": [
                {"name": "whole", "default": True},
                {"name": "skim"},
                {"name": "oat", "amount_delta": 70},
                {"name": "almond", "amount_delta": 70},
                {"name": "soy", "amount_delta": 50},
                {"name": "none"},
            ],
        },
        {
            "name": "sugar",
            "values": [
                {"name": "none", "default": True},
                {"name": "one"},
                {"name": "two"},
            ],
        },
        {"name": "temperature", "required": True, "values": temperatures},
    ]


def _grocery(uow: UnitOfWork, merchant_id: str) -> int:
    dark_store = merchants.create_store(
        uow,
        None,
        merchant_id,
        False,
        {
            "name": "Quick Basket · Jing'an hub",
            "address": "88 Yanping Rd, Jing'an, Shanghai",
            "timezone": "Asia/Shanghai",
            "hours": {day: [["00:00", "24:00"]] for day in (*_WEEKDAYS, "sat", "sun")},
        },
    )
    merchants.update_profile(
        uow,
        None,
        merchant_id,
        False,
        tax_bps=600,
        fulfillment=[
            {"type": "local_delivery", "amount": 500},
            {"type": "pickup", "amount": 0, "stores": [dark_store.id]},
        ],
    )
    count = 0
    for index, name in enumerate(_PRODUCE):
        for tier, percent in _TIERS:
            count += 1
            price = (380 + 97 * index % 1500) * percent // 100  # fen per 500 g
            sku = f"produce-{index + 1:02d}{_tier_code(tier)}"
            _add(
                uow,
                merchant_id,
                {
                    "sku": sku,
                    "title": f"{tier}{name}",
                    "description": f"{tier.strip() or 'Fresh'} {name.lower()}, sold by weight",
                    "category": "produce",
                    "amount": 0,
                    "variants": [
                        {
                            "sku": f"{sku}-500g",
                            "title": "500 g",
                            "amount": price,
                            "unit": "g",
                            "unit_quantity": 500,
                            "stock": _stock(count, 0),
                        },
                        {
                            "sku": f"{sku}-1kg",
                            "title": "1 kg",
                            "amount": price * 19 // 10,
                            "unit": "kg",
                            "unit_quantity": 1,
                            "stock": _stock(count, 1),
                        },
                    ],
                },
            )
    for category, names in _COUNTED.items():
        for index, name in enumerate(names):
            for tier, percent in _TIERS:
                count += 1
                price = (590 + 173 * (index + len(category)) % 4200) * percent // 100
                _add(
                    uow,
                    merchant_id,
                    {
                        "sku": f"{category}-{index + 1:02d}{_tier_code(tier)}",
                        "title": f"{tier}{name}",
                        "description": f"{category.title()}: {_kind(tier)} {name.lower()}",
                        "category": category,
                        "amount": price,
                        "stock": _stock(count, 2),
                    },
                )
    return count


def _kind(tier: str) -> str:
    return tier.strip().lower() or "our"


def _tier_code(tier: str) -> str:
    return {"": "", "Organic ": "-org", "Value ": "-val"}[tier]


def _stock(n: int, salt: int) -> int:
    """Deterministic stock: roughly one item in eleven is out."""
    return 0 if (n * 7 + salt) % 11 == 0 else 5 + (n * 13 + salt * 5) % 60


def _electronics(uow: UnitOfWork, merchant_id: str) -> int:
    merchants.update_profile(
        uow,
        None,
        merchant_id,
        False,
        tax_bps=725,
        fulfillment=[{"type": "shipping", "amount": 999}, {"type": "digital", "amount": 0}],
    )
    for sku, title, category, amount, description, stock in _ELECTRONICS:
        _add(
            uow,
            merchant_id,
            {
                "sku": sku,
                "title": title,
                "description": description,
                "category": category,
                "amount": amount,
                "stock": stock,
            },
        )
    return len(_ELECTRONICS)
