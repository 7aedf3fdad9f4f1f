"""Store a model's int8 activation ranges from its own training images.

Training (pipeline/train/loop.py) does this for every new model; this script did it
for models/starter-v2, trained before the int8 path existed, from the annotated
patches its card lists as training and validation data (the test patches are
left out: they judge the int8 graph in bench/run.py --only int8).
Usage: python bench/int8_calibration.py [--model starter-v2] [--annotations DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from psdwatch.pipeline.runtime import int8, onnx as onnx_runtime
from psdwatch.pipeline.runtime.models import load_model
from psdwatch.pipeline.train.data import find_annotations, load_example

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=(REPO / "models" / "LIVE").read_text().strip())
    parser.add_argument("--annotations", type=Path, default=REPO.parent / "shared" / "data" / "pt-alumina-haadf")
    args = parser.parse_args()
    models_dir = REPO / "models"
    card = json.loads((models_dir / f"{args.model}.json").read_text())
    seen = set(card["data"]["train"]["sha256"]) | set(card["data"]["validation"]["sha256"])
    examples = [e for e in (load_example(i, m) for i, m in find_annotations(args.annotations)) if e.sha256 in seen]
    if not examples:
        print(f"none of {args.model}'s training images found in {args.annotations}", file=sys.stderr)
        return 1
    model = load_model(models_dir, args.model)
    fp32 = onnx_runtime.fp32_graph(lambda: model.net, model.sha256, models_dir)
    out = int8.save_ranges(fp32, [e.prepared(model.input_mode) for e in examples[::2]],  # normalised as the network sees them
                           int8.ranges_path(models_dir, args.model))
    print(f"{out}: ranges from {len(examples[::2])} of {len(examples)} training images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
