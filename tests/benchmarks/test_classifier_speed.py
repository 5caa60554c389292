"""benchmarks/classifier_speed.py runs and prints one JSON line per configuration (figures are
read by people, never asserted against a time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_prints_a_line_per_body_width_and_precision() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "classifier_speed.py"), "--arch",
         "cnn,resnet", "--width", "8", "--batch", "16", "--steps", "1", "--threads", "1",
         "--device", "cpu"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert {(x["arch"], x["width"]) for x in lines} == {("cnn", 8), ("resnet", 8)}
    for line in lines:
        assert line["train_img_s"] > 0 and line["epoch_s"] > 0
        assert line["infer_img_s"] > 0 and line["infer_img_s_tta"] > 0
    flops = {x["arch"]: x["forward_mflop"] for x in lines}
    assert flops["resnet"] > 5 * flops["cnn"] > 0  # counted, not made up: the bodies differ
