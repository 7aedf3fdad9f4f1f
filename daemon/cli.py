"""The `psdwatch` command: a thin layer over the pipeline and the daemon.

Every failure a user can cause (a bad file, a bad config) ends in one line on
stderr and a non-zero exit, never a traceback: the command is also driven by
scripts that read its exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from . import demo
from .config import ConfigError, load_config, settings_from_config
from .live_model import load_live_model
from .samples import sample_of
from ..pipeline import models, synth, train
from ..pipeline.analyse import Analysis, analyse_image, analysis_record
from ..pipeline.io import UnreadableImage


def print_summary(record: dict) -> None:
    psd = record["psd"]
    unit = psd.get("unit", "nm")
    scale = (f"{record['nm_per_px']:.5g} nm/px from {record['scale_source']} ({record['scale_text']})"
             if record["nm_per_px"] else "unknown")
    print(f"image   {record['image']}")
    print(f"sample  {record['sample']}")
    print(f"scale   {scale}")
    print(f"model   {record['model']} ({record['engine']}, segmented at scale {record['segment_scale']:g})")
    if psd["n"]:
        ci = psd.get("d50_ci95") or [psd["d50"], psd["d50"]]
        print(f"PSD     n={psd['n']}  d10={psd['d10']:.3g}  d50={psd['d50']:.3g} "
              f"[{ci[0]:.3g}, {ci[1]:.3g}]  d90={psd['d90']:.3g}  mean={psd['mean']:.3g} "
              f"std={psd['std']:.3g} {unit}")
    else:
        print("PSD     no particles measured")
    print(f"flags   {', '.join(record['flags']) or 'none'}")


def write_mask(path: Path, analysis: Analysis) -> None:
    if not cv2.imwrite(str(path), analysis.mask.astype(np.uint8) * 255):
        raise OSError(f"cannot write mask to {path}")


def cmd_process(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = settings_from_config(config)
    model = load_live_model(config, settings.engine)
    analysis = analyse_image(args.image, settings, model)
    record = analysis_record(analysis, sample_of(Path(args.image), config["watch"]["root"],
                                                 config["watch"].get("sample_pattern")))
    if args.mask_out:
        write_mask(Path(args.mask_out), analysis)
    if args.json:
        print(json.dumps(record))
    else:
        print_summary(record)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    paths = synth.synth_set(Path(args.outdir), args.count, args.size, args.seed,
                            styles=tuple(args.style) if args.style else synth.STYLES,
                            bits=tuple(args.bits) if args.bits else (8, 16))
    for path in paths:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    cards = models.list_models(config["models"]["dir"])
    if not cards:
        print(f"no models in {config['models']['dir']}: the classical engine is used")
    for card in cards:
        metrics = card.get("test_metrics", {})
        print(f"{'*' if card['live'] else ' '} {card.get('name')}  {card.get('date', '')}  "
              + "  ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import service

    service.setup_logging()
    return service.run_service(args.config)


def cmd_status(args: argparse.Namespace) -> int:
    from . import store

    config = load_config(args.config)
    database = config["store"]["database"]
    live = models.live_model_name(config["models"]["dir"])
    engine = config.get("segment", {}).get("engine", "auto")
    model = "classical" if engine == "classical" or live is None else live
    if not Path(database).is_file():
        counts = {"queued": 0, "processing": 0, "done": 0, "quarantined": 0, "duplicate": 0,
                  "skipped": 0, "samples": 0, "model": model, "unsure": 0, "mixed_model_samples": 0}
    else:
        counts = store.counts(store.open_store(database), model)
    if args.json:
        print(json.dumps(counts))
        return 0
    print(f"store    {database}")
    print(f"model    {counts['model']}")
    print(f"images   {counts['done']} done, {counts['quarantined']} quarantined, "
          f"{counts['duplicate']} duplicate, {counts['skipped']} skipped (not HAADF); "
          f"{counts['queued']} queued, {counts['processing']} processing")
    print(f"unsure   {counts['unsure']} done images flagged segmentation_unsure")
    print(f"samples  {counts['samples']} ({counts['mixed_model_samples']} measured with more than one model)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import report, store

    config = load_config(args.config)
    settings = settings_from_config(config)
    index = report.write_reports(store.open_store(config["store"]["database"]), config["reports"]["dir"],
                                 min_particles=settings.min_particles, bootstrap=settings.bootstrap)
    print(index)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .schedule import TrainingRunning, training_lock

    config = load_config(args.config)
    defaults = config.get("train", {})

    def option(name: str, fallback):
        value = getattr(args, name)
        return value if value is not None else type(fallback)(defaults.get(name, fallback))

    folder = Path(args.annotations) if args.annotations else config["annotations"]["dir"]
    pairs = train.find_annotations(folder)
    if not pairs:
        raise ConfigError(f"no annotated images (<stem>_mask.png beside <stem>.tif) in {folder}")
    annotated = [train.load_example(image, mask) for image, mask in pairs]
    count = option("synthetic", 0)
    synthetic = train.synthetic_examples(count) if count else []
    budget = option("time_budget", 0.0)
    options = train.TrainOptions(max_epochs=option("max_epochs", 200), steps_per_epoch=option("steps", 40),
                                 crop=option("crop", 256), batch=option("batch", 4),
                                 lr=args.lr or float(defaults.get("finetune_lr" if args.init else "lr",
                                                                  0.001 if args.init else 0.01)),
                                 time_budget_s=budget * 60 if budget else None,
                                 final_fit=not args.no_final_fit,
                                 synthetic_check_images=option("d50_check_images", 4),
                                 precision=config.get("segment", {}).get("precision", "auto"))
    try:
        with training_lock(config["models"]["dir"]):
            card, live, why = train.run_training(annotated, config["models"]["dir"], options, synthetic,
                                                 args.name, init=args.init)
    except TrainingRunning as error:
        print(f"psdwatch: {error}", file=sys.stderr)
        return 3
    print(json.dumps({"model": card["name"], "live": live, "why": why,
                      "test_metrics": card["test_metrics"], "validation": card["validation"]}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.run_demo(Path(args.outdir) if args.outdir else None, args.images, args.size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psdwatch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="measure the particles of one image file")
    p.add_argument("image")
    p.add_argument("--config", help="config file (default: the embedded config.toml)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--mask-out", help="write the final binary mask as a 0/255 PNG")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("run", help="the service: watch the share, measure, store, report")
    p.add_argument("--config")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="what is queued, done, failed, and which model is live")
    p.add_argument("--config")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="rebuild every sample report and the index")
    p.add_argument("--config")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("synth", help="write synthetic HAADF images with ground truth")
    p.add_argument("outdir")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--size", type=int, default=1024, help="edge in pixels (up to 2048 and more)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", action="append", choices=synth.STYLES,
                   help="scale bar style (repeatable; default: all)")
    p.add_argument("--bits", action="append", type=int, choices=(8, 16),
                   help="bit depth (repeatable; default: 8 and 16)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("models", help="list the models and which one is live")
    p.add_argument("--config")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a model now on the annotations (and promote it if better)")
    p.add_argument("--config")
    p.add_argument("--annotations", help="folder of images with <stem>_mask.png (default: [annotations] dir)")
    p.add_argument("--synthetic", type=int, help="synthetic images to mix in ([train] synthetic)")
    p.add_argument("--max-epochs", type=int, help="[train] max_epochs, default 200")
    p.add_argument("--steps", type=int, help="batches per epoch ([train] steps, default 40)")
    p.add_argument("--crop", type=int, help="[train] crop, default 256")
    p.add_argument("--batch", type=int, help="[train] batch, default 4")
    p.add_argument("--lr", type=float, help="Adam's starting learning rate ([train] lr; the study's 0.01)")
    p.add_argument("--time-budget", type=float, help="minutes; stop after the epoch that reaches it "
                                                     "([train] time_budget)")
    p.add_argument("--d50-check-images", type=int,
                   help="synthetic images for the card's d50 error ([train] d50_check_images, default 4)")
    p.add_argument("--name", help="model name (default: unet-<date>-<time>)")
    p.add_argument("--init", help='start from these weights: "live", a model name, or a .safetensors path '
                                  "(default: random weights)")
    p.add_argument("--no-final-fit", action="store_true",
                   help="skip the final fit on train + validation after early stopping")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="a simulated microscope session end to end")
    p.add_argument("--outdir", help="where to keep the session (default: a new temporary folder)")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--size", type=int, default=1024)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UnreadableImage as error:
        print(f"psdwatch: {getattr(args, 'image', '')}: {error}", file=sys.stderr)
        return 2
    except (ConfigError, ValueError, OSError) as error:
        print(f"psdwatch: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the contract: one line, never a traceback
        print(f"psdwatch: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
