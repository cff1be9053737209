"""The ``phototagger`` command: parse, call the core, print. No logic of its own.

Exit status: 0 when all went well, 1 when some files failed (the output names them),
2 for usage or configuration errors (including an index another scan holds).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource
from sqlalchemy.exc import SQLAlchemyError

from phototagger import config
from phototagger.errors import ConfigError, PhototaggerError
from phototagger.filetags import WRITE_MODES
from phototagger.index.store import STATES
from phototagger.scan.options import ENGINES

if TYPE_CHECKING:
    from phototagger.index import Library
    from phototagger.model import LandmarkModel

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class Command(click.Command):
    """Turns phototagger's own errors into one-line messages and the documented exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            click.echo(f"phototagger: error: {error}", err=True)
            ctx.exit(EXIT_USAGE)
        except SQLAlchemyError as error:
            reason = getattr(error, "orig", None) or error
            click.echo(f"phototagger: error: index: {str(reason).splitlines()[0]}", err=True)
            ctx.exit(EXIT_USAGE)
        except PhototaggerError as error:
            click.echo(f"phototagger: error: {error}", err=True)
            ctx.exit(EXIT_FAILURES)


class Group(click.Group):
    command_class = Command
    group_class = type


def db_option(function: Callable) -> Callable:
    return click.option(
        "--db",
        "db",
        metavar="URL",
        envvar=config.DB_ENV,
        help=f"Index: a SQLAlchemy URL or a SQLite file path [default: ${config.DB_ENV}, "
        "else the config file's, else a file in the user data directory].",
    )(function)


def output_options(function: Callable) -> Callable:
    """How a list of photos is printed: ``query``, ``similar``."""
    function = click.option(
        "-0", "--null", is_flag=True,
        help="With --format paths: end each path with a NUL byte, for xargs -0 (spaces, "
        "newlines).",
    )(function)
    return click.option(
        "--format", "output", default="table", show_default=True,
        type=click.Choice(["table", "json", "csv", "paths"]),
    )(function)


def model_option(function: Callable) -> Callable:
    return click.option(
        "--model",
        "model_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Model file [default: the shipped model].",
    )(function)


def place_options(function: Callable) -> Callable:
    """Where a landmark a person names stands: ``learn``, and ``tag`` with a new name."""
    for name, kind, text in reversed((
        ("--city", str, "City."), ("--region", str, "Region or state."),
        ("--country", str, "Country name."), ("--country-code", str, "ISO 3166 code: CA."),
        ("--lat", float, "Latitude of the landmark, -90 to 90."),
        ("--lon", float, "Longitude of the landmark, -180 to 180."),
    )):
        function = click.option(name, type=kind, help=text)(function)
    return function


def _place(city, region, country, country_code, lat, lon) -> dict:
    return {"city": city, "region": region, "country": country, "country_code": country_code,
            "latitude": lat, "longitude": lon}


def wait_option(function: Callable) -> Callable:
    return click.option(
        "--wait",
        default=10.0,
        show_default=True,
        type=click.FloatRange(0),
        help="Seconds to wait for a scan of the same index to finish.",
    )(function)


def position_option(function: Callable) -> Callable:
    return click.option(
        "--position/--no-position",
        default=True,
        show_default=True,
        help="Also write the landmark's position as the photo's estimated GPS position (photo "
        "managers put it on their maps); --no-position writes the landmark and place names "
        "only.",
    )(function)


def open_library(db: str | None, dry_run: bool = False, existing: bool = False) -> Library:
    """The index at ``db`` (or the default), made and migrated on first use.

    A dry run never creates nor upgrades an index. A command that only reads (``existing``)
    never creates one: a mistyped ``--db`` is an error, not a new empty index.
    """
    from phototagger.index import Library

    url = config.db_url(db) if db else config.default_db_url()
    if not (dry_run or existing):
        return Library(url)
    library = None
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        state, shown = "empty", url[len("sqlite:///") :]
    else:
        library = Library(url, migrate=False)
        state, shown = library.schema_state(), library.shown_url
    if state == "empty" and existing:
        raise ConfigError(f"no index at {shown} yet: `phototagger scan` makes one")
    if state == "empty":  # a dry run: everything is new, and nothing is left behind
        return Library("sqlite://")
    if state == "behind" and dry_run:
        raise ConfigError(
            f"the index {shown} needs `phototagger db upgrade` before a dry run"
            " (which changes nothing, not even the index's schema)"
        )
    if state == "behind":
        library.upgrade()
    return library


