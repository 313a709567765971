"""Compute functions: the built-ins, the registry, user modules and entry points."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from decimal import Decimal
from importlib.metadata import EntryPoint
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapp_sync.definition.rules import MISSING, TransformStep
from miniapp_sync.errors import TransformError
from miniapp_sync.mapping.coercions import to_number, to_text
from miniapp_sync.mapping.compute import BUILTIN_FUNCTIONS
from miniapp_sync.mapping.functions import ENTRY_POINT_GROUP, FunctionRegistry
from miniapp_sync.mapping.transforms import build_transform


def call(name: str, value: Any, **args: Any) -> Any:
    return FunctionRegistry().get(name)(value, **args)


@pytest.mark.parametrize(
    ("name", "value", "args", "expected"),
    [
        ("fullName", {"first_name": "Sara", "last_name": "Al Harbi"}, {}, "Sara Al Harbi"),
        ("fullName", {"firstName": " Sara ", "lastName": ""}, {}, "Sara"),
        ("fullName", {"given_name": "Sara", "family_name": "Ali"}, {}, "Sara Ali"),
        ("fullName", {"name": "Sara Ali"}, {}, "Sara Ali"),
        ("fullName", ["Sara", None, "Ali"], {}, "Sara Ali"),
        ("fullName", {}, {}, None),
        ("concat", ["Riyadh", "", None, "Olaya St", 12], {}, "Riyadh Olaya St 12"),
        ("concat", ["a", "b"], {"separator": ", "}, "a, b"),
        ("concat", [], {}, None),
        ("sum", [1, "2.5", None, MISSING, {"amount": "0.5"}], {}, 4),
        ("sum", [0.1, 0.2], {}, 0.3),
        ("sum", [], {}, 0),
        ("multiply", ["19.99", 3], {}, 59.97),
        ("multiply", [2, None], {}, None),
        ("multiply", [], {}, None),
        ("round", 2.675, {"digits": 2}, 2.68),
        ("round", "SAR 10.5", {}, 11),
        ("round", 125, {"digits": -1}, 130),
        ("round", "x", {}, None),
        ("first", [MISSING, None, 2], {}, None),
        ("first", [MISSING, 1, 2], {}, 1),
        ("first", [], {}, None),
        ("first", "solo", {}, "solo"),
        ("last", [1, 2, MISSING], {}, 2),
        ("count", [1, MISSING, 3], {}, 2),
        ("count", {"a": 1}, {}, 1),
        ("count", None, {}, 0),
        ("count", "x", {}, 1),
        ("pick", {"price": {"amount": 5}}, {"key": "price.amount"}, 5),
        ("pick", {"items": [{"sku": "A"}]}, {"key": "items.0.sku"}, "A"),
        ("pick", {"items": []}, {"key": "items.3"}, None),
        ("pick", "text", {"key": "a"}, None),
        ("splitFirstName", "  Sara  Al Harbi ", {}, "Sara"),
        ("splitLastName", "Sara Al Harbi", {}, "Al Harbi"),
        ("splitLastName", "Sara", {}, None),
        ("splitFirstName", None, {}, None),
        ("sallaStatus", {"id": 566146469, "name": "بإنتظار المراجعة", "slug": "under_review"}, {}, "under_review"),
        ("sallaStatus", {"name": "Completed", "slug": ""}, {}, "Completed"),
        ("sallaStatus", "completed", {}, "completed"),
        ("moneyAmount", {"amount": "230.00", "currency": "SAR"}, {}, 230.0),
        ("moneyAmount", {"shop_money": {"amount": "19.99", "currency_code": "USD"}}, {}, 19.99),
        ("moneyAmount", "120.50 ر.س", {}, 120.5),
        ("currencyOf", {"amount": 10, "currency": "SAR"}, {}, "SAR"),
        ("currencyOf", {"shop_money": {"amount": "1.00", "currency_code": "USD"}}, {}, "USD"),
        ("currencyOf", {"percent": "15.00", "amount": {"amount": 30, "currency": "SAR"}}, {}, "SAR"),
        ("currencyOf", "SAR 120.50", {}, "SAR"),
        ("currencyOf", "sar", {}, "SAR"),
        ("currencyOf", 12, {}, None),
        ("discountTotal", [{"title": "Eid", "code": "EID", "discount": "5.00"}, {"discount": 2.5}], {}, 7.5),
        ("discountTotal", {"sub_total": {"amount": 100}, "discounts": [{"discount": "10"}]}, {}, 10),
        ("discountTotal", {"discounts": []}, {}, 0),
        ("discountTotal", [{"code": "X", "amount": "3.00"}], {}, 3),
        ("lookup", "under_review", {"table": {"under_review": "pending"}}, "pending"),
        ("lookup", 1, {"table": {"1": "one"}}, "one"),
        ("lookup", "other", {"table": {"a": 1}, "default": "unknown"}, "unknown"),
        ("lookup", {"a": 1}, {"table": {"a": 1}}, None),
    ],
)
def test_builtin_functions(name: str, value: Any, args: dict[str, Any], expected: Any) -> None:
    result = call(name, value, **args)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "args", "message"),
    [
        ("sum", [1, "abc"], {}, 'not a number: "abc"'),
        ("round", 1.5, {"digits": "2"}, "'digits' must be an integer"),
        ("pick", {}, {"key": ""}, "'key' must be a non-empty string"),
        ("lookup", "a", {"table": ["a"]}, "'table' must be an object"),
    ],
)
def test_builtin_functions_refuse_bad_input(name: str, value: Any, args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(name, value, **args)


def test_every_builtin_has_a_one_line_docstring() -> None:
    for name, fn in BUILTIN_FUNCTIONS.items():
        assert fn.__doc__, name
        assert "\n" not in fn.__doc__.strip(), name


def test_registry_registers_lists_and_finds_functions() -> None:
    registry = FunctionRegistry({"double": lambda value: value * 2})
    assert "double" in registry
    assert "fullName" in registry
    assert 3 not in registry
    assert registry.get("double")(4) == 8
    assert registry.names() == sorted([*BUILTIN_FUNCTIONS, "double"])


def test_registry_without_functions_holds_the_builtins_only() -> None:
    assert FunctionRegistry().names() == sorted(BUILTIN_FUNCTIONS)


def test_user_functions_may_replace_a_builtin() -> None:
    registry = FunctionRegistry()
    registry.register("round", lambda value: "mine")
    assert registry.get("round")(1.5) == "mine"


def test_unknown_function_lists_the_known_ones_with_did_you_mean() -> None:
    with pytest.raises(TransformError) as caught:
        FunctionRegistry().get("sallastatus")
    message = str(caught.value)
    assert "unknown compute function 'sallastatus' (did you mean 'sallaStatus'?)" in message
    assert "known: concat, count, currencyOf" in message


@pytest.mark.parametrize(
    ("name", "fn", "message"),
    [("", len, "needs a non-empty name"), ("x", "not callable", "'x' must be callable, found \"not callable\"")],
)
def test_register_refuses_bad_names_and_non_callables(name: str, fn: Any, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        FunctionRegistry().register(name, fn)


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_load_module_registers_the_public_functions_it_defines(tmp_path: Path) -> None:
    module = write(
        tmp_path / "shop_functions.py",
        """
        from os.path import join  # imported, not defined here: not registered
        from dataclasses import dataclass

        @dataclass
        class Money:  # a class is not a function: not registered
            amount: float

        def vat(value, rate=0.15):
            return round(value * (1 + rate), 2)

        def _helper(value):
            return value
        """,
    )
    registry = FunctionRegistry()
    assert registry.load_module(module) == ["vat"]
    step = TransformStep("compute", fn="vat", options=MappingProxyType({"args": MappingProxyType({"rate": 0.5})}))
    assert build_transform(step, functions=registry)(10) == 15.0
    assert "_helper" not in registry
    assert "join" not in registry


def test_load_module_takes_exactly_the_functions_dict(tmp_path: Path) -> None:
    module = write(
        tmp_path / "declared.py",
        """
        def _shout(value):
            return str(value).upper()

        def other(value):
            return value

        FUNCTIONS = {"shout": _shout}
        """,
    )
    registry = FunctionRegistry()
    assert registry.load_module(str(module)) == ["shout"]
    assert registry.get("shout")("hi") == "HI"
    assert "other" not in registry


def test_same_named_modules_in_two_folders_do_not_collide(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a" / "functions.py", "def fa(value):\n    return 'a'\n")
    second = write(tmp_path / "b" / "functions.py", "def fb(value):\n    return 'b'\n")
    registry = FunctionRegistry()
    registry.load_module(first)
    registry.load_module(second)
    assert (registry.get("fa")(None), registry.get("fb")(None)) == ("a", "b")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(value):\n    return (\n", r"syntax error at line \d+"),
        ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError: No module named"),
        ("X = 1\n", "defines no public functions .hint: define functions"),
        ("FUNCTIONS = {'a': 1}\n", "FUNCTIONS must map function names to callables"),
    ],
)
def test_load_module_errors_are_clear(tmp_path: Path, source: str, message: str) -> None:
    module = write(tmp_path / "user_fns.py", source)
    with pytest.raises(TransformError, match=message) as caught:
        FunctionRegistry().load_module(module)
    assert "user_fns.py" in str(caught.value)


def test_load_module_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TransformError, match=r"functions module '.*nope\.py' not found"):
        FunctionRegistry().load_module(tmp_path / "nope.py")


def test_load_module_of_a_file_that_is_not_python(tmp_path: Path) -> None:
    data = tmp_path / "functions.txt"
    data.write_text("def f(value): return value\n")
    with pytest.raises(TransformError, match="is not a Python file"):
        FunctionRegistry().load_module(data)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder on sys.path and a fresh module name, removed from sys.modules afterwards."""
    name = f"plugin_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, name
    sys.modules.pop(name, None)


