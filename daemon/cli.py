"""The `psdwatch` command: a thin click layer over the pipeline and the daemon.

Every failure a user can cause (a bad file, a bad config) ends in one line on
stderr and a non-zero exit, never a traceback: the command is also driven by
scripts that read its exit code. The image and network libraries are imported
inside the commands that use them, so `--help`, `status`, `config` and a refused
file answer in about a second instead of paying for torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import ConfigError, load_config, runtime_options, settings_from_config, to_toml

CONFIG_HELP = "Configuration file (TOML); keys left out take the defaults of the embedded config.toml."


class Fail(click.ClickException):
    """One line on stderr, `psdwatch: ...`, and the exit code given."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(" ".join(str(message).split()))
        self.exit_code = code

    def show(self, file=None) -> None:
        click.echo(f"psdwatch: {self.format_message()}", err=True, file=file)


def with_config(command):
    """`--config F` declared once for every command that reads one."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help=CONFIG_HELP)(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """psdwatch: particle size distributions from HAADF STEM images, measured as they
    leave the microscope.

    Measure one file with `psdwatch process IMAGE`; run the service that watches the
    microscope's export share with `psdwatch run`."""


# --------------------------------------------------------------------------- one image

def print_summary(record: dict) -> None:
    psd = record["psd"]
    unit = psd.get("unit", "nm")
    scale = (f"{record['nm_per_px']:.5g} nm/px from {record['scale_source']} ({record['scale_text']})"
             if record["nm_per_px"] else "unknown")
    click.echo(f"image   {record['image']}")
    click.echo(f"sample  {record['sample']}")
    click.echo(f"scale   {scale}")
    click.echo(f"model   {record['model']} ({record['engine']}, segmented at scale {record['segment_scale']:g})")
    click.echo(f"engine  {record['engine_reason']}")
    if psd["n"]:
        ci = psd.get("d50_ci95") or [psd["d50"], psd["d50"]]
        click.echo(f"PSD     n={psd['n']}  d10={psd['d10']:.3g}  d50={psd['d50']:.3g} "
                   f"[{ci[0]:.3g}, {ci[1]:.3g}]  d90={psd['d90']:.3g}  mean={psd['mean']:.3g} "
                   f"std={psd['std']:.3g} {unit}")
    else:
        click.echo("PSD     no particles measured")
    click.echo(f"flags   {', '.join(record['flags']) or 'none'}")


@cli.command()
@click.argument("image", type=click.Path(dir_okay=False))
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts) instead of a summary.")
@click.option("--mask-out", type=click.Path(dir_okay=False),
              help="Also write the final particle mask as a black and white PNG (255 = particle).")
def process(image: str, config_path: str | None, as_json: bool, mask_out: str | None) -> None:
    """Measure the particles of one image file (TIFF, DM3/DM4, Velox EMD, TIA EMI/SER,
    PNG, JPEG): scale, particles, d10/d50/d90, and any warnings."""
    config = load_config(config_path)
    settings = settings_from_config(config)
    from ..pipeline.io.image import UnreadableImage, load_image

    try:  # the file first: a refused file answers before the analysis and model libraries load
        loaded = load_image(image)
    except UnreadableImage as error:
        raise Fail(f"{image}: {error}", 2) from None
    from ..pipeline.analyse import analyse_loaded, analysis_record
    from .models.live import engine_reason, load_live_model
    from .watch.samples import sample_of
    model = load_live_model(config, settings.engine)
    reason = engine_reason(config, settings.engine, model)
    if model is None and settings.engine != "classical":
        click.echo(f"psdwatch: {reason}", err=True)
    analysis = analyse_loaded(loaded, settings, model, image, {})
    record = analysis_record(analysis, sample_of(Path(image), config.watch.root,
                                                 config.watch.sample_pattern))
    record["engine_reason"] = reason
    if mask_out:
        import cv2

        if not cv2.imwrite(str(mask_out), analysis.mask.astype("uint8") * 255):
            raise Fail(f"cannot write mask to {mask_out}")
    if as_json:
        click.echo(json.dumps(record))
    else:
        print_summary(record)


# --------------------------------------------------------------------------- the service

