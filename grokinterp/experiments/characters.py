"""Is a grokked a·b mod p model sparse in the multiplicative-character basis?

For a·b mod p the natural harmonics are the characters of the cyclic group Z_p^* (Fourier modes in the
discrete log), not the Fourier modes of Z_p; the related-work abstracts state that the learned spectrum there
is sparse, and that the dense spectrum seen before is an artifact of the additive Fourier transform.
Sparsity is read as the Gini coefficient of a spectrum without its constant term
(`analysis.fourier.checkpoint_spectra`: 0 for a flat spectrum, → 1 when one frequency holds it all), in the
character basis and in the additive Fourier basis of Z_p, of the same checkpoints: at initialization and at
the last checkpoint, for the embedding, the MLP neurons and the logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..stats import bootstrap_ci
from .repro_data import ReproData, write_rows

PARTS = ("embed_gini", "neuron_gini", "logit_gini")
BASES = {"char": "mul", "add": "add"}  # column prefix -> the op whose basis `checkpoint_spectra` uses
COLUMNS = tuple(f"{prefix}_{part}" for prefix in BASES for part in PARTS)


def export_characters(out: Path, data_dir: Path) -> None:
    """characters.csv: per finished run, the Gini coefficients of its spectra in both bases at step 0 and at
    its last checkpoint."""
    from dataclasses import replace

    from ..analysis.fourier import checkpoint_spectra, grid_forward
    from ..runs import Run
    from ..sweep import collect

    rows = []
    for rec in collect(out):
        if not rec.finished:
            continue
        run = Run(rec.path)
        task = run.task
        for step in (run.steps[0], run.steps[-1]):
            model = run.model(step)
            grid = grid_forward(model, task)  # the network on every pair: the same for both bases
            values = []
            for op in BASES.values():
                as_op = replace(task, config=replace(task.config, op=op))
                spectra = checkpoint_spectra(model, as_op, grid)
                values += [round(float(spectra[part]), 6) for part in PARTS]
            rows.append([rec.name, step, *values])
    write_rows(data_dir / "characters.csv", ["run", "step", *COLUMNS], rows)


def character_ginis(data: ReproData, column: str, final: bool = True, grokked_only: bool = True) -> list[float]:
    """`column` of characters.csv at each run's last (or first) checkpoint, over grokked runs (or all)."""
    status = {r.name: r.summary.get("status") for r in data.records}
    by_run: dict[str, list[dict]] = {}
    for row in data.extras.get("characters", []):
        by_run.setdefault(row["run"], []).append(row)
    values = []
    for name, rows in by_run.items():
        if grokked_only and status.get(name) != "grokked":
            continue
        row = max(rows, key=lambda r: int(r["step"])) if final else min(rows, key=lambda r: int(r["step"]))
        values.append(float(row[column]))
    return values


def characters_table(data: ReproData, reference: dict) -> tuple[list[str], list[list]]:
    """Per basis (characters of Z_p^*, additive Fourier of Z_p) and checkpoint (initialization, every run;
    last, grokked runs): the median Gini [95 % bootstrap CI] of the embedding, neuron and logit spectra, and n."""
    columns = ["basis", "checkpoint", "runs", *(f"{part.replace('_', ' ')} [CI]" for part in PARTS), "source"]
    names = {"char": "characters of Z_p^*", "add": "additive Fourier of Z_p"}
    rows = []
    for prefix in BASES:
        for label, final, grokked_only in (("initialization (all runs)", False, False),
                                          ("last (grokked runs)", True, True)):
            cells = [character_ginis(data, f"{prefix}_{part}", final, grokked_only) for part in PARTS]
            rows.append([names[prefix], label, str(len(cells[0])),
                         *(bootstrap_ci(v).format(3) if v else "–" for v in cells),
                         reference.get(f"{prefix}_{'final' if final else 'init'}", "–")])
    return columns, rows


def final_embed_gini(data: ReproData):
    """Ledger measure: the embedding's character-basis Gini at the last checkpoint of grokked runs."""
    values = character_ginis(data, "char_embed_gini")
    return bootstrap_ci(values) if values else None


def character_minus_additive(data: ReproData):
    """Ledger measure: per grokked run, the embedding's Gini in the character basis minus in the additive
    Fourier basis (last checkpoint); the median of these paired differences with its bootstrap CI."""
    char, add = character_ginis(data, "char_embed_gini"), character_ginis(data, "add_embed_gini")
    diffs = [c - a for c, a in zip(char, add)]  # same runs, same order
    return bootstrap_ci(diffs) if diffs else None


__all__ = ["character_ginis", "character_minus_additive", "characters_table", "export_characters",
           "final_embed_gini"]