def load_model(model_path: Path | None, device: str = "auto") -> LandmarkModel:
    from phototagger.model import LandmarkModel

    path = model_path or config.DEFAULT_MODEL
    if model_path is None and not path.is_file():
        raise ConfigError(f"the shipped model is missing ({path}): pass --model FILE")
    model = LandmarkModel.load(path, device)
    if device == "cuda":
        model.device  # noqa: B018 - fail now, not after the walk, when CUDA is missing
    if model.evidence is None:
        click.echo(
            f"warning: {path} is a model file of format 1, without reference photos: nothing "
            "it says can be verified, so its landmarks are suggestions only, never written "
            "into files (`python -m training gallery` adds reference photos)",
            err=True,
        )
    return model


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="phototagger")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Tag a photo library with the landmarks its pictures show."""
    try:
        ctx.default_map = _defaults_from_file(ctx, config.config_path())
    except ConfigError as error:
        click.echo(f"phototagger: error: {error}", err=True)
        ctx.exit(EXIT_USAGE)


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``group`` (the group too), with the names that lead to it."""
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _setting_of(param: click.Parameter) -> str | None:
    """The config file's key that sets ``param``'s default: its long name (``--exclude``)."""
    names = [opt[2:] for opt in param.opts if opt.startswith("--")]
    return next((name for name in names if name in config.SETTINGS), None)


#: The TOML type each kind of option takes from a config file (anything else: a string).
_TOML_TYPES = {
    click.types.BoolParamType: (bool, "true or false"),
    click.types.IntParamType: (int, "a whole number"),
    click.types.FloatParamType: ((int, float), "a number"),
}


def _defaults_from_file(ctx: click.Context, path: Path) -> dict:
    """The config file's settings as Click's ``default_map``: every command with an option of
    a setting's name takes the file's value as its default (the command line still wins),
    checked by that option, so a bad value is an error before any command runs."""
    settings = config.read_settings(path)
    defaults: dict = {}
    for names, command in _commands(main):
        for param in command.params:
            key = _setting_of(param)
            if key not in settings:
                continue
            value = settings[key]
            expected, what = next((shape for kind, shape in _TOML_TYPES.items()
                                   if isinstance(param.type, kind)), (str, "a string"))
            items = value if param.multiple and isinstance(value, list) else [value]
            if (param.multiple and not isinstance(value, list)) or any(
                    isinstance(item, bool) != (expected is bool) or not isinstance(item, expected)
                    for item in items):
                what = f"a list, each {what}" if param.multiple else what
                shown = json.dumps(value, default=str)
                raise ConfigError(f"{path}: {key} must be {what}, not {shown}")
            try:
                checked = param.type_cast_value(ctx, value)
            except click.BadParameter as error:
                raise ConfigError(f"{path}: {key}: {error.message}") from None
            target = defaults
            for name in names:
                target = target.setdefault(name, {})
            target[param.name] = checked
    return defaults


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@model_option
@db_option
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 1024))
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    help="Decoding processes [default: half the cores on a CPU, all but two with CUDA].",
)
@click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(ENGINES),
    help="What decodes and predicts: this process and its workers, or a Ray cluster "
    "(pip install 'phototagger[ray]'; every node must see the photos at the same paths).",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="The Ray cluster to use (host:port, or 'auto') [default: a Ray started for the scan].",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(1, 1024),
    help="Inference actors on Ray [default: one per GPU, or one per two CPUs].",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="Minimum confidence to tag [default: the model's own].",
)
@click.option(
    "--write",
    "write",
    default="embed",
    show_default=True,
    type=click.Choice(WRITE_MODES),
    help="Tags into the file (lossless; a sidecar where that is not safe), "
    "into NAME.ext.xmp sidecars only, or into the index only.",
)
@click.option("--dry-run", is_flag=True, help="Change nothing: no file, no index.")
@click.option("--force", is_flag=True, help="Predict again even for unchanged files.")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Skip files or folders whose name or full path matches GLOB, or, for a GLOB with a"
    " slash, whose path from the scanned folder does: 'drafts', '*.tmp.jpg', 'trips/2019/*'"
    " (repeatable).",
)
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds to wait for another scan of the same index to finish.",
)
@click.option("--keep-mtime", is_flag=True, help="Keep each tagged file's modification time.")
@click.option(
    "--follow-links",
    is_flag=True,
    help="Follow symbolic links that lead out of the scanned folders: what they lead to is "
    "scanned, tagged and served by the app too. Without it such links are not followed.",
)
@position_option
@click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing unless something failed (or --json)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append a log of the run to FILE.",
)
def scan(
    paths,
    model_path,
    db,
    batch_size,
    workers,
    device,
    engine,
    ray_address,
    ray_actors,
    threshold,
    write,
    dry_run,
    force,
    excludes,
    wait,
    keep_mtime,
    follow_links,
    position,
    quiet,
    as_json,
    log_file,
) -> None:
    """Find photos under PATHS, predict their landmarks, index them and write tags."""
    from phototagger.scan.engines import check_engine
    from phototagger.scan.pipeline import Scanner, ScanOptions

    options = ScanOptions(
        batch_size=batch_size,
        workers=workers,
        threshold=threshold,
        write=write,
        dry_run=dry_run,
        force=force,
        excludes=tuple(excludes),
        wait=wait,
        progress=not quiet and not as_json and sys.stderr.isatty(),
        preserve_mtime=keep_mtime,
        estimate_position=position,
        follow_links=follow_links,
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors,
    )
    if ray_address and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    with _logging(log_file):
        check_engine(options)  # before the index is made or the model read
        scanner = Scanner(open_library(db, dry_run), load_model(model_path, device), options)
        with _stopping_on_signals(scanner) as received:
            summary = scanner.run(paths)
        logging.getLogger("phototagger.scan").info("summary: %s", json.dumps(summary.to_dict()))
    if as_json:  # asked for: printed even with --quiet
        click.echo(json.dumps(summary.to_dict(), indent=2))
        _print_failures(summary)
    elif not quiet or summary.failed:
        _print_summary(summary, quiet)
    if summary.interrupted:
        click.echo("interrupted: what was done is kept, and the next scan goes on from there",
                   err=True)
        sys.exit(128 + received[0])
    sys.exit(EXIT_FAILURES if summary.failed else EXIT_OK)


