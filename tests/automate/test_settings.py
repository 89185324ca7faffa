"""The `automate:` section of alertd.yaml is checked like the rules: file, line, plain message."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.errors import SettingsInvalid
from alertd.settings import load_settings

GOOD = """\
automate:
  url: https://rmm.example.net
  client_id: 6a1e3f62-3b7d-4c1e-9f0a-0d5c2b7e8a41
  username: alertd-integrator
  password_file: /run/credentials/alertd.service/automate
  max_rate: 20/s
  import:
    top_level: Managed Clients
    default_site: Unassigned
    schedule: 1h
    asset_types:
      servers: Server
      workstations: Workstation
      routers: Router
      printers: Printer
    fields:
      - kind: servers
        from: OperatingSystemName
        to: {asset_field: os}
      - kind: workstations
        from: LastUserName
        to: {custom_field: Last User, create: true}
    match_on: automate_id
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    """The rendered problems of a settings file with ``text``."""
    path = tmp_path / "alertd.yaml"
    path.write_text(text)
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(path, environ={})
    return [p.render().replace(f"{path}:", "alertd.yaml:") for p in caught.value.problems]


def test_the_shape_of_the_spec_loads(tmp_path: Path) -> None:
    """SPEC R6.8's example section is valid as written."""
    path = tmp_path / "alertd.yaml"
    path.write_text(GOOD)
    automate = load_settings(path, environ={}).automate
    assert automate is not None
    assert automate.import_.schedule_seconds == 3600
    assert automate.requests_per_second == 20
    assert [m.from_ for m in automate.import_.fields] == ["OperatingSystemName", "LastUserName"]


@pytest.mark.parametrize(("change", "expected"), [
    (("from: LastUserName", "from: LastUser"),
     "alertd.yaml:20: automate.import.fields[1]: workstations have no field 'LastUser'; fields "
     "that can be mapped: Id, ComputerName,"),
    (("asset_field: os", "asset_field: asset_tag"),
     "alertd.yaml:19: automate.import.fields[0].to: the asset tag is set by the import itself "
     "(the serial number for servers and workstations, the Guid for routers); map to another "
     "field"),
    (("asset_field: os", "asset_field: colour"),
     "alertd.yaml:19: automate.import.fields[0].to: unknown asset field 'colour'; standard "
     "asset fields are name, serial,"),
    (("- kind: servers\n        from: OperatingSystemName",
      "- kind: routers\n        from: Password"),
     "alertd.yaml:17: automate.import.fields[0]: routers Password is a credential: alertd "
     "never imports, stores or logs it"),
    (("match_on: automate_id", "match_on: serial"),
     "alertd.yaml:23: automate.import.match_on: match_on 'serial' must be mapped for every "
     "imported kind; no mapping for routers, printers"),
    (("      servers: Server\n      workstations: Workstation\n", ""),
     "alertd.yaml:11: automate.import.asset_types: printers are imported only as children of "
     "servers or workstations: map servers or workstations too"),
    (("url: https://rmm.example.net", "url: http://rmm.example.net"),
     "alertd.yaml:2: automate.url: use https: plain http is allowed only to a loopback address"),
    (("url: https://rmm.example.net", "url: https://rmm.example.net/cwa/api/v1"),
     "alertd.yaml:2: automate.url: write the server address only (e.g. "
     "https://rmm.example.net): alertd adds /cwa/api/v1 itself"),
    (("max_rate: 20/s", "max_rate: lots"),
     "alertd.yaml:6: automate.max_rate: max_rate must look like 20/s, 300/m or 5/10s, not "
     "'lots'"),
    (("  password_file: /run/credentials/alertd.service/automate\n", ""),
     "alertd.yaml:1: automate: give the Automate password as exactly one of password_file or "
     "password_env"),
    (("    schedule: 1h\n", "    schedule: 1h\n    colour: blue\n"),
     "alertd.yaml:11: automate.import.colour: unknown key 'colour'"),
    (("to: {custom_field: Last User, create: true}", "to: {custom_field: Last User, "
      "asset_field: os}"),
     "alertd.yaml:22: automate.import.fields[1].to: give exactly one of asset_field or "
     "custom_field"),
])
def test_each_mistake_is_reported_at_its_line(
    tmp_path: Path, change: tuple[str, str], expected: str,
) -> None:
    """One broken key at a time: the problem names the file, the line and what to do."""
    assert change[0] in GOOD
    [problem] = problems(tmp_path, GOOD.replace(*change))
    assert problem.startswith(expected)


def test_a_field_of_an_unmapped_kind_and_a_doubly_mapped_target_are_refused(
    tmp_path: Path,
) -> None:
    """A mapping for a kind with no asset type, and two fields into one target, are errors."""
    unmapped = GOOD.replace("      routers: Router\n", "").replace(
        "- kind: servers\n        from: OperatingSystemName",
        "- kind: routers\n        from: Model")
    [problem] = problems(tmp_path, unmapped)
    assert problem == ("alertd.yaml:15: automate.import.fields: fields[0] maps a field of "
                       "routers, which have no asset type mapping: add asset_types.routers")
    doubled = GOOD.replace("from: LastUserName\n        to: {custom_field: Last User, "
                           "create: true}",
                           "from: OperatingSystemVersion\n        to: {asset_field: os}").replace(
        "- kind: servers", "- kind: workstations")
    [problem] = problems(tmp_path, doubled)
    assert problem == ("alertd.yaml:16: automate.import.fields: fields[1]: workstations 'os' "
                       "is already mapped from OperatingSystemName")
