"""``python -m app.tiny DIR``: a tiny text-to-image pipeline with random weights, into DIR.

For the tests and for rooms without a GPU: the same kind of pipeline as Stable Diffusion
(CLIP text encoder and tokenizer, UNet, VAE, Euler scheduler), a few hundred kilobytes
instead of gigabytes, built from small configs here and saved with ``save_pretrained``,
so the service loads it through the very ``from_pretrained(MODEL_DIR)`` path a real
checkpoint takes. Nothing is downloaded. Its pictures are coloured noise: it proves the
plumbing (volume, device, API), not the art. The same DIR twice is left as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TEXT_WIDTH = 32


def _byte_vocab(directory: Path) -> None:
    """A byte-level BPE vocabulary with no merges: every byte is a token (CLIP's format)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    characters, extra = [], 0
    for byte in range(256):
        if byte in printable:
            characters.append(chr(byte))
        else:
            characters.append(chr(256 + extra))
            extra += 1
    tokens = [*characters, *(c + "</w>" for c in characters), "<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")


def _readable(target: Path) -> None:
    """Readable by every user: safetensors writes 0600, and the service is not root."""
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def build(target: Path) -> bool:
    """Write the tiny pipeline to ``target``; False when one is there already."""
    if (target / "model_index.json").is_file():
        _readable(target)
        return False
    torch.manual_seed(0)  # the same weights every time: the same seed, the same picture
    words = target.parent / f".{target.name}-tokenizer"
    words.mkdir(parents=True, exist_ok=True)
    _byte_vocab(words)
    tokenizer = CLIPTokenizer(
        str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=77
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),  # four blocks: 8x smaller latents, as SD's VAE
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",  # as SD-Turbo: few steps from pure noise
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    partial = target.parent / f".{target.name}-partial"
    pipe.save_pretrained(str(partial), safe_serialization=True)
    _readable(partial)
    partial.rename(target)  # whole or not at all: a stopped run leaves no half model
    for leftover in words.iterdir():
        leftover.unlink()
    words.rmdir()
    return True


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m app.tiny DIR", file=sys.stderr)
        return 2
    target = Path(sys.argv[1])
    made = build(target)
    print(f"{'wrote' if made else 'kept'} a tiny pipeline in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
