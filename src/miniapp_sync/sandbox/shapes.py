"""Salla's recurring sub-objects: money, Carbon dates, order statuses, categories, options, coupons, shipping."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from miniapp_sync.sandbox import catalog as c

Record = dict[str, Any]


def carbon(moment: datetime) -> dict[str, Any]:
    """Render a moment as a PHP Carbon object in store time, as Salla does."""
    local = moment.astimezone(c.RIYADH).strftime("%Y-%m-%d %H:%M:%S.000000")
    return {"date": local, "timezone_type": 3, "timezone": "Asia/Riyadh"}


def plain_time(moment: datetime) -> str:
    """Render a moment as a naive store-time string (products' ``updated_at``)."""
    return moment.astimezone(c.RIYADH).strftime("%Y-%m-%d %H:%M:%S")


def amount(value: float) -> int | float:
    """Return an amount as Salla prints it: an int when whole, else two decimals."""
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


def money(value: float, *, text: bool = False) -> dict[str, Any]:
    """Return a money object; ``text`` renders the amount as a string, as some Salla fields do."""
    return {"amount": f"{value:.2f}" if text else amount(value), "currency": "SAR"}


def status_object(slug: str) -> dict[str, Any]:
    """Return the order ``status`` object for a slug (English labels)."""
    status = c.STATUS_BY_SLUG[slug]
    return {
        "id": status.id,
        "name": status.en,
        "slug": status.slug,
        "customized": {"id": status.customized_id, "name": status.en},
    }


def category(family: c.Family) -> Record:
    """Return a product's entry in ``categories``."""
    cid = c.CATEGORY_IDS[family.key]
    return {
        "id": cid,
        "name": family.category.ar,
        "urls": {
            "customer": f"{c.STORE_URL}/{'-'.join(family.category.ar.split())}/c{cid}",
            "admin": f"{c.ADMIN_URL}/categories",
        },
        "items": [],
        "parent_id": 0,
        "status": "active",
        "sort_order": list(c.CATEGORY_IDS).index(family.key) + 1,
        "update_at": "2024-01-10 12:00:41",
        "metadata": {"title": None, "description": None, "url": None},
        "sub_categories": [],
    }


def grind_option(product_id: int) -> list[Record]:
    """Return a coffee product's ``options``: the grind, a required radio choice."""
    option_id = 60170000 + product_id % 100000
    values = [
        {"id": option_id * 10 + n, "name": grind.ar, "price": money(0), "display_value": grind.ar}
        | {"option_id": option_id, "image_url": None, "hashed_display_value": None}
        | {"is_default": n == 0, "is_out_of_stock": False}
        for n, grind in enumerate(c.GRIND)
    ]
    head = {"id": option_id, "name": "درجة الطحن", "description": None, "type": "radio", "required": True}
    return [head | {"associated_with_order_time": 0, "sort": None, "display_type": "text", "values": values}]


def chosen_option(item_id: int, option: Record, value: Record) -> Record:
    """Return an order item's record of the option ``value`` its customer chose."""
    picked = {"id": value["id"], "name": value["name"], "price": value["price"]}
    return {
        "id": item_id + 1127000000,
        "product_option_id": option["id"],
        "name": option["name"],
        "type": option["type"],
        "value": [picked],
    }


def discount(code: c.Coupon, value: float) -> Record:
    """Return one entry of an order's ``amounts.discounts`` (the amount is a string, as Salla sends it)."""
    return {
        "title": code.title,
        "type": code.type,
        "code": code.code,
        "discount": f"{value:.2f}",
        "discounted_shipping": 0,
    }


def coupon(code: c.Coupon) -> Record:
    """Return an abandoned cart's ``coupon``."""
    return {
        "id": code.id,
        "code": code.code,
        "status": "active",
        "type": code.type,
        "amount": amount(code.amount),
        "minimum_amount": 100,
        "expiry_date": "2024-06-30",
        "start_date": "2024-04-01",
        "created_at": carbon(datetime(2024, 3, 28, 16, 5, tzinfo=c.RIYADH)),
        "free_shipping": False,
    }


def _address(country: str, city: c.City, line: str, lat: float, lng: float) -> Record:
    return {
        "country": country,
        "country_code": c.COUNTRY_CODE,
        "city": city.name.en,
        "shipping_address": line,
        "street_number": city.street,
        "block": city.district,
        "postal_code": city.postal_code,
        "geo_coordinates": {"lat": lat, "lng": lng},
    }


def shipping(rng: random.Random, company: c.Name, customer: Record, city: c.City) -> Record:
    """Return an order's ``shipping``: carrier, receiver, the store's pickup address and the customer's."""
    full_name = f"{customer['first_name']} {customer['last_name']}"
    line = f"شارع {city.street}، {city.district}، {city.postal_code}، {city.name.ar}، {c.COUNTRY.ar}"
    lat = round(city.lat + rng.uniform(-0.08, 0.08), 4)
    lng = round(city.lng + rng.uniform(-0.08, 0.08), 4)
    return {
        "id": rng.randint(1800000000, 1899999999),
        "app_id": None,
        "company": company.en,
        "logo": f"https://cdn.salla.sa/shipping/companies/{company.en.lower()}.png",
        "receiver": {"name": full_name, "email": customer["email"], "phone": f"966{customer['mobile']}"},
        "shipper": {"name": c.STORE_NAME, "company_name": c.STORE_SLUG, "email": "store@example.com"}
        | {"phone": "966500000001"},
        "pickup_address": _address(c.COUNTRY.en, c.STORE_CITY, c.STORE_ADDRESS, 24.6911, 46.6853),
        # The customer's address carries the country code where the pickup address has the name,
        # as in examples/salla/samples/api/orders.detail.json.
        "address": _address(c.COUNTRY_CODE, city, line, lat, lng),
        "shipment": {"id": "0", "pickup_id": None, "tracking_link": "0", "label": []},
        "policy_options": [],
    }
