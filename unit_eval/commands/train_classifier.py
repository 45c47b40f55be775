"""``unit-eval train classifier --data DATASET --out CLF.pt``: the oracle classifier of translation accuracy
(CLUIT: a ResNet-50 trained on the dataset's train split), scored on the held-out test split."""
from __future__ import annotations

import click

from .common import emit, info, json_option, writable_out


@click.command("classifier", context_settings={"show_default": True})
@click.option("--data", required=True, help="Dataset name (afhq, digits, ...) or folder with train/ and test/ class folders.")
@click.option("--data-root", default=None, help="Root for named datasets (default $UNIT_EVAL_DATA or ./data).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), callback=writable_out,
              help="The weights-only checkpoint to write (CLF.pt); give it to `unit-eval evaluate --classifier`.")
@click.option("--arch", type=click.Choice(["resnet50", "resnet18"]), default="resnet50",
              help="torchvision ResNet (the paper's is resnet50; resnet18 for quick CPU runs).")
@click.option("--img-size", type=click.IntRange(min=8), default=128,
              help="Training resolution; translators' outputs are resized to it when they differ.")
@click.option("--epochs", type=click.IntRange(min=1), default=30)
@click.option("--batch-size", type=click.IntRange(min=2), default=64)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate [default: 1e-3 from scratch, 1e-4 from ImageNet weights].")
@click.option("--hflip/--no-hflip", default=True, help="Random horizontal flips while training (off for digits, text).")
@click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
              help="Start from torchvision's ImageNet ResNet-50 file (resnet50-0676ba61.pth or resnet50-11ad3fa6.pth, "
                   "checked by sha256); default: from scratch.")
@click.option("--seed", type=click.IntRange(min=0), default=0)
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
def classifier_command(data, data_root, out, arch, img_size, epochs, batch_size, lr, hflip, pretrained, seed, device,
                       quiet, as_json):
    """Train translation accuracy's oracle classifier on DATA's train split; report its held-out (test split)
    accuracy; write a weights-only checkpoint."""
    from ..classifier_train import train_classifier

    summary = train_classifier(data, out, data_root=data_root, arch=arch, img_size=img_size, epochs=epochs,
                               batch_size=batch_size, lr=lr, hflip=hflip, pretrained=pretrained, seed=seed,
                               device=device, progress=not quiet)
    if not as_json:
        info(f"wrote {out} (sha256 {summary['sha256'][:12]}...)")
    emit(summary, as_json, human=f"held-out accuracy {summary['held_out_accuracy']:.4f} "
                                 f"on {summary['n_test']} test images ({arch}, {img_size} px, {epochs} epochs)")
