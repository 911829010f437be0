"""The provider entry point: valid for Airflow, every hook importable, every form declared."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import airflow
import jsonschema
import pytest

from vendorflow.provider import CONNECTION_TYPES, get_provider_info

SCHEMAS = Path(airflow.__file__).parent


def test_provider_info_is_valid_for_airflow() -> None:
    runtime = json.loads((SCHEMAS / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), runtime)
    authoring = json.loads((SCHEMAS / "provider.yaml.schema.json").read_text())["properties"]["connection-types"]
    jsonschema.validate(CONNECTION_TYPES, authoring)


@pytest.mark.parametrize("entry", CONNECTION_TYPES, ids=lambda e: e["connection-type"])
def test_each_connection_type_names_a_real_hook(entry: dict) -> None:
    module, _, name = entry["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert hook.conn_type == entry["connection-type"]
    assert hook.hook_name == entry["hook-name"]
    assert entry["ui-field-behaviour"]["relabeling"], "the form should say what each field holds"
    assert "get_ui_field_behaviour" not in vars(hook), "declare the form in vendorflow.provider (Airflow 3.3)"


def test_every_hook_takes_its_connection_the_way_the_test_button_passes_it() -> None:
    # Airflow's connection test builds ``hook_class(**{conn_name_attr: conn_id})``; a hook that only took
    # ``conn_id`` failed every Test press with "unexpected keyword argument".
    from vendorflow.vendors.algonomy.hook import AlgonomyHook
    from vendorflow.vendors.allyy.hook import AllyyHook
    from vendorflow.vendors.footprints.hook import FootprintsHook
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.vendors.recreativ.hook import RecreativHook

    for hook_class in (AlgonomyHook, AllyyHook, FootprintsHook, RecomendoHook, RecreativHook):
        assert hook_class(**{hook_class.conn_name_attr: "tested_conn"}).conn_id == "tested_conn"
        assert hook_class().conn_id == hook_class.default_conn_name
