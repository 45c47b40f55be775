"""The demo checkpoints shipped with unit-eval, each pinned by the sha256 of its file and verified before use.

``unit-eval demo`` trains every model for a few hundred iterations to show the loop; such runs are far too short
to translate anything, so the demo also evaluates these checkpoints, trained longer by ``unit-eval train`` on the
embedded digits (scikit-learn's handwritten digits, 1,297 train images in 10 classes, upscaled to 64 px;
``unit-eval data materialize digits``). Each entry records the exact command (run in the folder that holds
``digits/``, i.e. ``~/.cache/unit-eval/data``), its seed and iterations, where and how long it trained, and what
the demo protocols measured on it (the demo's digits subset, seed 0), plus how often a translation takes the
reference's class or keeps the source's (``reference_class_rate``, ``source_class_rate``: a digit classifier's
verdict, see ``benchmarks/train_demo_checkpoints.py``, which also runs the commands again and compares the new
weights with the shipped ones).

What they show, honestly: the TUNIT checkpoint clusters the digits well above chance (Hungarian accuracy 0.64 on
the demo's 80 test digits, 0.56 on all 500; chance 0.1) and its outputs are clean enough for non-zero density and
coverage, but its generator keeps the source's digit and takes only faint traits from the reference (TUNIT's
generator keeps a 16 x 16 content map at 32 px, and the digit *is* the content here). The FUNIT checkpoint ignores
the source and draws a digit from the reference's class code, the reference's class about twice as often as
chance. Neither comes near the floor: they are toy networks (widths of 8) trained for about 20-40 CPU minutes.

The files are weights-only ``run.pt`` checkpoints (``torch.load(weights_only=True)``, no pickled code) under
``unit_eval/demo_checkpoints/``. A file whose sha256 differs from its pin is refused with one line
(:func:`verified_checkpoint`): the demo never loads an unverified file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .cache import sha256_file
from .errors import UnitEvalError

FOLDER_NAME = "demo_checkpoints"


@dataclass(frozen=True)
class DemoCheckpoint:
    name: str
    file: str
    model: str
    sha256: str
    iterations: int
    seed: int
    command: str                      # run in the folder holding digits/ (the embedded set, materialized)
    trained: str                      # machine, threads, wall time
    measured: dict = field(default_factory=dict)  # demo protocols on the demo's digits subset (seed 0)


_TUNIT = ("unit-eval train tunit --data digits/train --out tunit_digits --iters {iters} --batch-size 16 --img-size 32 "
          "--toy --k 10 --seed 0 --device cpu --set warmup_iters=1500 --set lr_e=0.001 --set wd_e=0 --set lr_g=0.0004 "
          "--set lr_d=0.0004 --set w_r1=0.1 --set hflip=false --sample-every 250 --snapshot-every 500 --quiet")
_FUNIT = ("unit-eval train funit --data digits/train --out funit_digits --iters {iters} --batch-size 16 --img-size 32 "
          "--toy --seed 0 --device cpu --set ema_beta=0.99 --set hflip=false --sample-every 250 --snapshot-every 500 --quiet")

DEMO_CHECKPOINTS: dict[str, DemoCheckpoint] = {
    "tunit_digits": DemoCheckpoint(
        name="tunit_digits", file="tunit_digits.pt", model="tunit",
        sha256="5db1716cbfb1d4d9e65964267d82653c17395594cdfb73f08d4335c567cc317f",
        iterations=4500, seed=0, command=_TUNIT.format(iters=4500),
        trained="2-core Intel Xeon CPU shared with other jobs, 1 thread, PyTorch 2.14.1: 1362 s CPU, 43 min wall "
                "(guiding network alone for 1500 iterations, then 3000 joint)",
        measured={"mfid": 173.76, "density": 0.0120, "coverage": 0.0125, "cluster_acc": 0.6375,
                  "cluster_acc_majority": 0.675, "nmi": 0.7432, "cluster_acc_full_test_split": 0.558,
                  "reference_class_rate": 0.014, "source_class_rate": 0.889}),
    "funit_digits": DemoCheckpoint(
        name="funit_digits", file="funit_digits.pt", model="funit",
        sha256="cc3232aba27bd40cddb3b8b31a3a7d78f5527cd99b309bde71e7429087472117",
        iterations=6000, seed=0, command=_FUNIT.format(iters=6000),
        trained="2-core Intel Xeon CPU shared with other jobs, 1 thread, PyTorch 2.14.1: 2285 s CPU, 86 min wall; "
                "run as --iters 3500, then --resume --iters 6000 (a resumed run equals one run of "
                "the full length, weight for weight: tests/test_funit.py::test_exact_resume)",
        measured={"mfid": 213.57, "density": 0.0120, "coverage": 0.0050,
                  "reference_class_rate": 0.20, "source_class_rate": 0.11}),
}


def checkpoint_folder() -> Path:
    """Where the shipped files live (inside the installed package)."""
    from importlib.resources import files

    return Path(os.fspath(files("unit_eval") / FOLDER_NAME))


def verified_checkpoint(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The path of demo checkpoint ``name`` (in ``folder``, default the shipped one) after its sha256 matched the
    pin; a missing or altered file is a one-line :class:`UnitEvalError`."""
    entry = DEMO_CHECKPOINTS.get(name)
    if entry is None:
        raise UnitEvalError(f"unknown demo checkpoint {name!r}; shipped: {', '.join(DEMO_CHECKPOINTS) or 'none'}")
    path = Path(folder if folder is not None else checkpoint_folder()) / entry.file
    if not path.is_file():
        raise UnitEvalError(f"demo checkpoint {path} is missing; reinstall unit-eval (pip install -e .)")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise UnitEvalError(f"demo checkpoint {path} has sha256 {digest[:16]}..., not the pinned {entry.sha256[:16]}...: "
                            "refusing an altered file; reinstall unit-eval")
    return path