PLUGIN_SOURCE = """
def tax(value, rate=0.15):
    return value * rate

def _private(value):
    return value

TABLE = {"label": lambda value: f"#{value}"}
"""


def test_entry_points_load_functions_modules_and_dicts(plugin_dir: tuple[Path, str]) -> None:
    folder, name = plugin_dir
    write(folder / f"{name}.py", PLUGIN_SOURCE)
    points = [
        EntryPoint(name="vat", value=f"{name}:tax", group=ENTRY_POINT_GROUP),
        EntryPoint(name="whole", value=name, group=ENTRY_POINT_GROUP),
        EntryPoint(name="table", value=f"{name}:TABLE", group=ENTRY_POINT_GROUP),
    ]
    registry = FunctionRegistry()
    assert registry.load_entry_points(points) == ["vat", "tax", "label"]
    assert registry.get("vat")(100) == 15.0
    assert registry.get("label")(7) == "#7"
    assert "_private" not in registry


def test_default_registry_finds_installed_entry_points(plugin_dir: tuple[Path, str]) -> None:
    folder, name = plugin_dir
    write(folder / f"{name}.py", PLUGIN_SOURCE)
    dist_info = folder / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nvat = {name}:tax\n")
    registry = FunctionRegistry.default()
    assert registry.get("vat")(200) == 30.0
    assert set(BUILTIN_FUNCTIONS) < set(registry.names())