#: A second Ctrl-C or SIGTERM stops at once, unless it comes this soon after the first.
REPEAT_WITHIN_S = 1.0


@contextlib.contextmanager
def _stopping_on_signals(scanner) -> Iterator[list[int]]:
    """Ctrl-C, SIGTERM (a shutdown, `timeout`, systemd) or SIGHUP (a closed terminal or ssh
    session) ends the scan cleanly after the batch in hand; a second one stops at once.
    Yields the signals received."""
    received: list[int] = []
    first = [0.0]

    def stop(signum, frame) -> None:
        # `timeout` signals the process, then its group: one request, twice within a second
        if received and time.monotonic() - first[0] > REPEAT_WITHIN_S:
            sys.exit(128 + signum)
        if not received:
            received.append(signum)
            first[0] = time.monotonic()
            scanner.request_stop()
            # os.write: click.echo here could re-enter a write the signal interrupted
            os.write(2, b"\nstopping after the current batch (again to stop at once)\n")

    caught = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):  # not on Windows
        caught.append(signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in caught}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _logging(log_file: Path | None) -> Iterator[None]:
    """Warnings a person must see (the scan went on, but not as it should) go to stderr, even
    with --quiet; with ``log_file`` everything is appended there too (its folder made if need
    be: a fresh ~/.local/state has none). Failed files are left to the summary on stderr."""
    from phototagger.scan.summary import failures_log

    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("warning: %(message)s"))
    to_stderr.addFilter(lambda record: record.name != failures_log.name)
    to_file = _log_file(log_file)
    with _logged_to(to_stderr, to_file):
        try:
            yield
        except (PhototaggerError, SQLAlchemyError) as error:
            # The night's log must say why there was no scan (the index locked, a full disk);
            # stderr gets the one-line error from Command.
            if to_file is not None:
                logger = logging.getLogger("phototagger")
                to_file.handle(logger.makeRecord(
                    logger.name, logging.ERROR, __file__, 0, "scan stopped: %s", (error,), None))
            raise


def _log_file(log_file: Path | None) -> logging.Handler | None:
    """A handler appending to ``log_file`` (its folder made if need be), or None."""
    if log_file is None:
        return None
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise ConfigError(f"cannot write the log {log_file}: {error.strerror or error}") from None
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return to_file


@contextlib.contextmanager
def _logged_to(*handlers: logging.Handler | None) -> Iterator[None]:
    """phototagger's log records, from INFO up, go to ``handlers`` while the block runs;
    closed after it."""
    logger = logging.getLogger("phototagger")
    logger.setLevel(logging.INFO)
    attached = [handler for handler in handlers if handler is not None]
    for handler in attached:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in attached:
            logger.removeHandler(handler)
            handler.close()


def _print_summary(summary, quiet: bool) -> None:
    if not quiet:
        prefix = "dry run: " if summary.dry_run else ""
        tagged, untagged = ("tagged", "untagged")
        if summary.dry_run:
            tagged, untagged = ("would tag", "would untag")
        photos = "photo" if summary.found == 1 else "photos"
        click.echo(
            f"{prefix}found {summary.found} {photos}: {summary.new} new, "
            f"{summary.changed} changed, "
            f"{summary.moved} moved, {summary.new_model} for a new model, "
            + (f"{summary.retried} with a failed write retried, " if summary.retried else "")
            + (f"{summary.new_settings} for new tag settings, " if summary.new_settings else "")
            + (f"{summary.forced} forced, " if summary.forced else "")
            + f"{summary.unchanged} unchanged, {summary.skipped} skipped, "
            f"{summary.missing} missing"
        )
        # Of the photos this scan predicted: an unchanged or moved photo keeps the decision
        # the index recorded for it (`info` shows it), and is not counted again here.
        click.echo(
            f"predicted {summary.predicted}: {tagged} {summary.tagged}, "
            f"suggested {summary.suggested}, "
            f"below threshold {summary.below_threshold}, "
            + (f"not like its known photos {summary.not_similar}, " if summary.not_similar
               else "")
            + (
                f"too far from the camera's GPS {summary.far_from_camera}, "
                if summary.far_from_camera
                else ""
            )
            + (f"featureless {summary.featureless}, " if summary.featureless else "")
            + f"kept as a person set them {summary.kept_by_person}, {untagged} {summary.untagged}, "
            f"failed {len(summary.failed)} ({summary.seconds:.1f} s, "
            f"{summary.images_per_second:.1f} images/s)"
        )
        if summary.placed_from_library:
            click.echo(f"placed {summary.placed_from_library} photos without GPS from the "
                       "library's own GPS photos that look like them (in the index only: "
                       "`phototagger info FILE` shows where)")
        if summary.outside_links:
            links = "link leads" if summary.outside_links == 1 else "links lead"
            click.echo(f"{summary.outside_links} {links} out of the scanned folders: not "
                       "followed (--follow-links follows them)")
        if summary.skipped:
            click.echo(
                f"{summary.skipped} {'file' if summary.skipped == 1 else 'files'} failed in an "
                "earlier scan and have not changed since "
                "(`phototagger info FILE` tells why; --force tries them again)"
            )
    _print_failures(summary)


