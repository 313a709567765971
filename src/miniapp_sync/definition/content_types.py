"""The CRM content types that sync writes into, with their required fields (D18).

This is data about the target, needed both by the linter (static checklist) and by record
validation at run time, so it lives at the bottom of the import graph.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContentType:
    """A target entity: its name, the fields a record must have, and the fields it knows."""

    name: str
    required: tuple[str, ...]
    known: frozenset[str]


def _type(name: str, required: tuple[str, ...], fields: str) -> ContentType:
    return ContentType(name, required, frozenset(required) | frozenset(fields.split()))


CATALOG: dict[str, ContentType] = {
    t.name: t
    for t in (
        _type(
            "core:product",
            ("code", "name"),
            "shortName slug status type description barcodes unitPrice salePrice costPrice currency "
            "categoryId sku externalUrl source mpn gtin quantity unlimitedQuantity isAvailable weight "
            "weightUnit images image productVariants hasVariants updatedAt createdAt",
        ),
        _type(
            "core:customer",
            ("code",),
            "firstName lastName primaryEmail primaryPhone emails phones avatar sex birthDate position "
            "department state city country primaryAddress source updatedAt createdAt",
        ),
        _type(
            "ecommerce:orders",
            ("code",),
            "orderNumber status paymentStatus paymentMethod totalAmount subtotalAmount discountAmount "
            "shippingAmount taxAmount currency items customerCode customerName discountCodes "
            "externalUrl platformSource source createdAt updatedAt",
        ),
        _type(
            "ecommerce:abandonedCarts",
            ("code",),
            "status totalAmount subtotalAmount discountAmount currency items checkoutUrl customerCode "
            "customerName discountCodes source createdAt updatedAt",
        ),
    )
}


def content_type(name: str) -> ContentType:
    """Return the catalog entry, or an open type that only requires ``code`` (D18)."""
    return CATALOG.get(name) or ContentType(name, ("code",), frozenset({"code"}))
