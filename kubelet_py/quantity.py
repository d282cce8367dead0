"""Kubernetes resource quantities (pure): `500m`, `2`, `64Mi`, `1G`, `1e3`."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1, "k": 10**3,
           "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")


class QuantityError(ValueError):
    def __init__(self, value: str, field: str):
        super().__init__(f"{field}: {value!r} is not a Kubernetes quantity (e.g. 500m, 1, 64Mi, 1G)")
        self.value = value
        self.field = field


def parse_quantity(value: str, field: str = "quantity") -> Decimal:
    m = _RE.match(str(value).strip())
    if not m:
        raise QuantityError(value, field)
    try:
        num = Decimal(m.group(1))
    except InvalidOperation:
        raise QuantityError(value, field) from None
    suf = m.group(2) or ""
    if suf[:1] in ("e", "E"):
        return num * (Decimal(10) ** int(suf[1:]))
    return num * Decimal(_SUFFIX[suf])


def to_milli(value: str, field: str = "cpu") -> int:
    """CPU in millicores, rounded up as the API server does (0.0001 -> 1m)."""
    q = parse_quantity(value, field)
    if q < 0:
        raise QuantityError(value, field)
    return int((q * 1000).to_integral_value(rounding=ROUND_CEILING))


def to_bytes(value: str, field: str = "memory") -> int:
    q = parse_quantity(value, field)
    if q < 0:
        raise QuantityError(value, field)
    return int(q.to_integral_value(rounding=ROUND_CEILING))
