"""A quantity written the way apimachinery's `Quantity.String()` writes it (pure), as kubectl
describe prints Limits and Requests: `0.5` -> `500m`, `1000m` -> `1`, `1024Mi` -> `1Gi`,
`0.5Gi` -> `512Mi`, `1000` -> `1k`, `1e3` stays `1e3`.

The format comes from the input's suffix (binary `Ki`..`Ei`, decimal exponent `e3`, or decimal
SI); binary values below 1024 or not whole are written in decimal SI. Decimal values are written
as an integer mantissa and a power of ten that is a multiple of 3.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal

from kubelet_py.quantity import parse_quantity

_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_SUFFIX_RE = re.compile(r"(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|n|u|m|k|M|G|T|P|E)?$")


def _decimal(q: Decimal, exponent_format: bool) -> str:
    sign = "-" if q < 0 else ""
    q = abs(q)
    if q.as_tuple().exponent < -9:                # the API keeps nano precision, rounding up
        q = q.quantize(Decimal("1e-9"), rounding=ROUND_CEILING)
    if q == 0:
        return "0"
    _, digits, exp = q.normalize().as_tuple()
    mantissa = int("".join(map(str, digits)))
    while exp % 3:
        mantissa *= 10
        exp -= 1
    if exponent_format:
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")
    if exp in _DECIMAL:
        return f"{sign}{mantissa}{_DECIMAL[exp]}"
    return f"{sign}{mantissa}e{exp}"


def canonical(value: str) -> str:
    text = str(value).strip()
    q = parse_quantity(text)
    suffix = _SUFFIX_RE.search(text).group(1) or ""
    if suffix in _BINARY[1:]:
        if -1024 < q < 1024 or q != q.to_integral_value():
            return _decimal(q, False)
        sign = "-" if q < 0 else ""
        n, power = int(abs(q)), 0
        while n and n % 1024 == 0 and power < len(_BINARY) - 1:
            n //= 1024
            power += 1
        return f"{sign}{n}{_BINARY[power]}"
    return _decimal(q, suffix[:1] in ("e", "E"))
