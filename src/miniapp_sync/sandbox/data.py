"""Deterministic Salla-shaped records: products, customers, orders and abandoned carts.

Records are stored in their richest (detail) shape, as in examples/salla/samples/api/*.detail.json;
``records.py`` derives the list and webhook shapes from them.
"""

from __future__ import annotations

import random
import string
from datetime import datetime, timedelta
from typing import Final

from miniapp_sync.sandbox import catalog as c
from miniapp_sync.sandbox import shapes
from miniapp_sync.sandbox.shapes import Record

_EDITIONS: Final = [c.Name("", ""), c.Name("عبوة هدية", "Gift Pack"), c.Name("عبوة توفير", "Value Pack")]
_ALNUM: Final = string.ascii_letters + string.digits


class Generator:
    """Makes records one at a time from a seed; ``SandboxData.add`` keeps using the same sequences."""

    def __init__(self, seed: int) -> None:
        # One stream per resource, so changing how many orders are made leaves the products alone.
        self._rng = {name: random.Random(f"{seed}:{name}") for name in ("products", "customers", "orders", "carts")}
        self._next_id = {"products": 1734512301, "customers": 1589632014, "orders": 1920301017, "carts": 748201113}
        self._order_item_id = 70800001
        self._cart_item_id = 1190040001
        self._reference_id = 23001
        self._product_index = 0
        combos = [(f, v, s) for f in c.FAMILIES_OF_PRODUCTS for v in f.variants for s in f.sizes]
        self._rng["products"].shuffle(combos)
        self._combos = combos

    def next_id(self, resource: str) -> int:
        """Return the next id of a resource (ascending, with gaps, like real ids)."""
        found = self._next_id[resource]
        self._next_id[resource] = found + self._rng[resource].randint(1, 9)
        return found

    def _token(self, rng: random.Random, size: int) -> str:
        return "".join(rng.choices(_ALNUM, k=size))

    def product(self, created: datetime, updated: datetime) -> Record:
        """Make one product."""
        rng = self._rng["products"]
        index = self._product_index
        self._product_index += 1
        family, variant, (size, factor) = self._combos[index % len(self._combos)]
        round_ = index // len(self._combos)
        edition = _EDITIONS[round_ % len(_EDITIONS)]
        number = round_ // len(_EDITIONS)
        arabic = rng.random() < 0.55
        lang = "ar" if arabic else "en"
        name = (family.ar if arabic else family.en).format(v=getattr(variant, lang), s=getattr(size, lang))
        name = name.removesuffix(" - ")
        if edition.en:
            name += f" ({getattr(edition, lang)})"
        if number:
            name += f" #{number + 1}"
        pid = self.next_id("products")
        regular = round(rng.uniform(*family.price) * factor) + (0.5 if rng.random() < 0.15 else 0)
        promo = rng.choice(c.PROMOTIONS) if rng.random() < 0.25 else None
        price = round(regular * (1 - promo[1] / 100), 2) if promo else regular
        as_text = rng.random() < 0.15  # Salla sends some amounts as strings ("65.00")
        unlimited = family.type in ("digital", "service")
        roll = rng.random()
        status = "hidden" if roll < 0.05 else "out" if roll < 0.12 and not unlimited else "sale"
        quantity = None if unlimited else 0 if status == "out" else rng.randint(1, 480)
        sku_code = "".join(ch for ch in variant.en.upper() if ch.isalpha())[:3]
        size_code = size.en.replace(" g", "").replace(" kg", "KG").replace(" ", "")
        sku = "" if rng.random() < 0.1 else "-".join(p for p in (family.sku, sku_code, size_code) if p)
        slug = "-".join(name.split(" - ")[0].lower().split())
        url = f"{c.STORE_URL}/{slug}/p{pid}"
        image = f"{c.CDN_URL}/{self._token(rng, 40)}.jpg"
        weight = round(family.weight * factor, 2)
        rating_count = rng.randint(0, 120)
        rate = round(rng.uniform(3.6, 5.0), 1)
        stamp = shapes.plain_time(updated)
        record: Record = {
            "id": pid,
            "promotion": {"title": promo[0], "sub_title": f"خصم {promo[1]}%"}
            if promo
            else {"title": None, "sub_title": None},
            "sku": sku,
            "mpn": f"MPN-{rng.randint(10000, 99999)}" if rng.random() < 0.1 else None,
            "gtin": _gtin(rng) if rng.random() < 0.4 else None,
            "type": family.type,
            "name": name,
            "short_link_code": self._token(rng, 7),
            "urls": {"customer": url, "admin": f"{c.ADMIN_URL}/products/{pid}"},
            "price": shapes.money(price, text=as_text),
            "taxed_price": shapes.money(price * (1 + c.TAX_RATE)),
            "pre_tax_price": shapes.money(price, text=as_text),
            "tax": shapes.money(price * c.TAX_RATE),
            "description": f"<p>{getattr(family.blurb, lang).format(v=getattr(variant, lang))}</p>",
            "quantity": quantity,
            "status": status,
            "is_available": status == "sale",
            "views": rng.randint(20, 6000),
            "sale_price": shapes.money(price if promo else 0, text=as_text),
            "sale_end": (c.SNAPSHOT + timedelta(days=rng.randint(1, 30))).strftime("%Y-%m-%d") if promo else None,
            "require_shipping": not unlimited,
            "cost_price": rng.choice([None, "", f"{regular * 0.6:.2f}", f"{regular * 0.55:.2f}"]),
            "weight": shapes.amount(weight),
            "weight_type": "kg",
            "with_tax": False,
            "url": url,
            "main_image": image,
            "images": [
                {"id": pid - 1000000007, "url": image, "main": True, "three_d_image_url": None, "alt": name}
                | {"video_url": None, "type": "image", "sort": 1}
            ],
            "sold_quantity": rng.randint(0, 1500),
            "rating": {"total": round(rating_count * rate), "count": rating_count, "rate": rate},
            "regular_price": shapes.money(regular, text=as_text),
            "max_items_per_user": 0,
            "maximum_quantity_per_order": None,
            "show_in_app": True,
            "notify_quantity": None if unlimited else 10,
            "hide_quantity": False,
            "unlimited_quantity": unlimited,
            "managed_by_branches": False,
            "services_blocks": {"installments": []},
            "calories": f"{rng.randint(250, 310)}.00" if family.key == "dates" else None,
            "customized_sku_quantity": False,
            "channels": ["app", "web"],
            "starting_price": None,
            "metadata": {"title": None, "description": None},
            # Detail-only fields from here on (records.LIST_OMITS["products"]).
            "allow_attachments": False,
            "is_pinned": False,
            "pinned_date": stamp,
            "sort": index + 1,
            "enable_upload_image": False,
            "updated_at": stamp,
            "options": shapes.grind_option(pid) if family.key == "coffee" else [],
            "skus": [],
            "categories": [shapes.category(family)],
            "brand": dict(c.BRAND),
            "tags": [],
        }
        return record

    def customer(self, updated: datetime) -> Record:
        """Make one customer."""
        rng = self._rng["customers"]
        cid = self.next_id("customers")
        gender = rng.choice(["male", "female"])
        first = rng.choice(c.MALE if gender == "male" else c.FEMALE)
        family = rng.choice(c.FAMILIES)
        arabic = rng.random() < 0.55
        local = f"{first.en}.{family.en.removeprefix('Al-')}"
        local = local if rng.random() < 0.2 else local.lower()  # some emails keep their capitals
        email = f"{local}{cid % 1000 if rng.random() < 0.5 else ''}@{rng.choice(c.EMAIL_DOMAINS)}"
        born = datetime(rng.randint(1965, 2006), rng.randint(1, 12), rng.randint(1, 28), tzinfo=c.RIYADH)
        city = rng.choices(c.CITIES, weights=[30, 22, 12, 8, 6, 6, 5, 4, 4, 3])[0]
        return {
            "id": cid,
            "first_name": first.ar if arabic else first.en,
            "last_name": family.ar if arabic else family.en,
            "mobile": rng.choice(c.MOBILE_PREFIXES) * 10_000_000 + rng.randint(0, 9_999_999),
            "mobile_code": "+966",
            "email": email,
            "urls": {"customer": f"{c.STORE_URL}/profile", "admin": f"{c.ADMIN_URL}/customers/{self._token(rng, 32)}"},
            "avatar": c.AVATARS[gender],
            "gender": gender,
            "birthday": shapes.carbon(born) if rng.random() < 0.7 else None,
            "city": city.name.en,
            "country": c.COUNTRY.en,
            "country_code": c.COUNTRY_CODE,
            "currency": "SAR",
            "location": "",
            "updated_at": shapes.carbon(updated),
            "groups": [1483920577] if rng.random() < 0.15 else [],
        }

    def order(self, created: datetime, updated: datetime, customer: Record, products: list[Record]) -> Record:
        """Make one order for ``customer`` from a few of ``products``."""
        rng = self._rng["orders"]
        oid = self.next_id("orders")
        reference = self._reference_id
        self._reference_id += rng.randint(1, 3)
        # Orders older than two weeks have settled: delivered, completed or canceled.
        settled = c.SNAPSHOT - created > timedelta(days=14)
        statuses = [s for s in c.ORDER_STATUSES if not settled or s.slug in ("delivered", "completed", "canceled")]
        status = rng.choices(statuses, weights=[s.weight for s in statuses])[0]
        chosen = rng.sample(products, k=min(len(products), rng.choices([1, 2, 3, 4], weights=[45, 30, 17, 8])[0]))
        coupon = rng.choice(c.COUPONS) if rng.random() < 0.25 else None
        payment = rng.choice(c.PAYMENT_METHODS)
        lines = [(p, 1 if p["type"] in ("digital", "service") else rng.randint(1, 3)) for p in chosen]
        sub_total = sum(_price(p) * qty for p, qty in lines)
        discount = 0.0
        if coupon is not None:
            discount = sub_total * coupon.amount / 100 if coupon.type == "percentage" else min(coupon.amount, sub_total)
        discount = round(discount, 2)
        ships = any(p["require_shipping"] for p, _ in lines)
        shipping_cost = 0 if not ships or sub_total >= 300 else 25
        cod = 10 if payment == "cod" else 0
        tax = round((sub_total - discount) * c.TAX_RATE, 2)
        items = [self._order_item(p, qty, discount / sub_total if sub_total else 0.0) for p, qty in lines]
        token = self._token(rng, 32)
        city = next(x for x in c.CITIES if x.name.en == customer["city"])
        company = rng.choice(c.SHIPPING_COMPANIES)
        device = rng.choice(["mobile", "mobile", "desktop"])
        return {
            "id": oid,
            "reference_id": reference,
            "urls": {"customer": f"{c.STORE_URL}/order/{token}", "admin": f"{c.ADMIN_URL}/orders/order/{token}"},
            "date": shapes.carbon(created),
            "updated_at": shapes.carbon(updated),
            "source": "store",
            "source_device": device,
            "source_details": {
                "type": rng.choice(["direct", "direct", "search", "social"]),
                "value": None,
                "device": device,
                "user-agent": rng.choice(c.USER_AGENTS),
                "ip": f"188.{rng.randint(48, 55)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            },
            "first_complete_at": shapes.carbon(updated) if status.slug == "completed" else None,
            "status": shapes.status_object(status.slug),
            "payment_method": payment,
            "currency": "SAR",
            "amounts": {
                "sub_total": shapes.money(sub_total),
                "shipping_cost": shapes.money(shipping_cost),
                "cash_on_delivery": shapes.money(cod),
                "tax": {"percent": f"{c.TAX_RATE * 100:.2f}", "amount": shapes.money(tax)},
                "discounts": [shapes.discount(coupon, discount)] if coupon else [],
                "total": shapes.money(sub_total - discount + shipping_cost + cod + tax),
            },
            "shipping": shapes.shipping(rng, company, customer, city) if ships else None,
            "can_cancel": status.slug in ("payment_pending", "under_review"),
            "show_weight": False,
            "can_reorder": True,
            "is_pending_payment": status.slug == "payment_pending",
            "pending_payment_ends_at": 0,
            "total_weight": f"{round(sum(it['weight'] * it['quantity'] for it in items), 2):g} kg",
            "rating_link": None,
            "shipment_branch": [],
            "customer": {k: v for k, v in customer.items() if k != "groups"},
            "items": items,
            "bank": None,
            "tags": [],
        }

    def _order_item(self, product: Record, quantity: int, discount_share: float) -> Record:
        unit = _price(product)
        total = unit * quantity
        discount = total * discount_share
        item_id = self._order_item_id
        self._order_item_id += self._rng["orders"].randint(1, 4)
        options = [
            shapes.chosen_option(item_id, option, self._rng["orders"].choice(option["values"]))
            for option in product["options"]
        ]
        keys = ("id", "type", "promotion", "status", "is_available", "sku", "name", "price", "sale_price")
        return {
            "id": item_id,
            "name": product["name"],
            "sku": product["sku"],
            "quantity": quantity,
            "currency": "SAR",
            "weight": product["weight"],
            "weight_label": f"{product['weight']:g} kg",
            "amounts": {
                "price_without_tax": shapes.money(unit),
                "total_discount": shapes.money(discount),
                "tax": {"percent": f"{c.TAX_RATE * 100:.2f}", "amount": shapes.money((total - discount) * c.TAX_RATE)},
                "total": shapes.money(total),
            },
            "notes": "",
            "product": {k: product[k] for k in keys}
            | {"currency": "SAR", "url": product["url"], "thumbnail": product["main_image"]}
            | {"has_special_price": bool(product["sale_end"]), "regular_price": product["regular_price"]}
            | {"calories": product["calories"], "mpn": product["mpn"], "gtin": product["gtin"]}
            | {"favorite": None, "starting_price": None},
            "options": options,
            "images": [],
            "codes": [],
            "files": [],
        }

    def cart(self, created: datetime, updated: datetime, customer: Record, products: list[Record]) -> Record:
        """Make one abandoned cart for ``customer``."""
        rng = self._rng["carts"]
        cart_id = self.next_id("carts")
        chosen = rng.sample(products, k=min(len(products), rng.choice([1, 1, 2, 2, 3])))
        items = []
        for product in chosen:
            quantity = rng.randint(1, 3)
            items.append(
                {
                    "id": self._cart_item_id,
                    "product_id": product["id"],
                    "quantity": quantity,
                    "amounts": {"total": shapes.money(_price(product) * quantity)},
                }
            )
            self._cart_item_id += rng.randint(1, 30)
        subtotal = sum(_price(p) * it["quantity"] for p, it in zip(chosen, items, strict=True))
        coupon = rng.choice(c.COUPONS) if rng.random() < 0.2 else None
        discount = 0.0
        if coupon is not None:
            discount = subtotal * coupon.amount / 100 if coupon.type == "percentage" else min(coupon.amount, subtotal)
        return {
            "id": cart_id,
            "total": shapes.money(subtotal - discount),
            "subtotal": shapes.money(subtotal),
            "total_discount": shapes.money(discount),
            "checkout_url": f"{c.STORE_URL}/checkout/cart/{cart_id}?token=ac_{rng.getrandbits(32):08x}",
            "age_in_minutes": max(0, int((c.SNAPSHOT - created).total_seconds() // 60)),
            "created_at": shapes.carbon(created),
            "updated_at": shapes.carbon(updated),
            "status": "purchased" if rng.random() < 0.2 else "active",
            "customer": {
                "id": customer["id"],
                "name": f"{customer['first_name']} {customer['last_name']}",
                "mobile": f"{customer['mobile_code']}{customer['mobile']}",
                "email": customer["email"],
                "avatar": customer["avatar"],
                "country": customer["country"],
                "city": customer["city"],
            },
            "coupon": shapes.coupon(coupon) if coupon else None,
            "items": items,
        }


def _price(product: Record) -> float:
    return float(product["price"]["amount"])


def _gtin(rng: random.Random) -> str:
    digits = [6, 2, 8] + [rng.randint(0, 9) for _ in range(9)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, [*digits, check]))