@cli.command()
@with_config
def run(config_path: str | None) -> None:
    """Run the service: watch the share, measure every new image, store it, update the reports.
    Runs until stopped (Ctrl-C or SIGTERM)."""
    from .service import loop as service
    from .service.lock import StoreInUse

    load_config(config_path)  # a bad config is one line before anything starts
    service.setup_logging()
    try:
        code = service.run_service(config_path)
    except StoreInUse as error:
        raise Fail(str(error), 3) from None
    if code:
        sys.exit(code)


@cli.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(config_path: str | None, as_json: bool) -> None:
    """What is queued, done, quarantined, duplicate and skipped, and which model is live."""
    from . import store
    from .models.live import live_model_name
    from .store.report_state import health as report_health

    config = load_config(config_path)
    database = config.store.database
    live = live_model_name(config.models.dir)
    model = "classical" if config.segment.engine == "classical" or live is None else live
    if not Path(database).is_file():
        counts = {"queued": 0, "processing": 0, **{s: 0 for s in store.STATUSES},
                  "samples": 0, "model": model, "unsure": 0, "mixed_model_samples": 0,
                  "mixed_models": {}, **report_health(None)}
    else:
        db = store.open_store_readonly(database)
        counts = {**store.counts(db, model), **report_health(db)}
    counts = {"database": str(database), "store_exists": Path(database).is_file(), **counts}
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(f"store    {database}" + ("" if counts["store_exists"] else " (no store yet: nothing measured)"))
    click.echo(f"model    {counts['model']}")
    click.echo(f"images   {counts['done']} done, {counts['quarantined']} quarantined, "
               f"{counts['duplicate']} duplicate, {counts['skipped']} skipped (not HAADF); "
               f"{counts['queued']} queued, {counts['processing']} processing")
    click.echo(f"unsure   {counts['unsure']} done images flagged segmentation_unsure")
    click.echo(f"samples  {counts['samples']} ({counts['mixed_model_samples']} measured with more than one model)")
    for sample, by_model in counts["mixed_models"].items():
        click.echo(f"  mixed  {sample}: " + ", ".join(f"{m} ({n} image{'' if n == 1 else 's'})" for m, n in by_model.items()))
    due = f"{counts['reports_due']} sample page(s) due" if counts["reports_due"] else "up to date"
    waiting = f", {counts['pictures_waiting']} thumbnail(s) waiting" if counts["pictures_waiting"] else ""
    click.echo(f"reports  {config.reports.dir}: {due}{waiting}")
    if counts["reports_error"]:
        click.echo(f"  FAILING since {counts['reports_failing_since']}: {counts['reports_error']} "
                   "(images are still measured and stored; the pages follow once they can be written)")


@cli.command()
@with_config
def report(config_path: str | None) -> None:
    """Rebuild every sample's report page and the index from the store."""
    from .report import scheduler as report_scheduler
    from . import store

    config = load_config(config_path)
    settings = settings_from_config(config)
    index = report_scheduler.write_reports(store.open_store(config.store.database), config.reports.dir,
                                  min_particles=settings.min_particles, bootstrap=settings.bootstrap,
                                  page_images=config.reports.page_images)
    click.echo(index)


@cli.command()
@click.argument("samples", nargs=-1)
@with_config
@click.option("--all", "every", is_flag=True, help="Every sample in the store.")
@click.option("--model", "model_name", help="Measure with this model of the models folder (default: the live one).")
@click.option("--changed-config", "changed", is_flag=True,
              help="Also the images the current configuration would measure differently: no scale while "
                   "[scale] nm_per_px is now set, or a fallback scale that changed (besides another model or engine).")
@click.option("--force", is_flag=True, help="Every image of the samples, whatever measured it "
                                            "(after a change of [measure] or [segment] settings).")