def _print_failures(summary) -> None:
    """Each failed file with its reason, on stderr: what a cron job's mail must show."""
    if summary.failed:
        click.echo(f"{len(summary.failed)} failed:", err=True)
        for failure in summary.failed:
            click.echo(f"  {_printable(failure['path'])}: {failure['reason']}", err=True)


def _printable(path: str) -> str:
    """A path as text, with the bytes of a non-UTF-8 name shown as escapes (as in the index)."""
    from phototagger.index import path_key

    return path_key(path)[0]


@main.command()
@click.option("--landmark", help="Name or alias, partial, any case or accents: 'eiffel'.")
@click.option(
    "--country",
    help="ISO code (FR or FRA, exactly) or name (France, any of its words' beginnings; ISO's"
    " and common names: Viet Nam, UK). A landmark whose country is disputed has none (the"
    " Dome of the Rock): --city finds it.",
)
@click.option("--city", help="City name (any of its words' beginnings).")
@click.option("--min-confidence", type=click.FloatRange(0, 1))
@click.option(
    "--under",
    type=click.Path(file_okay=False, path_type=Path),
    help="Only photos inside this folder.",
)
@click.option("--limit", type=click.IntRange(1))
@click.option(
    "--state",
    default="tagged",
    show_default=True,
    type=click.Choice(STATES),
    help="Which photos: tagged, suggested (plausible, not written into files: `tag` confirms, "
    "`untag` rejects), none, person (a person's tags and removals), or all.",
)
@click.option("--suggested", is_flag=True, help="The same as --state suggested.")
@output_options
@db_option
def query(
    landmark, country, city, min_confidence, under, limit, state, suggested, output, null, db
) -> None:
    """Find photos in the index: tagged ones, or those in another --state."""
    if null and output != "paths":
        raise click.UsageError("--null goes with --format paths")  # before the index is read
    if suggested and state not in ("tagged", "suggested"):
        raise click.UsageError("--suggested is --state suggested: give one of them")
    state = "suggested" if suggested else state
    library = open_library(db, existing=True)
    with library.session() as session:
        photos = library.find(
            session,
            landmark=landmark,
            country=country,
            city=city,
            min_confidence=min_confidence,
            under=under,
            limit=limit,
            state=state,
        )
        rows = [_photo_row(photo) for photo in photos]
        paths = [photo.fs_path for photo in photos]
    _print_photos(rows, paths, output, null)


def _print_photos(rows: list[dict], paths: list[str], output: str, null: bool) -> None:
    """Photo rows (``_photo_row``, maybe with more fields first) in the format asked for."""
    if null and output != "paths":
        raise click.UsageError("--null goes with --format paths")
    if output == "paths":  # exact bytes, one per line (or NUL-ended), for xargs
        out = sys.stdout.buffer
        for path in paths:
            out.write(os.fsencode(path) + (b"\0" if null else b"\n"))
    elif output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else _PHOTO_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        _print_table(rows)


_PHOTO_FIELDS = ("path", "landmark", "confidence", "state", "city", "country", "latitude",
                 "longitude")


def _photo_row(photo) -> dict:
    landmark = photo.landmark or photo.suggestion
    state = photo.tag_state or ("suggested" if photo.suggestion else None)
    return {
        "path": photo.path,
        "landmark": landmark.name if landmark else None,
        "confidence": round(photo.confidence, 4) if photo.confidence is not None else None,
        "state": state,
        "city": landmark.city if landmark else None,
        "country": landmark.country if landmark else None,
        "latitude": landmark.latitude if landmark else None,
        "longitude": landmark.longitude if landmark else None,
    }


