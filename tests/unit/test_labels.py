"""Label selectors as kubectl -l takes them."""

import pytest

from kubelet_py.labels import SelectorError, matches, parse_selector


def _pod(**labels):
    return {"metadata": {"labels": labels}}


@pytest.mark.parametrize("sel,labels,want", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (web, db)", {"app": "db"}, True),
    ("app in (web,db),tier", {"app": "db"}, False),
    ("app in (web,db),tier", {"app": "db", "tier": "x"}, True),
    ("app notin (web)", {"app": "db"}, True),
    ("app notin (web)", {}, True),
    ("app notin (web)", {"app": "web"}, False),
    ("!canary", {"app": "web"}, True),
    ("!canary", {"canary": ""}, False),
    ("example.com/team=a,app=web", {"example.com/team": "a", "app": "web"}, True),
    ("", {"x": "y"}, True),
    ("app=", {"app": ""}, True),
])
def test_selector_matches(sel, labels, want):
    assert matches(parse_selector(sel), _pod(**labels)) is want


@pytest.mark.parametrize("bad", ["app===web", "app in ()", "a b", "=x", "app in web"])
def test_bad_selectors_are_named(bad):
    with pytest.raises(SelectorError, match="unable to parse|at least one value"):
        parse_selector(bad)