def reprocess(samples: tuple[str, ...], config_path: str | None, every: bool, model_name: str | None,
              changed: bool, force: bool) -> None:
    """Measure the stored images of SAMPLES again with one model (the live one, or
    --model NAME), so that each sample's PSD comes from one model; with
    --changed-config also those a changed scale would change, with --force all. The
    old results go to the history table; an interrupted run goes on where it
    stopped; the running service is not held up."""
    if not samples and not every:
        raise Fail("name the samples to re-measure, or use --all")
    if changed and force:
        raise Fail("--force already re-measures everything --changed-config would")
    from .service import compute
    from .report import scheduler as report_scheduler
    from .models import reprocess
    from . import store
    from .models.live import load_live_model, prepare_named
    from .service.loop import thumbnail_writer

    config = load_config(config_path)
    settings = settings_from_config(config)
    if model_name:
        model = prepare_named(config.models.dir, model_name, runtime_options(config))
        settings.engine = "unet"
    else:
        model = load_live_model(config, settings.engine)
    db = store.open_store(config.store.database, config.store.busy_timeout)
    why = "force" if force else "changed-config" if changed else "model"
    todo = reprocess.targets(db, None if every else list(samples), model, why, settings.fallback_nm_per_px)
    what = model.name if model else "the classical engine"
    if not todo:
        click.echo(f"nothing to re-measure: every image is measured with {what}"
                   + (" and the current [scale]" if changed else
                      " (--changed-config: also what a changed scale would change; --force: all)"))
        return
    cluster = compute.start(config)
    where = f"on Dask {cluster.where}" if cluster else "in this process"
    tally: dict[str, int] = {}
    try:
        with click.progressbar(reprocess.remeasure(
                db, config.watch.root, settings, model, todo, cluster=cluster,
                before_storing=thumbnail_writer(config)),
                               length=len(todo), label=f"re-measuring {len(todo)} images with {what} {where}",
                               show_eta=True, show_pos=True, file=sys.stderr) as bar:
            for _, status in bar:
                tally[status.split(" (")[0]] = tally.get(status.split(" (")[0], 0) + 1
    finally:
        if cluster is not None:
            cluster.close()
    touched = sorted({t.sample for t in todo})
    index = report_scheduler.write_reports(db, config.reports.dir, touched, min_particles=settings.min_particles,
                                  bootstrap=settings.bootstrap, page_images=config.reports.page_images)
    click.echo(f"{', '.join(f'{n} {s}' for s, n in sorted(tally.items()))}; reports: {index}")


@cli.command("config")
@with_config
def show_config(config_path: str | None) -> None:
    """Print the effective configuration (defaults with your file over them) as TOML."""
    click.echo(to_toml(load_config(config_path)), nl=False)


# --------------------------------------------------------------------------- models