def _print_table(rows: list[dict]) -> None:
    if not rows:
        click.echo("no photos found", err=True)
        return
    shown = {"confirmed": "person", "removed": "removed by a person", "suggested": "suggested"}
    for row in rows:
        confidence = shown.get(row["state"]) or (
            "-" if row["confidence"] is None else f"{row['confidence']:.2f}")
        place = ", ".join(part for part in (row["city"], row["country"]) if part)
        lead = f"{row['similarity']:.3f}\t" if "similarity" in row else ""
        click.echo(f"{lead}{row['path']}\t{row['landmark'] or '-'}\t{confidence}\t{place}")


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1))
@output_options
@model_option
@db_option
def similar(file, limit, output, null, model_path, db) -> None:
    """Photos of the library that look like FILE, best first, with their similarity.

    An indexed FILE is looked up by its stored embedding (no decoding, no torch); any other
    image is decoded and embedded as `predict` does."""
    from phototagger import search
    from phototagger.model import network_id

    if null and output != "paths":
        raise click.UsageError("--null goes with --format paths")
    network = network_id(model_path or config.DEFAULT_MODEL)
    library = open_library(db, existing=True)
    with library.session() as session:
        photo = library.photo_at(session, library.indexed_path(session, file))
        query = search.embedding_of(session, photo, network)
        if query is None:
            query = _embedding(load_model(model_path, "cpu"), file)
        found = search.similar(session, network, query, limit,
                               exclude=photo.id if photo is not None else None)
        if not found and not len(search.stored(session, network)[0]):
            raise ConfigError("no photo in this index has an embedding by this model's network "
                              "(`phototagger scan --force` gives them one)")
        rows = [{"similarity": round(similarity, 4), **_photo_row(photo)}
                for photo, similarity in found]
        paths = [photo.fs_path for photo, _ in found]
    _print_photos(rows, paths, output, null)


def _embedding(model: LandmarkModel, file: Path):
    """The embedding of an image the index does not know, decoded as a scan decodes it."""
    from phototagger.errors import ImageError
    from phototagger.vocabulary import embed_photos

    if not file.is_file():
        raise ConfigError(f"no such file, and none in the index: {file}")
    embedded, skipped = embed_photos(model, [str(file)])
    if skipped:
        raise ImageError(f"{_printable(skipped[0][0])}: {skipped[0][1]}")
    return embedded[0][1]


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--landmark", required=True, help="The landmark the photos show.")
@click.option("--write", default="embed", show_default=True, type=click.Choice(WRITE_MODES))
@position_option
@place_options
@model_option
@wait_option
@db_option
def tag(files, landmark, write, position, city, region, country, country_code, lat, lon,
        model_path, wait, db) -> None:
    """Set the landmark of FILES by hand (or confirm a suggestion); scans never overwrite it.

    A name the index does not know, given with its place (--city, --country, --lat, --lon),
    is a new landmark, learned from the photos tagged with it (`phototagger learn`)."""
    from phototagger.corrections import confirm_landmark

    model = load_model(model_path) if model_path or config.DEFAULT_MODEL.is_file() else None
    place = _place(city, region, country, country_code, lat, lon)
    paths = [str(f) for f in files]
    _report(confirm_landmark(open_library(db), paths, landmark, write,
                             landmarks=model.classes if model else [], wait=wait,
                             estimate_position=position,
                             place=place if any(v is not None for v in place.values()) else None,
                             network=model.network_id if model else None))


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--all", "everything", is_flag=True, help="Every photo phototagger tagged.")
@click.option(
    "--retag",
    is_flag=True,
    help="Let the next scan tag them again, with its own settings (how tags move between "
    "files and sidecars): without it, scans leave them untagged.",
)
@wait_option
@db_option
def untag(files, everything, retag, wait, db) -> None:
    """Remove exactly what phototagger wrote from FILES (and keep scans from re-tagging them)."""
    from phototagger.corrections import remove_landmark

    if bool(files) == everything:
        raise click.UsageError("give FILES or --all, not both and not neither")
    paths = None if everything else [str(f) for f in files]
    _report(remove_landmark(open_library(db), paths, wait=wait, retag=retag))


def _report(outcomes) -> None:
    for outcome in outcomes:
        click.echo(f"{_printable(outcome.path)}: {outcome.message}", err=not outcome.ok)
    sys.exit(EXIT_OK if all(outcome.ok for outcome in outcomes) else EXIT_FAILURES)


@main.command()
@model_option
@db_option
def landmarks(model_path, db) -> None:
    """The model's landmarks and those this index learned, with how many photos show each."""
    from phototagger.vocabulary import MIN_PHOTOS, learned_landmarks

    model = load_model(model_path, "cpu")
    counts, learned = {}, []
    try:
        library = open_library(db, existing=True)
    except ConfigError:
        # A mistyped --db is an error; no index yet where the settings point means no photos.
        if click.get_current_context().get_parameter_source("db") is ParameterSource.COMMANDLINE:
            raise
    else:
        with library.session() as session:
            counts = library.landmark_counts(session)
            learned = learned_landmarks(session)
    rows = [(lm.name, lm.slug, lm.city, lm.country, "") for lm in model.classes]
    for row, photos in learned:
        waiting = f", needs {MIN_PHOTOS}" if photos < MIN_PHOTOS else ""
        rows.append((row.name, row.slug, row.city, row.country,
                     f"  [learned from {photos} photo{'s' if photos != 1 else ''}{waiting}]"))
    for name, slug, city, country, note in sorted(rows):
        place = ", ".join(p for p in (city, country) if p)
        click.echo(f"{counts.get(slug, 0):6d}  {name}  ({place or '?'}){note}")


@main.command()
@click.argument("name")
@click.argument("photos", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--from-place", "place_id", metavar="ID",
              help="Learn it from the photos of place ID (`phototagger places`) instead.")
