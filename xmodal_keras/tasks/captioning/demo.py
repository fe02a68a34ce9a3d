"""`run_demo`: the main job on the built-in data, in four printed steps (`xmodal demo`).

1. the shapes dataset (generated once, then cached);
2. a Transformer captioner trained with `DEMO_CONFIG` (about 8 minutes on 2 CPU cores);
3. the test split scored greedily and with beam 3;
4. a few test images captioned, with attention heat-maps.
"""

import dataclasses
import os
import time

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.data import read_caption_data, shapes_root
from xmodal_keras.tasks.captioning.evaluate import evaluate_captioner, format_metrics_table
from xmodal_keras.tasks.captioning.predict import caption_image_files
from xmodal_keras.tasks.captioning.settings import DEMO_CONFIG, DEMO_QUICK_CONFIG
from xmodal_keras.tasks.captioning.train import train_captioner


def run_demo(
    out_dir: str | os.PathLike, *, quick: bool = False, num_captions: int = 4
) -> RunDirectory:
    """Run the demo into `out_dir` (a run directory; rerunning resumes it).

    Args:
        out_dir: the run directory.
        quick: the same steps at toy size (`DEMO_QUICK_CONFIG`: seconds; learns nothing).
        num_captions: test images to caption at the end.

    Returns:
        The run directory.
    """
    config = DEMO_QUICK_CONFIG if quick else DEMO_CONFIG
    start = time.perf_counter()
    print(f"== 1/4 data: shapes dataset ({config.shapes_num_images} images)", flush=True)
    root = shapes_root(config)
    print(f"{root} (ready in {time.perf_counter() - start:.0f} s)\n", flush=True)

    print(f"== 2/4 train a {config.decoder} captioner", flush=True)
    print(
        "settings: "
        + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "data"),
        flush=True,
    )
    run = train_captioner(config, out_dir)

    print("\n== 3/4 evaluate on the test split (greedy and beam 3)", flush=True)
    results = {
        "greedy": evaluate_captioner(run, split="test"),
        "beam 3": evaluate_captioner(run, split="test", beam_width=3),
    }
    print(format_metrics_table(results), flush=True)

    print("\n== 4/4 caption test images, with attention heat-maps", flush=True)
    test = read_caption_data(config).query("split == 'test'")
    paths = sorted(test.image_path.unique())[:num_captions]
    for result in caption_image_files(run, paths, attention_map=run.pictures_dir / "attention.png"):
        print(f"{os.path.basename(result['path'])}: {result['caption']}")

    print(f"\ndone in {time.perf_counter() - start:.0f} s. Everything is in {run.path}:")
    print("  model.keras, vocab.txt, config.json   the trained captioner and its settings")
    print("  history.csv, checkpoints/, backup/     training log, weights, resumable state")
    print("  metrics/test_greedy/, test_beam3/      metrics.json + captions.jsonl")
    print("  pictures/                              training curves, attention_<image>.png")
    print(f"next: xmodal caption {run.path} IMAGE.png --attention-map map.png")
    return run
