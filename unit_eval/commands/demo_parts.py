"""The steps of ``unit-eval demo`` after training: evaluating checkpoints and the reference rows, tables, figures and
the HTML report (:mod:`unit_eval.commands.demo` runs them in order)."""
from __future__ import annotations

from pathlib import Path

from .common import info

MFID, DC, CLUSTER, DIVERSITY, MAPS = ("demo-tunit-mfid", "demo-tunit-dc", "demo-tunit-cluster", "demo-lpips-diversity",
                                      "demo-unit-maps")

# Run names in the table, and what each row is (the table's notes and the report's title say it too).
SHIPPED = {"tunit": "TUNIT shipped", "funit": "FUNIT shipped"}
DEMO_TRAINED = ("tunit", "funit", "unit")  # trained briefly by the demo (CLUIT and GP-UNIT train with `unit-eval train`)
BRIEF = {name: f"{name.upper()} brief" for name in DEMO_TRAINED}
FLOOR, IDENTITY = "real images (floor)", "identity (source unchanged)"
ROW_NOTES = {
    "shipped": "TUNIT/FUNIT shipped: checkpoints trained for thousands of iterations by unit-eval train on the embedded "
               "digits (command, seed and sha256 pinned in unit_eval/demo_assets.py)",
    "brief": "* brief: trained here for --iters iterations to show the loop (too short to translate)",
    FLOOR: f"{FLOOR}: outputs = the references themselves, held-out real images of the target class "
           "(unit_eval.reference_models.ReferenceCopy): the best mFID a translator can reach on this data",
    IDENTITY: f"{IDENTITY}: outputs = the sources (unit_eval.reference_models.SourceCopy): ignores the reference; "
              "class-blind metrics (D&C) score it as real images, mFID does not",
    "empty": "empty cells: the protocol does not apply (the reference rows have no clusters; only UNIT and the "
             "identity translate photos into renders)",
}


def checkpoint_size(path: Path) -> int:
    """The training resolution a run.pt states."""
    from ..checkpoint import load_run

    return int(load_run(path)["config"]["img_size"])


class Evaluator:
    """Runs demo protocols (by name) for checkpoints and reference translators through the normal evaluation path
    (:class:`unit_eval.evaluation.Session`, as ``unit-eval evaluate``)."""

    def __init__(self, protocols: dict[str, Path], *, device: str, seed: int):
        from ..evaluation import Networks
        from ..evaluation.api import make_settings

        self.protocols, self.device, self.seed = protocols, device, seed
        self.settings = make_settings(device=device)
        networks = Networks(self.settings)  # Inception and LPIPS built once for every model the demo evaluates
        self.shared = dict(extractor_factory=networks.extractor, lpips_factory=networks.lpips)

    def checkpoint(self, path: Path, names: list[str], data: Path, run_name: str) -> list[dict]:
        """Rows of a run.pt; each carries the checkpoint's training iteration (``evaluate`` reads it from the file)."""
        from ..evaluation import evaluate

        _, rows = evaluate([str(self.protocols[n]) for n in names], ckpt=str(path), data=str(data), device=self.device,
                           run_name=run_name, seeds=[self.seed], **self.shared)
        return rows

    def reference(self, run_name: str, names: list[str], data: Path, img_size: int) -> list[dict]:
        """Rows of a reference translator (:mod:`unit_eval.reference_models`); they carry no iteration."""
        from ..evaluation.api import Session
        from ..reference_models import ReferenceCopy, SourceCopy

        session = Session([str(self.protocols[n]) for n in names], data=str(data), data_root=None,
                          settings=self.settings, **self.shared)
        dataset = next(iter(session.datasets.values()))
        if run_name == FLOOR:
            model = ReferenceCopy(img_size)
        else:
            model = SourceCopy(img_size, domain_names=getattr(dataset, "domains", None))
        evaluated = {"kind": "reference-model", "class": f"unit_eval.reference_models.{type(model).__name__}"}
        _, rows = session.run(session.jobs([self.seed]), model=model, evaluated=evaluated, run_name=run_name)
        return rows


