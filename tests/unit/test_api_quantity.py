"""kubelet_py.api.quantity: strict parsing, exact values and the canonical strings the API
server stores (what `kubectl get -o yaml` shows)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubelet_py.api import quantity as q


@pytest.mark.parametrize("text,canonical", [
    ("500m", "500m"), ("0.5", "500m"), (".5", "500m"), ("5.", "5"), ("128Mi", "128Mi"), ("1G", "1G"),
    ("1e3", "1e3"), ("1E3", "1e3"), ("1000", "1k"), ("1500", "1500"), ("100M", "100M"), ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"), ("2048Mi", "2Gi"), ("1024", "1024"), ("1023Ki", "1023Ki"), ("1.1Mi", "1153433600m"),
    ("0.0001", "100u"), ("1e-12", "1e-9"), ("12e6", "12e6"), ("0", "0"), ("0m", "0"), ("-1", "-1"),
    ("+2", "2"), ("1000000000000000000000", "1000E"), ("8Ei", "8Ei"), ("1000m", "1"),
])
def test_canonical(text, canonical):
    assert q.canonical(text) == canonical


@pytest.mark.parametrize("text,milli,whole", [
    ("500m", 500, 1), ("0.5", 500, 1), ("1", 1000, 1), ("0.0001", 1, 1), ("128Mi", 134217728000, 134217728),
    ("1G", 10**12, 10**9), ("1e3", 10**6, 1000), ("1.1Mi", 1153433600, 1153434),
])
def test_milli_and_whole_round_up(text, milli, whole):
    assert (q.milli(text), q.whole(text)) == (milli, whole)


@pytest.mark.parametrize("text,fmt", [("1Ki", q.BINARY_SI), ("1k", q.DECIMAL_SI), ("1e3", q.DECIMAL_EXPONENT),
                                      ("0.5Ki", q.BINARY_SI), ("0.5Mi", q.BINARY_SI), ("1", q.DECIMAL_SI)])
def test_format_follows_the_suffix(text, fmt):
    assert q.parse(text)[1] == fmt


def test_binary_below_one_becomes_decimal():
    assert q.parse("0.0001Ki") == (Decimal("0.1024"), q.DECIMAL_SI)


@pytest.mark.parametrize("text", ["", "abc", "1x", "m", "1 ", " 1", "1Kib", "+", ".", "1.5.5", "1k3", "--1", "1e",
                                  "0x10"])
def test_invalid(text):
    with pytest.raises(q.QuantityError):
        q.parse(text)


def test_format_error_is_upstreams():
    with pytest.raises(q.QuantityError) as e:
        q.parse("abc")
    assert str(e.value) == ("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize("text", ["1e40", "1e99999999999", "2000000000000000000000000000000"])
def test_too_large_is_refused_without_building_it(text):
    with pytest.raises(q.QuantityError, match="too large"):
        q.parse(text)


def test_json_numbers():
    assert q.canonical(q.from_json(0.5)) == "500m"
    assert q.canonical(q.from_json(2)) == "2"
    for bad in (True, None, [1]):
        with pytest.raises(q.QuantityError):
            q.from_json(bad)


def test_round_up_milli():
    assert q.round_up_milli("100u") == "1m"
    assert q.round_up_milli("1.0001") == "1001m"
    assert q.round_up_milli("128Mi") == "128Mi"
    assert q.round_up_milli("-0.0001") == "-1m"