def test_default_registry_without_plugins_is_the_builtins() -> None:
    assert set(FunctionRegistry.default().names()) >= set(BUILTIN_FUNCTIONS)


def test_broken_entry_point_names_itself(plugin_dir: tuple[Path, str]) -> None:
    folder, name = plugin_dir
    write(folder / f"{name}.py", "VALUE = 3\n")
    missing = EntryPoint(name="ghost", value=f"{name}:nothing", group=ENTRY_POINT_GROUP)
    with pytest.raises(
        TransformError, match=rf"entry point 'ghost' \({name}:nothing\) .* failed to load: AttributeError"
    ):
        FunctionRegistry().load_entry_points([missing])
    not_callable = EntryPoint(name="value", value=f"{name}:VALUE", group=ENTRY_POINT_GROUP)
    with pytest.raises(TransformError, match="must be a function, a module or a dict, found 3"):
        FunctionRegistry().load_entry_points([not_callable])


class Text(str):
    """A str subclass: to_text() reads it as no text, and so must fullName's list path."""


@given(
    st.lists(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(alphabet=" \tab1٢", max_size=4)
        | st.builds(Text, st.text(alphabet=" a", max_size=2))
        | st.just(MISSING),
        max_size=4,
    )
)
def test_full_name_of_a_list_joins_the_text_of_its_entries(entries: list[Any]) -> None:
    parts = [to_text(entry) for entry in entries]  # the rule as the function documents it
    expected = " ".join(p for p in parts if p) or None
    assert call("fullName", entries) == expected
    assert call("fullName", tuple(entries)) == expected


@given(
    st.lists(
        st.from_regex(r"[0-9]{0,17}(\.[0-9]{0,17})?", fullmatch=True) | st.sampled_from(["٥.٥", "²", "1.5.", " 2.5"]),
        max_size=3,
    )
)
def test_sums_of_decimal_texts_are_those_of_the_numbers_they_read_as(entries: list[str]) -> None:
    # Plain texts of up to 15 digits are read as decimals straight; longer ones through a float.
    numbers = [to_number(e) for e in entries if e != ""]
    if any(n is None for n in numbers):
        with pytest.raises(ValueError, match="not a number"):
            call("sum", entries)
        return
    expected = sum((Decimal(repr(n)) if isinstance(n, float) else Decimal(n) for n in numbers), Decimal(0))
    result = call("sum", entries)
    assert result == (int(expected) if expected == expected.to_integral_value() else float(expected))
    assert type(result) is (int if expected == expected.to_integral_value() else float)