@cli.command("models")
@with_config
def list_models(config_path: str | None) -> None:
    """List the models in the models folder; * marks the live one."""
    from .models.live import list_models as cards_of

    config = load_config(config_path)
    cards = cards_of(config.models.dir)
    if not cards:
        click.echo(f"no models in {config.models.dir}: the classical engine is used")
    for card in cards:
        metrics = card.get("test_metrics", {})
        click.echo(f"{'*' if card['live'] else ' '} {card.get('name')}  {card.get('date', '')}  "
                   + "  ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float)))


@cli.command()
@with_config
@click.option("--annotations", type=click.Path(file_okay=False),
              help="Folder of images with <stem>_mask.png beside them (default: [annotations] dir).")
@click.option("--synthetic", type=int, help="Synthetic images to mix in ([train] synthetic).")
@click.option("--max-epochs", type=int, help="Most epochs ([train] max_epochs).")
@click.option("--steps", type=int, help="Batches per epoch ([train] steps).")
@click.option("--crop", type=int, help="Crop edge in pixels ([train] crop).")
@click.option("--batch", type=int, help="Crops per batch ([train] batch).")
@click.option("--lr", type=float, help="Adam's starting learning rate ([train] lr, the study's 0.01; "
                                       "[train] finetune_lr with --init).")
@click.option("--time-budget", type=float, help="Minutes; stop after the epoch that reaches it ([train] time_budget).")
@click.option("--d50-check-images", type=int, help="Synthetic images for the card's d50 error ([train] d50_check_images).")
@click.option("--name", help="Model name (default: unet-<date>-<time>).")
@click.option("--init", help='Start from these weights: "live", a model name or a .safetensors file '
                             "(default: random weights).")
@click.option("--no-final-fit", is_flag=True, help="Skip the final fit on train + validation after early stopping.")
@click.option("--input", "input_mode", type=click.Choice(["plain", "flattened"]),
              help="How the new model sees a frame ([train] input).")
def train(config_path: str | None, annotations: str | None, synthetic: int | None, max_epochs: int | None,
          steps: int | None, crop: int | None, batch: int | None, lr: float | None, time_budget: float | None,
          d50_check_images: int | None, name: str | None, init: str | None, no_final_fit: bool,
          input_mode: str | None) -> None:
    """Train a segmentation model now on the annotated images, and make it live if it
    measures better than the live one on the fixed test set."""
    from .models.promotion import train_and_promote, train_options
    from .models.schedule import TrainingRunning, training_lock
    from ..pipeline.train import data as train_data

    config = load_config(config_path)
    folder = Path(annotations) if annotations else config.annotations.dir
    pairs = train_data.find_annotations(folder)
    if not pairs:
        raise Fail(f"no annotated images (<stem>_mask.png beside <stem>.tif) in {folder}")
    annotated = [train_data.load_example(image, mask) for image, mask in pairs]
    count = synthetic if synthetic is not None else config.train.synthetic
    options = train_options(config, init=init, final_fit=not no_final_fit, max_epochs=max_epochs, steps=steps,
                            crop=crop, batch=batch, lr=lr, time_budget=time_budget,
                            d50_check_images=d50_check_images, input=input_mode)
    try:
        with training_lock(config.models.dir):
            card, live, why = train_and_promote(
                annotated, config.models.dir, options,
                train_data.synthetic_examples(count) if count else [], name, init=init)
    except TrainingRunning as error:
        raise Fail(str(error), 3) from None
    click.echo(json.dumps({"model": card["name"], "live": live, "why": why,
                           "test_metrics": card["test_metrics"], "validation": card["validation"]}))


# --------------------------------------------------------------------------- tools

@cli.command()
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--count", type=int, default=8, show_default=True, help="How many images.")
@click.option("--size", type=int, default=1024, show_default=True, help="Edge in pixels (up to 2048 and more).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same images.")
@click.option("--style", multiple=True, type=click.Choice(["band", "box", "bare", "fei", "dataline", "zeiss"]),
              help="Scale bar style (repeatable; default: all).")
@click.option("--bits", multiple=True, type=click.Choice(["8", "16"]), help="Bit depth (repeatable; default: 8 and 16).")
def synth(outdir: str, count: int, size: int, seed: int, style: tuple[str, ...], bits: tuple[str, ...]) -> None:
    """Write synthetic HAADF images with their ground truth (<stem>.tif, <stem>_mask.png,
    <stem>.json with the scale and every particle's true diameter)."""
    from ..pipeline import synth as synthetic

    paths = synthetic.synth_set(Path(outdir), count, size, seed, styles=style or synthetic.STYLES,
                                bits=tuple(int(b) for b in bits) or (8, 16))
    for path in paths:
        click.echo(path)


@cli.command()
@click.option("--outdir", type=click.Path(file_okay=False),
              help="Where to keep the session (default: a new temporary folder).")
@click.option("--images", type=int, default=6, show_default=True, help="Frames the simulated microscope writes.")
@click.option("--size", type=int, default=1024, show_default=True, help="Frame edge in pixels.")
@click.option("--models", "models_dir", type=click.Path(file_okay=False),
              help="Models folder to measure with (default: [models] dir of the embedded config).")
def demo(outdir: str | None, images: int, size: int, models_dir: str | None) -> None:
    """Play a simulated microscope session end to end through the real service."""
    from . import demo as session

    code = session.run_demo(Path(outdir) if outdir else None, images, size,
                            models_dir=Path(models_dir) if models_dir else None)
    if code:
        sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (also for tests that call it in-process)."""
    try:
        cli.main(args=argv, prog_name="psdwatch", standalone_mode=False)
        return 0
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except SystemExit as done:
        return int(done.code or 0)
    except (ConfigError, ValueError, OSError) as error:
        click.echo(f"psdwatch: {' '.join(str(error).split())}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the contract: one line, never a traceback
        click.echo(f"psdwatch: internal error: {type(error).__name__}: {' '.join(str(error).split())}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