@place_options
@model_option
@wait_option
@db_option
def learn(name, photos, place_id, city, region, country, country_code, lat, lon, model_path,
          wait, db) -> None:
    """Add landmark NAME to this index from PHOTOS of it (files or folders, at least 5) or
    from a place's photos, without retraining; then re-decide the indexed photos from their
    stored embeddings."""
    from phototagger.vocabulary import learn as learn_landmark
    from phototagger.vocabulary import learn_place

    if bool(photos) == bool(place_id):
        raise click.UsageError("give PHOTOS or --from-place ID, not both and not neither")
    started = time.monotonic()
    place = _place(city, region, country, country_code, lat, lon)
    model = load_model(model_path, "cpu")
    if place_id:
        result = learn_place(open_library(db, existing=True), model, name, place_id, place,
                             wait)
    else:
        result = learn_landmark(open_library(db), model, name, photos, place, wait)
    landmark, redecided = result.landmark, result.redecided
    where = ", ".join(p for p in (landmark.city, landmark.country) if p)
    if place_id and landmark.has_location and lat is None:
        where = ", ".join(p for p in (where, f"at its photos' GPS median {landmark.latitude:.5f},"
                                      f" {landmark.longitude:.5f}") if p)
    click.echo(f"learned {landmark.name}" + (f" ({where})" if where else "")
               + f" from {result.photos} photos ({result.added} new) in "
               f"{time.monotonic() - started:.1f} s")
    click.echo(f"the photos agree {result.agreement:.2f} (median similarity to each other)")
    for source, similarity in result.outliers:
        click.echo(f"  does not look like the others ({similarity:.2f}): {_printable(source)}"
                   " - a wrong photo? `phototagger forget` and learn again without it")
    tagged, suggested = redecided.matching.get(landmark.slug, (0, 0))
    click.echo(f"indexed photos of it now: {tagged} tagged, {suggested} suggested "
               f"({redecided.changed} of {redecided.photos} re-decided photos changed; "
               "the next scan that writes puts the tags into the files)")
    for path, reason in result.skipped:
        click.echo(f"skipped {_printable(path)}: {reason}", err=True)
    sys.exit(EXIT_FAILURES if result.skipped else EXIT_OK)


@main.command()
@click.option("--min-photos", default=5, show_default=True, type=click.IntRange(2),
              help="The fewest photos a place is made of.")
@click.option("--format", "output", default="table", show_default=True,
              type=click.Choice(["table", "json", "csv", "paths"]))
@model_option
@db_option
def places(min_photos, output, model_path, db) -> None:
    """Groups of untagged photos that look like the same place, largest first, with the
    median and spread of their camera GPS; `learn NAME --from-place ID` names one."""
    from phototagger.model import network_id
    from phototagger.places import find_places

    network = network_id(model_path or config.DEFAULT_MODEL)
    library = open_library(db, existing=True)
    with library.session() as session:
        found = find_places(session, network, min_photos)
    rows = [{"place": p.id, "photos": len(p.paths),
             "latitude": None if p.latitude is None else round(p.latitude, 6),
             "longitude": None if p.longitude is None else round(p.longitude, 6),
             "gps_photos": p.gps_photos,
             "spread_km": None if p.spread_km is None else round(p.spread_km, 3),
             "paths": p.paths} for p in found]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif output == "csv":  # a row a photo
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["place", "path", "latitude", "longitude", "spread_km"])
        writer.writerows([row["place"], path, row["latitude"], row["longitude"],
                          row["spread_km"]] for row in rows for path in row["paths"])
        click.echo(buffer.getvalue(), nl=False)
    elif output == "paths":
        for row in rows:
            for path in row["paths"]:
                click.echo(path)
    elif not rows:
        click.echo("no places: no group of untagged photos looks alike", err=True)
    for row in rows if output == "table" else []:
        gps = "no camera GPS"
        if row["gps_photos"]:
            gps = (f"camera GPS of {row['gps_photos']}: median {row['latitude']:.5f}, "
                   f"{row['longitude']:.5f}, spread {row['spread_km']:.2f} km")
        click.echo(f"place {row['place']}: {row['photos']} photos, {gps}")
        for path in row["paths"]:
            click.echo(f"  {path}")


@main.command()
@click.argument("name")
@model_option
@wait_option
@db_option
def forget(name, model_path, wait, db) -> None:
    """Remove learned landmark NAME and exactly the tags it caused (files too)."""
    from phototagger.vocabulary import forget as forget_landmark

    landmark, untagged, redecided = forget_landmark(
        open_library(db, existing=True), load_model(model_path, "cpu"), name, wait)
    click.echo(f"forgot {landmark.name}: its tags taken out of {untagged} "
               f"file{'s' if untagged != 1 else ''}; {redecided.changed} of "
               f"{redecided.photos} re-decided photos changed")


