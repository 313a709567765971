"""Built-in transforms: value tables per transform, build-time option checks, compute, properties."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync.definition.rules import MISSING, TransformStep, parse_rule
from miniapp_sync.errors import TransformError
from miniapp_sync.mapping.compute import BUILTIN_FUNCTIONS
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.transforms import TRANSFORM_NAMES, Transform, build_transform


def build(name: str, fn: str | None = None, registry: FunctionRegistry | None = None, **options: Any) -> Transform:
    step = TransformStep(name=name, fn=fn, options=MappingProxyType(options))
    return build_transform(step, functions=registry or FunctionRegistry())


def test_transform_names_are_the_documented_ones_and_more() -> None:
    documented = {"toString", "toNumberOrNull", "coalesce", "mapItems", "joinCodes", "compute"}
    extra = {"toBoolean", "toInteger", "toISODate", "lowercase", "trim", "normalizePhone"}
    assert documented | extra == TRANSFORM_NAMES


def test_steps_parsed_from_rules_build() -> None:
    rule = parse_rule({"path": "discounts", "transform": ["joinCodes", "lowercase"], "separator": " | "})
    join, lower = (build_transform(s, functions=FunctionRegistry()) for s in rule.transforms)
    assert lower(join([{"code": "SAVE10"}, {"code": "VIP"}])) == "save10 | vip"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        ("", ""),
        (12, "12"),
        (-7, "-7"),
        (12.0, "12"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (2**70, "1180591620717411303424"),
        (True, "true"),
        (False, "false"),
        (None, None),
        (float("nan"), None),
        ({"b": [1, 2], "a": "ر"}, '{"b":[1,2],"a":"ر"}'),
        ([1, "x", None], '[1,"x",null]'),
        ([2**70], "[1180591620717411303424]"),
    ],
)
def test_to_string(value: Any, expected: str | None) -> None:
    assert build("toString")(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.5, 12.5),
        ("12", 12),
        (" 12.50 ", 12.5),
        ("+5", 5),
        ("-3.25", -3.25),
        ("1,234.50", 1234.5),
        ("1,234,567", 1234567),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("١٢٣", 123),  # Arabic-Indic
        ("۱۲۳", 123),  # Eastern Arabic-Indic
        ("١٬٢٣٤٫٥٠", 1234.5),  # Arabic thousands and decimal separators
        ("\u200f١٢٠٫٥٠ ر.س", 120.5),  # with a right-to-left mark, as RTL-formatted prices come
        ("SAR 120.50", 120.5),
        ("120.50 SAR", 120.5),
        ("120.50 ر.س", 120.5),
        ("$12", 12),
        ("-$12", -12),
        ("US$ 5", 5),
        ("€1,000", 1000),
        ("﷼ 10", 10),
        ("10 د.إ", 10),
        ({"amount": 99, "currency": "SAR"}, 99),
        ({"amount": "5.00", "currency": "SAR"}, 5.0),
        ({"percent": "15.00", "amount": {"amount": 30, "currency": "SAR"}}, 30),
        ({"currency": "SAR"}, None),
        ("1,5", None),  # decimal comma is ambiguous: not a number rather than 15
        ("1,23,456", None),
        ("12 apples", None),
        ("abc", None),
        ("", None),
        (".", None),
        ("-$-5", None),
        ("nan", None),
        ("1e999", None),
        (float("inf"), None),
        (True, None),
        (None, None),
        ([1], None),
        ("9" * 5000, None),
    ],
)
def test_to_number_or_null(value: Any, expected: float | None) -> None:
    result = build("toNumberOrNull")(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), ("12.4", 12), ("12.6", 13), (2.5, 2), (3.5, 4), ("-2.5", -2), ("SAR 10", 10), ("x", None), (None, None)],
)
def test_to_integer_rounds_halves_to_even(value: Any, expected: int | None) -> None:
    result = build("toInteger")(value)
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("1", True),
        ("١", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        (1, True),
        (0, False),
        (0.0, False),
        (2, None),
        ("maybe", None),
        (None, None),
        ([], None),
    ],
)
def test_to_boolean(value: Any, expected: bool | None) -> None:
    assert build("toBoolean")(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([MISSING, None, "", [], {}, "x"], "x"),
        ([None, 0, 5], 0),
        ([False, True], False),
        ((MISSING, {"a": 1}), {"a": 1}),
        ([MISSING, None, ""], MISSING),
        ([], MISSING),
        ("x", "x"),
        ("", MISSING),
        (0, 0),
        ({}, MISSING),
    ],
)
def test_coalesce(value: Any, expected: Any) -> None:
    assert build("coalesce")(value) == expected


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (["SAVE10", "VIP"], {}, "SAVE10,VIP"),
        (["SAVE10", "", None, " VIP "], {}, "SAVE10,VIP"),
        ([{"code": "SAVE10", "discount": "5.00"}, {"code": "", "name": "Eid"}, {"title": "auto"}], {}, "SAVE10,Eid"),
        ([{"code": 123}], {}, "123"),
        (["a", "b"], {"separator": ", "}, "a, b"),
        ("SAVE10", {}, "SAVE10"),
        ({"code": "ONE"}, {}, "ONE"),
        ([], {}, None),
        ("", {}, None),
        (None, {}, None),
        ([[], {}], {}, None),
    ],
)
def test_join_codes(value: Any, options: dict[str, Any], expected: str | None) -> None:
    assert build("joinCodes", **options)(value) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("lowercase", "Hello@Example.COM", "hello@example.com"),
        ("lowercase", None, None),
        ("lowercase", 5, 5),
        ("trim", "  a b \n", "a b"),
        ("trim", None, None),
        ("trim", [" a "], [" a "]),
    ],
)
def test_lowercase_and_trim_touch_only_strings(name: str, value: Any, expected: Any) -> None:
    assert build(name)(value) == expected


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (501234567, {}, "+966501234567"),  # Salla customer.mobile: an int without country code
        ("0501234567", {}, "+966501234567"),
        ("+966 50 123 4567", {}, "+966501234567"),
        ("00966501234567", {}, "+966501234567"),
        ("966501234567", {}, "+966501234567"),
        ("٠٥٠١٢٣٤٥٦٧", {}, "+966501234567"),
        ({"mobile": 501234567, "mobile_code": "+966"}, {}, "+966501234567"),
        ({"mobile": "0501234567", "mobile_code": "+971"}, {}, "+971501234567"),
        ({"number": "501234567", "country_code": "971"}, {}, "+971501234567"),
        ({"number": "01012345678", "country_code": "EG"}, {}, "+201012345678"),
        ("0501234567", {"country": "ae"}, "+971501234567"),
        ("01012345678", {"country": "EG"}, "+201012345678"),
        ("+201012345678", {"country": "SA"}, "+201012345678"),
        ("12", {}, None),
        ("call me", {}, None),
        (None, {}, None),
        (True, {}, None),
        ({"email": "a@b.c"}, {}, None),
    ],
)
def test_normalize_phone(value: Any, options: dict[str, Any], expected: str | None) -> None:
    assert build("normalizePhone", **options)(value) == expected


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        (
            {"date": "2024-01-31 10:20:30.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            {},
            "2024-01-31T07:20:30Z",
        ),
        (
            {"date": "2024-07-01 12:00:00.000000", "timezone_type": 3, "timezone": "Europe/Berlin"},
            {},
            "2024-07-01T10:00:00Z",
        ),
        ({"date": "2024-01-31 10:20:30.000000", "timezone_type": 1, "timezone": "+03:00"}, {}, "2024-01-31T07:20:30Z"),
        ({"date": "2024-01-31 10:20:30.000000", "timezone": "Mars/Olympus"}, {}, None),
        ({"date": "2024-01-31 10:20:30"}, {"timezone": "Asia/Riyadh"}, "2024-01-31T07:20:30Z"),
        ("Sun Jun 26 2022 12:21:48 GMT+0300", {}, "2022-06-26T09:21:48Z"),
        ("Sun Jun 26 2022 12:21:48 GMT+0300 (Arabian Standard Time)", {}, "2022-06-26T09:21:48Z"),
        ("Sun, 26 Jun 2022 09:21:48 +0000", {}, "2022-06-26T09:21:48Z"),
        ("2022-06-26T12:21:48+03:00", {}, "2022-06-26T09:21:48Z"),
        ("2022-06-26T09:21:48Z", {}, "2022-06-26T09:21:48Z"),
        ("2022-06-26T09:21:48.250Z", {}, "2022-06-26T09:21:48.250Z"),
        ("2022-06-26 12:21:48", {}, "2022-06-26T12:21:48Z"),
        ("2022-06-26 12:21:48", {"timezone": "Asia/Riyadh"}, "2022-06-26T09:21:48Z"),
        ("2022-06-26 12:21:48.123456", {}, "2022-06-26T12:21:48.123456Z"),
        ("٢٠٢٤-٠١-٣١", {}, "2024-01-31"),
        ("2024-01-31", {}, "2024-01-31"),
        ("31/01/2024 10:20", {"format": "%d/%m/%Y %H:%M"}, "2024-01-31T10:20:00Z"),
        (1656235308, {}, "2022-06-26T09:21:48Z"),
        (1656235308.5, {}, "2022-06-26T09:21:48.500Z"),
        (1656235308123, {}, "2022-06-26T09:21:48.123Z"),  # milliseconds
        ("1656235308", {}, "2022-06-26T09:21:48Z"),
        ("2024-02-30", {}, None),
        ("yesterday", {}, None),
        ("", {}, None),
        (None, {}, None),
        (True, {}, None),
        (10**30, {}, None),
        ([2024, 1, 31], {}, None),
    ],
)
def test_to_iso_date(value: Any, options: dict[str, Any], expected: str | None) -> None:
    assert build("toISODate", **options)(value) == expected


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("joinCodes", {"separator": 5}, "option 'separator' must be a string, found 5"),
        ("normalizePhone", {"country": "XX"}, "unknown country 'XX'"),
        ("normalizePhone", {"country": ["SA"]}, "option 'country' must be"),
        ("toISODate", {"timezone": "Asia/Nowhere"}, "unknown time zone 'Asia/Nowhere'"),
        ("toISODate", {"format": 1}, "option 'format' must be a strptime format"),
        ("mapItems", {"currency": 1}, "option 'currency' must be a currency code"),
        ("mapItems", {"itemMapping": {"code": "id"}}, "no item mapper was built"),
        ("compute", {}, "needs 'fn'"),
    ],
)
def test_bad_options_fail_at_build_time(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(TransformError, match=message.replace("(", r"\(")):
        build(name, **options)


def test_unknown_transform_names_the_known_ones_with_did_you_mean() -> None:
    with pytest.raises(TransformError) as caught:
        build("toNumber")
    message = str(caught.value)
    assert "unknown transform 'toNumber' (did you mean 'toNumberOrNull'?)" in message
    assert "known: coalesce, compute, joinCodes" in message


def test_unknown_transform_hint_ignores_case() -> None:
    with pytest.raises(TransformError, match="did you mean 'toString'"):
        build("tostring")


def test_compute_calls_the_function_with_value_and_args() -> None:
    registry = FunctionRegistry({"scale": lambda value, factor: value * factor})
    assert build("compute", fn="scale", registry=registry, args=MappingProxyType({"factor": 3}))(4) == 12


def test_compute_passes_args_as_plain_json_values() -> None:
    seen: list[Any] = []
    registry = FunctionRegistry({"spy": lambda value, **args: seen.append(args)})
    rule = parse_rule({"transform": "compute", "fn": "spy", "args": {"table": {"a": [1, 2]}}})
    build_transform(rule.transforms[0], functions=registry)(None)
    assert seen == [{"table": {"a": [1, 2]}}]
    assert type(seen[0]["table"]) is dict
    assert type(seen[0]["table"]["a"]) is list


def test_compute_resolves_the_function_once_at_build_time() -> None:
    registry = FunctionRegistry({"version": lambda value: 1})
    transform = build("compute", fn="version", registry=registry)
    registry.register("version", lambda value: 2)
    assert transform(None) == 1


def test_compute_wraps_failures_with_the_function_name_and_a_preview() -> None:
    def explode(value: Any) -> Any:
        raise KeyError("first_name")

    transform = build("compute", fn="explode", registry=FunctionRegistry({"explode": explode}))
    with pytest.raises(TransformError) as caught:
        transform({"id": 1, "note": "x" * 200})
    message = str(caught.value)
    assert message.startswith("compute function 'explode' failed on {\"id\":1,")
    assert "KeyError: 'first_name'" in message
    assert len(message) < 160
    assert isinstance(caught.value.__cause__, KeyError)


def test_compute_prefixes_transform_errors_of_user_functions() -> None:
    def strict(value: Any) -> Any:
        raise TransformError("value must be positive")

    transform = build("compute", fn="strict", registry=FunctionRegistry({"strict": strict}))
    with pytest.raises(TransformError, match=r"^compute function 'strict': value must be positive$"):
        transform(-1)


def test_compute_unknown_function_has_did_you_mean() -> None:
    with pytest.raises(TransformError, match=r"unknown compute function 'fulName' \(did you mean 'fullName'\?\)"):
        build("compute", fn="fulName")


def test_compute_args_the_function_does_not_take_fail_at_build_time() -> None:
    with pytest.raises(TransformError, match=r"compute function 'round' cannot take args \{\"digit\":2\}"):
        build("compute", fn="round", args=MappingProxyType({"digit": 2}))


def test_compute_args_must_be_an_object() -> None:
    with pytest.raises(TransformError, match="option 'args' must be an object"):
        build("compute", fn="round", args=(1, 2))


# Values shaped like provider payloads, so the properties reach the interesting branches.
_KEYS = st.sampled_from(["amount", "currency", "id", "code", "name", "date", "timezone", "mobile", "mobile_code"])
_TEXT = st.text(max_size=12) | st.sampled_from(
    ["12", "1,234.50", "SAR 5", "١٢٣٫٥", "2024-01-31", "Sun Jun 26 2022 12:21:48 GMT+0300", "Asia/Riyadh", "+966"]
)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_COMPUTE_ARGS: dict[str, dict[str, Any]] = {
    "pick": {"key": "amount"},
    "lookup": {"table": {"1": "one"}, "default": "?"},
    "round": {"digits": 2},
    "concat": {"separator": "-"},
}


def _all_transforms() -> list[tuple[str, Transform]]:
    built = [(name, build(name)) for name in sorted(TRANSFORM_NAMES - {"compute"})]
    for fn in sorted(BUILTIN_FUNCTIONS):
        args = MappingProxyType(_COMPUTE_ARGS.get(fn, {}))
        built.append((f"compute:{fn}", build("compute", fn=fn, args=args)))
    return built


ALL_TRANSFORMS = _all_transforms()


@settings(max_examples=300, deadline=None)
@given(value=JSON)
def test_every_transform_raises_only_transform_errors(value: Any) -> None:
    for name, transform in ALL_TRANSFORMS:
        try:
            transform(value)
        except TransformError:
            pass
        except Exception as exc:  # pragma: no cover - a failure report
            pytest.fail(f"{name} raised {type(exc).__name__}: {exc} on {value!r}")


@settings(max_examples=300, deadline=None)
@given(value=JSON)
def test_to_number_or_null_returns_only_numbers_or_none(value: Any) -> None:
    result = build("toNumberOrNull")(value)
    assert result is None or type(result) in (int, float)
    assert result is None or math.isfinite(result)


def _is_empty(value: Any) -> bool:
    return value is MISSING or value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(JSON | st.just(MISSING) | st.sampled_from(["", [], {}, 0, False]), max_size=6))
def test_coalesce_returns_the_first_non_empty_entry(values: list[Any]) -> None:
    expected = next((v for v in values if not _is_empty(v)), MISSING)
    result = build("coalesce")(values)
    assert result is expected or (result is MISSING and expected is MISSING)
