"""Resource quantities as the API server reads, compares and prints them
(apimachinery `pkg/api/resource`): strict parsing, exact values, the canonical string.

`parse("0.5")` is (Decimal("0.5"), DECIMAL_SI); `canonical("0.5")` is "500m", as `kubectl get`
shows a stored `cpu: 0.5`. The suffix picks the format kept for printing: binary (`Ki`..`Ei`),
decimal SI (`n u m "" k M G T P E`) or a decimal exponent (`e3`). Values round up (away from
zero) to nano precision. kubelet_py.quantity stays the lenient reader the CLI uses for flags."""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_CEILING, ROUND_UP, Decimal

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
MAX_MAGNITUDE = Decimal(10) ** 30  # far above any cgroup value (int64); bounds every integer made from one

_BIN = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC.items()}
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_CTX = decimal.Context(prec=120, Emax=10**6, Emin=-10**6)
_NANO = Decimal("1e-9")


class QuantityError(ValueError):
    pass


def parse(text: str) -> tuple[Decimal, str]:
    """The exact value and the format of a quantity string; QuantityError with upstream's
    wording when it is not one."""
    if not isinstance(text, str):
        raise QuantityError(FORMAT_ERROR)
    m = _SHAPE.fullmatch(text)
    if not m or not (m.group(2) or m.group(3)):
        raise QuantityError(FORMAT_ERROR)
    sign, whole, frac, suffix = m.groups()
    with decimal.localcontext(_CTX):
        number = Decimal(f"{sign}{whole or '0'}.{frac or '0'}")
        if suffix in _BIN:
            fmt, value = BINARY_SI, number * (Decimal(2) ** (10 * _BIN[suffix]))
        elif suffix in _DEC:
            fmt, value = DECIMAL_SI, number.scaleb(_DEC[suffix])
        elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
            exp = int(suffix[1:]) if len(suffix) < 12 else 10**9
            if abs(exp) > 2**31 - 1:
                raise QuantityError("unable to parse quantity's suffix")
            if number and exp + number.adjusted() > 40:
                raise QuantityError("quantity is too large")
            fmt, value = DECIMAL_EXPONENT, number.scaleb(max(exp, -100))
        else:
            raise QuantityError("unable to parse quantity's suffix")
        if abs(value) >= MAX_MAGNITUDE:
            raise QuantityError("quantity is too large")
        if value != 0:
            value = value.quantize(_NANO, rounding=ROUND_UP)
            if value == 0:
                value = _NANO.copy_sign(number)
        if fmt == BINARY_SI and 0 < abs(value) < 1:
            fmt = DECIMAL_SI
    return value, fmt


def from_json(value) -> str:
    """A quantity as JSON may hold it (a string, or a number as Go's Quantity.UnmarshalJSON
    accepts one) as the string to parse."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(FORMAT_ERROR)
    return value if isinstance(value, str) else repr(value)


def format_quantity(value: Decimal, fmt: str) -> str:
    """Upstream's Quantity.String(): the canonical form."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    v = abs(value)
    with decimal.localcontext(_CTX):
        if fmt == BINARY_SI:
            if v < 1024 or v != v.to_integral_value():
                fmt = DECIMAL_SI
            else:
                n, exp = int(v), 0
                while n % 1024 == 0 and exp < 6:
                    n, exp = n // 1024, exp + 1
                return sign + str(n) + ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp]
        digits, exp = v.normalize().as_tuple()[1:]
        mantissa = int("".join(map(str, digits)))
        while exp % 3:
            mantissa, exp = mantissa * 10, exp - 1
        if fmt == DECIMAL_EXPONENT:
            return sign + str(mantissa) + (f"e{exp}" if exp else "")
        if exp > 18:
            mantissa, exp = mantissa * 10 ** (exp - 18), 18
        return sign + str(mantissa) + _DEC_BY_EXP[exp]


def canonical(text: str) -> str:
    return format_quantity(*parse(text))


def round_up_milli(text: str) -> str:
    """SetDefaults_ResourceList: the canonical string once rounded up (away from zero) to milli
    precision (`100u` -> "1m")."""
    v, fmt = parse(text)
    with decimal.localcontext(_CTX):
        v = v.quantize(Decimal("0.001"), rounding=ROUND_UP)
    return format_quantity(v, fmt)


def value(text: str) -> Decimal:
    return parse(text)[0]


def milli(text: str) -> int:
    """MilliValue(): thousandths, rounded up (cpu `0.0001` is 1)."""
    with decimal.localcontext(_CTX):
        return int((parse(text)[0] * 1000).to_integral_value(rounding=ROUND_CEILING))


def whole(text: str) -> int:
    """Value(): rounded up to an integer (memory in bytes)."""
    with decimal.localcontext(_CTX):
        return int(parse(text)[0].to_integral_value(rounding=ROUND_CEILING))
