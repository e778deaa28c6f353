"""Command line: ``flask --app wsgi evaluate FOLDER``, retrieval quality of one model or two side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask
from flask.cli import with_appcontext
from tqdm import tqdm

from webapp import evaluation
from webapp.errors import ModelMissing, WebappError
from webapp.evaluation_copies import DUPLICATE_COPIES
from webapp.evaluation_scores import most_precise, suggest_threshold
from webapp.models import MODELS
from webapp.runtime import runtime

if TYPE_CHECKING:  # the model's libraries load with the first embedder, not with the CLI
    from webapp.services.embedding import Embedder


def evaluation_embedder(model: str | None) -> Embedder:
    """Return the app's embedder, or one with the same settings for another model."""
    rt = runtime()
    s = rt.settings
    name = model or rt.model
    try:
        if name == rt.model:
            return rt.embedder  # the process's own: the model is loaded once
        return rt.embedder_for(name)
    except ModelMissing as exc:
        path = Path(s["MODEL_DIR"]) / f"{name}.onnx"
        raise click.ClickException(
            f"the model file {path} does not exist; build it with `{MODELS[name].build}`"
        ) from exc


def parse_ks(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[int, ...]:
    """Read the recall cut-offs, given as ``--k 1,5,10`` or ``--k 1 --k 5``."""
    try:
        ks = sorted({int(part) for value in values for part in value.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter("give whole numbers, e.g. --k 1,5,10") from None
    if any(k < 1 for k in ks):
        raise click.BadParameter("each k must be at least 1")
    return tuple(ks)


def parse_copies(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Read the kinds of copy, given as ``--copies crop,turn`` or ``--copies crop --copies turn``."""
    kinds = tuple(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in DUPLICATE_COPIES]
    if unknown:
        raise click.BadParameter(f"unknown kind {', '.join(unknown)}: choose from {', '.join(DUPLICATE_COPIES)}")
    return kinds


@click.command("evaluate")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(sorted(MODELS)),
    help="Model to load from MODEL_DIR (default: the app's); give it twice to compare two side by side.",
)
@click.option("--near-duplicates", is_flag=True, help="Query augmented copies of every image against the originals.")
@click.option(
    "--duplicates",
    is_flag=True,
    help="Mix near-duplicate copies with the images and score the groups the duplicate scan would form, "
    "per similarity threshold (chooses DUPLICATE_THRESHOLD).",
)
@click.option(
    "--copies",
    multiple=True,
    callback=parse_copies,
    metavar="KIND[,KIND...]",
    help=f"With --duplicates: the kinds of copy to make (default all: {','.join(DUPLICATE_COPIES)}).",
)
@click.option(
    "--k",
    "ks",
    multiple=True,
    callback=parse_ks,
    metavar="K[,K...]",
    help="Recall cut-offs (default 1,5,10; 1,5 with --near-duplicates).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures here."
)
@with_appcontext
def evaluate_command(
    folder: Path,
    models: tuple[str, ...],
    near_duplicates: bool,
    duplicates: bool,
    copies: tuple[str, ...],
    ks: tuple[int, ...],
    json_path: Path | None,
) -> None:
    """Measure retrieval quality on FOLDER: one sub-folder per class, or any images with --near-duplicates
    or --duplicates."""
    if near_duplicates and duplicates:
        raise click.UsageError("give --near-duplicates or --duplicates, not both")
    if copies and not duplicates:
        raise click.UsageError("--copies goes with --duplicates")
    mode = "duplicates" if duplicates else "near-duplicates" if near_duplicates else "classes"
    reports = [_evaluate(folder, model, mode, ks, copies) for model in models or (None,)]
    for name, reason in reports[0].skipped:
        click.echo(f"  skipped: {name}: {reason}", err=True)
    click.echo(reports[0].table() if len(reports) == 1 else evaluation.side_by_side(reports))
    if duplicates:
        for report in reports:
            best, precise = suggest_threshold(report.scores), most_precise(report.scores)
            s = report.scores[best]
            click.echo(
                f"{report.model}: best F1 at threshold {best[2:]}: precision {s['precision']:.3f}, "
                f"recall {s['recall']:.3f}, F1 {s['f1']:.3f}"
            )
            if precise is not None:
                p = report.scores[precise]
                click.echo(f"  precision 0.99 or more from {precise[2:]}: recall {p['recall']:.3f} there")
        click.echo(f"configured: DUPLICATE_THRESHOLD={runtime().settings['DUPLICATE_THRESHOLD']}")
    if json_path:
        figures = [r.as_dict() for r in reports]
        json_path.write_text(json.dumps(figures[0] if len(figures) == 1 else figures, indent=2) + "\n")


def _evaluate(
    folder: Path, model: str | None, mode: str, ks: tuple[int, ...], copies: tuple[str, ...]
) -> evaluation.Report:
    embedder = evaluation_embedder(model)
    max_pixels = runtime().settings["MAX_IMAGE_PIXELS"]
    try:
        with tqdm(desc=f"embedding ({embedder.name})", unit="img", leave=False) as bar:
            if mode == "duplicates":
                kinds = copies or tuple(DUPLICATE_COPIES)
                return evaluation.evaluate_duplicates(embedder, folder, max_pixels, kinds=kinds, progress=bar.update)
            if mode == "near-duplicates":
                return evaluation.evaluate_near_duplicates(embedder, folder, ks or (1, 5), max_pixels, bar.update)
            return evaluation.evaluate_classes(embedder, folder, ks or (1, 5, 10), bar.update)
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc


def init_app(app: Flask) -> None:
    """Register the command."""
    app.cli.add_command(evaluate_command)