def in_table_order(rows: list[dict], runs: list[str]) -> list[dict]:
    """Rows sorted by the position of their run in ``runs`` (tables list runs in order of first appearance)."""
    rank = {run: i for i, run in enumerate(runs)}
    return sorted(rows, key=lambda r: rank.get(r["run"], len(rank)))


def write_tables(out: Path, rows: list[dict], notes: list[str]) -> dict[str, Path]:
    """table.md (with the notes under it) and table.tex (notes in the caption); each run's last iteration."""
    from ..tables import make_table

    paths = {"markdown": out / "table.md", "latex": out / "table.tex"}
    markdown = make_table(rows, "markdown", on_note=info)
    paths["markdown"].write_text(markdown.rstrip() + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n", encoding="utf-8")
    caption = "unit-eval demo on embedded toy data (not a paper result). " + "; ".join(notes) + "."
    paths["latex"].write_text(make_table(rows, "latex", caption=caption, label="tab:unit-eval-demo") + "\n",
                              encoding="utf-8")
    return paths


def figures(folder: Path, tunit_ckpt: Path, tunit_label: str, funit_ckpt: Path | None, digits: Path, rows: list[dict],
            device: str, seed: int) -> tuple[list[Path], dict[str, bytes]]:
    """The figures (PNG + PDF) and the translation grids for the report (caption -> PNG bytes)."""
    from ..datasets import resolve_dataset
    from ..device import resolve_device
    from ..evaluation.figures import clusters_from_model, codes_from_model, grid_from_model
    from ..plots import domain_samples, fid_bars, metric_curves, style_codes, translation_grid
    from ..translator import load_checkpoint_translator

    dev = resolve_device(device)
    test = resolve_dataset(str(digits)).split("test")
    n_refs = len(test)
    files: list[Path] = []
    grids: dict[str, bytes] = {}
    models = [("tunit", tunit_ckpt, tunit_label)] + ([("funit", funit_ckpt, "FUNIT shipped")] if funit_ckpt else [])
    for name, ckpt, label in models:
        model = load_checkpoint_translator(ckpt, dev)
        g = grid_from_model(model, test, dev, n_sources=6, n_references=n_refs, seed=seed)
        title = f"{label}: row = source, column = reference; each output should take the reference's digit"
        written = translation_grid(g["sources"], g["references"], g["outputs"], folder / f"{name}_grid.png",
                                   source_labels=g["source_labels"], reference_labels=g["reference_labels"],
                                   title=title, pdf=True)
        files += written
        grids[f"{label} (digits demo): row = source, column = reference"] = written[0].read_bytes()
        if name == "tunit":
            c = clusters_from_model(model, test, dev, per_cluster=8, seed=seed)
            files += domain_samples(c["samples"], folder / "tunit_domains.png", counts=c["counts"],
                                    title=f"{label}: pseudo-domains (digits demo, test split)", pdf=True)
            codes = codes_from_model(model, test, dev, seed=seed)
            files += style_codes(codes["codes"], codes["pseudo_labels"], codes["true_labels"],
                                 folder / "tunit_style_codes.png", class_names=codes["class_names"], seed=seed,
                                 title=f"{label}: style codes", pdf=True)
    files += metric_curves([r for r in rows if r.get("iteration") is not None],
                           folder / "mfid_curve.png", metrics=["mfid"], pdf=True,
                           title="mFID against training iterations (shipped checkpoints: one point each)")
    files += fid_bars([r for r in rows if r["protocol"] == MFID], folder / "fid_per_class.png", protocol=MFID, pdf=True)
    return files, grids


def report(path: Path, rows: list[dict], grids: dict[str, bytes]) -> Path:
    from ..report import write_report

    return write_report(rows, path, grids=grids, title="unit-eval demo: embedded digits and photo/render pairs "
                        "(toy data, not paper results)", on_note=info)