@main.command()
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@db_option
def info(file, db) -> None:
    """What the index and the file's own metadata say about one photo."""
    from phototagger import tags
    from phototagger.imaging import is_featureless
    from phototagger.index.store import recorded_explanation

    library = open_library(db, existing=True)  # info, never a scan: nothing here loads torch
    with library.session() as session:
        path = Path(library.indexed_path(session, file))
        photo = library.photo_at(session, path)
        unreadable = _unreadable(path)
        if photo is None and unreadable == "missing":
            raise ConfigError(f"no such file, and none in the index: {path}")
        if photo is None and path.is_dir():
            raise ConfigError(f"a folder, not a photo: {path} (`phototagger query --under` "
                              "lists the photos in it)")
        if photo is None:
            click.echo("index: not indexed")
        else:
            landmark = photo.landmark
            click.echo(f"index: {photo.status}" + (f" ({photo.error})" if photo.error else ""))
            if photo.width:
                taken = f", taken {photo.taken_at:%Y-%m-%d %H:%M:%S}" if photo.taken_at else ""
                plain = " (featureless: not tagged by a scan)"
                plain = plain if is_featureless(photo.detail) else ""
                click.echo(f"image: {photo.format} {photo.width}x{photo.height}{taken}{plain}")
            if landmark:
                confidence = "" if photo.confidence is None else f" {photo.confidence:.3f}"
                click.echo(f"landmark: {landmark.name}{confidence} [{photo.tag_state}]")
            elif photo.suggestion:
                click.echo(f"suggested: {photo.suggestion.name} [not written into the file; "
                           f"`phototagger tag FILE --landmark {photo.suggestion.slug}` confirms "
                           "it, `phototagger untag FILE` rejects it]")
            elif photo.tag_state == "removed":
                click.echo("landmark: none [removed by a person: scans leave it untagged; "
                           "`phototagger untag --retag FILE` lets them tag it again]")
            elif photo.predictions:
                click.echo("landmark: none")
            landmarks = {lm.slug: lm for lm in library.all_landmarks(session)}
            explanation = recorded_explanation(photo, landmarks)
            if explanation:
                click.echo(f"why: {explanation}")
            if photo.camera_latitude is not None:
                click.echo(f"camera GPS: {photo.camera_latitude:.6f}, {photo.camera_longitude:.6f}")
            elif photo.estimated_latitude is not None:
                click.echo(f"estimated position: {photo.estimated_latitude:.6f}, "
                           f"{photo.estimated_longitude:.6f} [from {photo.estimated_photos} "
                           "photos of this library with camera GPS that look like it, within "
                           f"{photo.estimated_spread_km:.2f} km; a suggestion, not written "
                           "into the file]")
            for prediction in photo.predictions:
                guess = landmarks.get(prediction.slug)
                evidence = "" if prediction.similarity is None else (
                    f", like its known photos {prediction.similarity:.3f}"
                    f" (ordinary photos {prediction.ordinary:.3f})")
                click.echo(
                    f"  {prediction.model.model_id} #{prediction.rank + 1}: "
                    f"{guess.name if guess else prediction.slug} {prediction.probability:.3f}"
                    + evidence + _from_camera(landmarks, photo, prediction.slug)
                )
            for write in photo.writes:
                click.echo(f"written: {write.mode} {write.target} ({write.written:%Y-%m-%d %H:%M})")
    if unreadable == "missing":
        click.echo("file: missing (the index remembers it as above)")
    elif unreadable:
        click.echo(f"file: could not be read ({unreadable})")
    else:
        written = tags.read_tags(path)
        if written is None:
            click.echo("file tags: none of phototagger's")
        else:
            confidence = "" if written.confidence is None else f" {written.confidence:.3f}"
            click.echo(
                f"file tags: {written.landmark}{confidence} by {written.source}"
                f" ({written.model or 'a person'}) in {written.where}"
                + (", with an estimated GPS position" if written.gps_written else "")
            )
        if photo is not None and photo.write_error:
            click.echo(f"last write failed: {photo.write_error}")


def _from_camera(landmarks: dict, photo, slug: str) -> str:
    """How far the camera stood from a predicted landmark: a far one is never tagged."""
    from phototagger.landmarks import FARTHEST_VIEW_KM

    landmark = landmarks.get(slug)
    camera = (photo.camera_latitude, photo.camera_longitude)
    km = None if landmark is None or None in camera else landmark.distance_from(camera)
    if km is None:
        return ""
    return f", {km:,.0f} km from the camera" + (" (too far)" if km > FARTHEST_VIEW_KM else "")


def _unreadable(path: Path) -> str | None:
    """Why the file at ``path`` cannot be opened ("missing" when it is gone), or None.

    ``info`` must still show what the index knows of a file the user cannot read: its
    recorded failure is often the very reason they ask.
    """
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))  # a FIFO must not block
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as error:
        return error.strerror or str(error)
    return None


@main.group(cls=Group)
def db() -> None:
    """Index maintenance."""


@db.command()
@db_option
def upgrade(db) -> None:
    """Bring the index to the current schema (scans also do this on first use)."""
    from phototagger.index import Library

    library = Library(config.db_url(db) if db else config.default_db_url(), migrate=False)
    try:
        state = library.schema_state()
    except ConfigError:
        state = "unknown"  # unreachable: upgrade says why in its own words
    library.upgrade()
    done = {"empty": "created", "behind": "upgraded", "current": "up to date, unchanged"}
    click.echo(f"index {done.get(state, 'ready')}: {library.shown_url}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--json", "as_json", is_flag=True)
