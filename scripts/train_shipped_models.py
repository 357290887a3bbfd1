"""Rebuild the classifiers that ship inside the emodetect wheel.

Usage (from the repository root, with the FER2013 folders at ../shared/data/fer2013):

    python scripts/train_shipped_models.py happy-sad
    python scripts/train_shipped_models.py happy-sad --data ../shared/data/fer2013 --epochs 40 --seed 0

The model is trained on the FER2013 training folders of its classes; 10% of those files, split once with
the seed, drive early stopping. The FER2013 validation folder is used only for the final report, never for
training or model selection. The result replaces the file in src/emodetect/models/.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from emodetect.training.data import list_image_folder, load_arrays, split_dataset  # noqa: E402
from emodetect.training.evaluate import evaluate_arrays  # noqa: E402
from emodetect.training.train import TrainingConfig, train_classifier  # noqa: E402

MODELS = {
    "happy-sad": {
        "classes": ["happy", "sad"],
        "architecture": "mini-vgg",
        "options": {"width": 16, "dropout": 0.3},
        # FER2013 crops are about 1.04 times the side of the SSD's box on the same face (median over 300
        # FER faces run through the SSD), so crops get 2% extra context on each side.
        "crop_margin": 0.02,
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(MODELS), help="shipped model to rebuild")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013", help="FER2013 root with train/ and val/")
    parser.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and augmentation")
    parser.add_argument("--out", type=Path, default=None, help="output file (default src/emodetect/models/NAME.keras)")
    arguments = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    recipe = MODELS[arguments.model]
    out = arguments.out or ROOT / "src" / "emodetect" / "models" / f"{arguments.model}.keras"
    started = time.perf_counter()

    files = list_image_folder(arguments.data / "train", recipe["classes"])
    train_files, stop_files = split_dataset(files, (0.9, 0.1), seed=arguments.seed)
    val_files = list_image_folder(arguments.data / "val", recipe["classes"])

    from emodetect.training.architectures import build_architecture

    probe = build_architecture(recipe["architecture"], len(recipe["classes"]), **recipe["options"])
    train = load_arrays(train_files, probe.input_size, probe.color_mode)
    stop = load_arrays(stop_files, probe.input_size, probe.color_mode)
    val = load_arrays(val_files, probe.input_size, probe.color_mode)
    del probe

    config = TrainingConfig(
        epochs=arguments.epochs,
        batch_size=64,
        learning_rate=2e-3,
        seed=arguments.seed,
        augment=True,
        balance_classes=True,
        label_smoothing=0.05,
        early_stopping_patience=8,
        cosine_decay=True,
    )
    result = train_classifier(
        train, stop, architecture=recipe["architecture"], config=config, architecture_options=recipe["options"]
    )
    result.metadata.crop_margin = recipe["crop_margin"]
    result.metadata.extra["training"].update(
        {
            "command": f"python scripts/train_shipped_models.py {arguments.model} --epochs {arguments.epochs} --seed {arguments.seed}",
            "data": "FER2013 train folders " + ", ".join(recipe["classes"]),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )

    report = evaluate_arrays(result.model, result.metadata, val)
    result.metadata.extra["fer2013_val"] = {
        "balanced_accuracy": report["balanced_accuracy"],
        "accuracy": report["accuracy"],
        "faces": report["count"],
    }
    result.save(out)
    print(json.dumps(report, indent=2))
    print(f"Saved {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
