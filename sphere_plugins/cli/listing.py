"""`sphere-plugins list`: installed plugins, the model schemes each loads (example spec, default options), priors."""

from __future__ import annotations

import argparse
import json

from sphere_plugins.cli.common import add_common

HELP = """examples:
  sphere-plugins list
  sphere-plugins list --json
Specs name a model as 'scheme:rest'; options follow as --option K=V (timm also takes
'timm:NAME?k=v&k=v', e.g. 'timm:resnet18?in_chans=3&img_size=64'). A plain path works too: the
scheme is inferred (.pkl: stylegan2; a save_pretrained folder; a diffusers folder)."""


def add_parser(commands) -> None:
    parser = commands.add_parser("list", help="installed plugins, model schemes and priors", epilog=HELP,
                                 description="List installed plugins with versions, the model schemes each "
                                 "understands with an example spec and defaults, and the priors.")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_common(parser)
    parser.set_defaults(check=lambda args: None, run=run)


def inventory() -> dict:
    """Plugins, schemes and priors as plain data."""
    from sphere_plugins.plugins import plugin_versions
    from sphere_plugins.priors import get_prior, list_priors
    from sphere_plugins.schemes import list_schemes

    schemes = list_schemes()
    return {
        "plugins": plugin_versions(),
        "schemes": [{"scheme": s.name, "plugin": s.plugin, "example": s.example, "description": s.description,
                     "defaults": s.defaults} for s in schemes],
        "priors": {name: {"defaults": get_prior(name).defaults, "description": get_prior(name).description}
                   for name in list_priors()},
    }


def run(args: argparse.Namespace) -> int:
    data = inventory()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("plugins:")
    for name, plugin_version in data["plugins"].items():
        print(f"  {name}" + (f" {plugin_version}" if plugin_version else ""))
    print("model schemes:")
    for s in data["schemes"]:
        print(f"  {s['scheme']:<10} e.g. {s['example']}  [{s['plugin']}]")
        print(f"             {s['description']}")
        print(f"             defaults: {json.dumps(s['defaults'])}")
    print("priors:")
    for name, prior in data["priors"].items():
        defaults = ", ".join(f"{k}={v:g}" for k, v in prior["defaults"].items()) or "-"
        print(f"  {name:<12} {defaults:<20} {prior['description']}")
    return 0
