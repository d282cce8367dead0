"""Name and key formats, with upstream's messages (apimachinery `pkg/util/validation`).

Each `is_*` returns the list of what is wrong (empty when the value is fine), as upstream's
`IsDNS1123Label` & co. do; validation turns each message into an `Invalid value` error."""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError, quirks included ("(e.g. 'my-name',  or '123-abc', ...")."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    ex = ""
    for i, e in enumerate(examples):
        if i > 0:
            ex += " or "
        ex += f"'{e}', "
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _full(fmt: str, value: str) -> bool:
    return re.fullmatch(fmt, value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_LABEL_FMT, value):
        errs.append(regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                                "or '-', and must start and end with an alphanumeric character",
                                _LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_SUBDOMAIN_FMT, value):
        errs.append(regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                "characters, '-' or '.', and must start and end with an alphanumeric character",
                                _SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _full(_DNS1035_FMT, value):
        errs.append(regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                                "start with an alphabetic character, and end with an alphanumeric character",
                                _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    """Names of pods, configmaps, secrets, endpointslices (a generateName prefix may end in '-')."""
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    """Names of namespaces."""
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    """Names of services."""
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 characters of a-z, 0-9 and '-', at least one letter, no '--',
    no '-' at either end."""
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _full("[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _no_chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_relaxed_env_var_name(value: str) -> list[str]:
    """Env var names since RelaxedEnvironmentVariableValidation (GA in 1.34): printable ASCII but '='."""
    errs = []
    if not value:
        errs.append("environment variable name must be non-empty")
    if any(ord(c) > 126 or ord(c) < 32 or c == "=" for c in value):
        errs.append("a valid environment variable name must consist only of printable ASCII characters other "
                    "than '='")
    return errs + _no_chdir_prefix(value)


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_CONFIG_KEY_FMT, value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                                _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _no_chdir_prefix(value)


def is_qualified_name(value: str) -> list[str]:
    """Label keys and annotation keys: an optional DNS subdomain prefix and '/', then a name of at
    most 63 characters."""
    errs = []
    parts = value.split("/")
    qmsg = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " \
           "alphanumeric character"
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(qmsg, _QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _full(_QNAME_FMT, name):
        errs.append("name part " + regex_error(qmsg, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_FMT, value):
        errs.append(regex_error("a valid label must be an empty string or consist of alphanumeric characters, "
                                "'-', '_' or '.', and must start and end with an alphanumeric character",
                                _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_http_header_name(value: str) -> list[str]:
    if _full(_HTTP_HEADER_FMT, value):
        return []
    return [regex_error("a valid HTTP header must consist of alphanumeric characters or '-'", _HTTP_HEADER_FMT,
                        "X-Header-Name")]


def is_valid_ip(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_user_id(uid: int) -> list[str]:
    return [] if 0 <= uid <= 2147483647 else [inclusive_range_error(0, 2147483647)]


is_valid_group_id = is_valid_user_id
