"""Links ("custom buttons") shown with tickets and assets: URL templates over the asset (R4.4).

Templates come from `settings.links`; `alertd.yaml` validation has already
refused unknown placeholders and URLs that are not http(s). With no links
configured and Automate set up, the two buttons of the Automate integration
guide are offered: the device in Automate and the device in Control.

A link is rendered only when every placeholder it uses has a value, so a
ticket without an asset, or an asset that is not an Automate computer, shows
no broken "device in Automate" button. Values are URL-quoted; the Automate
server URL is inserted as it is when the template starts with it (it is the
scheme and host), quoted anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from alertd.assets.resolve import COMPUTER_KIND
from alertd.settings import LinkSettings, Settings
from alertd.templates import Template

AUTOMATE_URL = "automate_url"

DEFAULT_LINKS = (
    LinkSettings(name="Device in Automate", url="{automate_url}/automate/computer/{automate_id}"),
    LinkSettings(
        name="Device in Control",
        url="{automate_url}/extensions/4da1ae45-1be1-4683-b71e-fed1bfc01788/launchproxy.html"
            "?i={automate_id}",
    ),
)
"""The guide's custom buttons, offered when Automate is configured and no links are."""


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a link can be built from: one asset, with its client and site names."""

    asset_id: int | None = None
    asset_name: str | None = None
    automate_kind: str | None = None
    """computer, router, printer or network_device (None: not from Automate)."""
    automate_id: str | None = None
    client: str | None = None
    site: str | None = None

    def values(self) -> dict[str, str]:
        """The placeholder values this target has (absent ones are left out)."""
        values = {
            "asset_id": None if self.asset_id is None else str(self.asset_id),
            "asset_name": self.asset_name,
            # Automate's pages and Control's launcher take computer ids only.
            "automate_id": self.automate_id if self.automate_kind == COMPUTER_KIND else None,
            "client": self.client,
            "site": self.site,
        }
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True, slots=True)
class Link:
    """One rendered button."""

    name: str
    url: str


class Links:
    """The configured link templates, parsed once, rendered per ticket or asset."""

    def __init__(self, templates: Sequence[LinkSettings], automate_url: str | None = None) -> None:
        self.templates = tuple((item.name, Template.parse(item.url)) for item in templates)
        self.automate_url = automate_url.rstrip("/") if automate_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        """The links `settings` configure, or the guide's defaults when Automate is set up."""
        automate_url = settings.automate.url if settings.automate is not None else None
        templates = settings.links or (DEFAULT_LINKS if automate_url else ())
        return cls(templates, automate_url)

    def render(self, target: LinkTarget | None) -> list[Link]:
        """Every link whose placeholders ``target`` can fill, in configured order."""
        if not self.templates:
            return []
        values = target.values() if target is not None else {}
        available = values.keys() | ({AUTOMATE_URL} if self.automate_url else set())
        return [Link(name=name, url=self._fill(template, values))
                for name, template in self.templates if template.fields <= available]

    def _fill(self, template: Template, values: dict[str, str]) -> str:
        parts: list[str] = []
        for index, (literal, field) in enumerate(template.parts):
            parts.append(literal)
            if field is None:
                continue
            if field == AUTOMATE_URL:
                assert self.automate_url is not None
                leading = index == 0 and not literal
                parts.append(self.automate_url if leading else quote(self.automate_url, safe=""))
            else:
                parts.append(quote(values[field], safe=""))
        return "".join(parts)