@click.option("--db", "db", metavar="URL",
              help="Also weigh the landmarks this index learned (`phototagger learn`).")
def predict(images, model_path, top_k, device, as_json, db) -> None:
    """The most likely landmarks in each IMAGE."""
    from phototagger.predict import predict_file
    from phototagger.vocabulary import Vocabulary

    model = load_model(model_path, device)
    vocabulary = None
    if db:
        library = open_library(db, existing=True)
        with library.session() as session:
            vocabulary = Vocabulary.of(library, session, model)
    results = [predict_file(model, str(image), top_k, vocabulary) for image in images]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        for result in results:
            _print_prediction(result)
    sys.exit(EXIT_FAILURES if any(r.error for r in results) else EXIT_OK)


def _print_prediction(result) -> None:
    if result.error:
        click.echo(f"{_printable(result.source)}: error: {result.error}", err=True)
        return
    click.echo(f"{_printable(result.source)}:")
    click.echo(f"  {result.explanation}")
    for candidate in result.candidates:
        landmark = candidate.landmark
        place = ", ".join(p for p in (landmark.city, landmark.country) if p)
        where = ""
        if landmark.has_location:
            where = f" [{landmark.latitude:.4f}, {landmark.longitude:.4f}]"
        click.echo(f"  {candidate.probability:6.1%}  {landmark.name}  {place}{where}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@model_option
@db_option
@click.option(
    "--allow-host",
    "allowed",
    multiple=True,
    metavar="NAME",
    help="Also answer to requests for NAME (repeatable); the app answers to its IP addresses,"
    " localhost and this machine's names, and refuses others (DNS rebinding).",
)
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append the app's log (its errors, with their tracebacks) to FILE.",
)
@click.option("--write", default="embed", show_default=True, type=click.Choice(WRITE_MODES),
              help="How the app writes a person's tags: into the file, a sidecar, or the index "
              "only (as for tag).")
@position_option
def serve(host, port, model_path, db, allowed, log_file, write, position) -> None:
    """A local web app: predict one photo, browse and correct the library."""
    import socket

    from werkzeug.serving import run_simple

    from phototagger.memory import return_freed_memory
    from phototagger.web import create_app, own_host_names

    return_freed_memory()  # an upload's decoded image goes back to the system once answered
    to_stderr = logging.StreamHandler(sys.stderr)  # "the server log has details": here
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    to_file = _log_file(log_file)
    app = create_app(model=load_model(model_path), library=open_library(db),
                     host_names=own_host_names(host, allowed), write=write,
                     estimate_position=position)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address, as a URL writes it
    if not host.startswith("unix://"):  # Werkzeug also listens on a Unix socket
        try:  # a port in use is a one-line error, not the server's own message and exit 1
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            socket.create_server((host, port), family=family).close()
        except socket.gaierror as error:
            raise ConfigError(f"cannot serve on {shown}:{port}: {error.strerror}") from None
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ConfigError(f"cannot serve on {shown}:{port}: {reason}") from None
    # Werkzeug's server (Flask's own) is fine for one person on this machine; its banner
    # warns against deploying it, which would only confuse, and its log of every request is
    # noise here: it says only what goes wrong.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    click.echo(f"phototagger app: http://{shown}:{port}/ (Ctrl-C stops it)")
    with _logged_to(to_stderr, to_file):
        run_simple(host, port, app, threaded=True)


def _setting_options() -> list[click.Parameter]:
    """Each setting's option as the first command that has it declares it, for ``config``."""
    found: dict[str, click.Parameter] = {}
    for _, command in _commands(main):
        for param in command.params:
            key = _setting_of(param)
            if key is not None:
                found.setdefault(key, copy.copy(param))
    return [found[key] for key in config.SETTINGS if key in found]


_SOURCES = {
    ParameterSource.COMMANDLINE: "command line",
    ParameterSource.DEFAULT_MAP: "config file",
    ParameterSource.DEFAULT: "default",
}
#: What a setting left unset means.
_UNSET = {
    "threshold": "the model's own",
    "workers": "half the cores on a CPU, all but two with CUDA",
    "ray-address": "a Ray started for each scan",
    "ray-actors": "one per GPU, or one per two CPUs",
}


@main.command("config", params=_setting_options())
@click.pass_context
def show_config(ctx: click.Context, **values) -> None:
    """The settings in effect and where each comes from; options given here win, as they do
    on any command. The output is TOML: a config file could hold it."""
    path = config.config_path()
    click.echo(f"# config file: {path}" + ("" if path.is_file() else " (there is none)"))
    for param in ctx.command.params:
        key, value = _setting_of(param), values[param.name]
        source = ctx.get_parameter_source(param.name)
        origin = f"${param.envvar}" if source is ParameterSource.ENVIRONMENT else _SOURCES[source]
        if key == "db":
            value = config.shown_url(config.db_url(value) if value else config.default_db_url())
        if value is None:
            click.echo(f"# {key}: {_UNSET.get(key, 'not set')}  ({origin})")
        else:
            value = list(value) if param.multiple else value
            click.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}  # {origin}")


if __name__ == "__main__":  # pragma: no cover
    main()
