"""Textual Inversion on a tiny Stable Diffusion pipeline built here from configs (nothing is downloaded).

The pipeline goes through the real path a lab uses: ``save_pretrained`` to a folder, then
``StableDiffusionPipeline.from_pretrained(folder)`` inside the generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from generator_support import Recorder
from safetensors.torch import load_file, save_file
from support.hooks import stop_after
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from models.checkpoint import CheckpointDir
from models.datasets import ImageSet, Split
from models.generators import build_generator
from models.generators.textual_inversion import EmbeddingError, TextualInversion
from models.hooks import Cancelled, TrainHooks

TEMPLATES = ["a medical scan of {}", "an ultrasound image of {}"]
CROSS_ATTENTION_GAIN = 10.0


def _byte_chars() -> list[str]:
    """CLIP's byte-to-unicode table: the base alphabet of its byte-level BPE."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, extra = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def build_tiny_sd(directory: Path) -> Path:
    """A Stable-Diffusion-layout pipeline folder: tiny UNet, VAE, CLIP text encoder and a BPE tokenizer."""
    chars = _byte_chars()
    merges: list[tuple[str, str]] = []
    for word in ("lesion", "medical", "scan", "image"):
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1], *parts[2:]]
    vocab = [*chars, *(c + "</w>" for c in chars), *(a + b for a, b in merges), "<|startoftext|>", "<|endoftext|>"]
    raw = directory / "tokenizer_source"
    raw.mkdir(parents=True)
    (raw / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}), encoding="utf-8")
    (raw / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=24)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    with torch.no_grad():  # a random UNet barely listens to the prompt; a trained one does: amplify cross-attention
        for name, module in unet.named_modules():
            if name.endswith("attn2"):
                module.to_out[0].weight.mul_(CROSS_ATTENTION_GAIN)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    n = len(tokenizer)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=n,
            bos_token_id=n - 2,
            eos_token_id=n - 1,
            pad_token_id=n - 1,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            max_position_embeddings=24,
            projection_dim=16,
        )
    )
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
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
    out = directory / "tiny-sd"
    pipe.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def train(breast: ImageSet) -> Split:
    """24 BreastMNIST training images per class (28x28 gray)."""
    labels = breast.train.labels
    index = np.concatenate([np.flatnonzero(labels == k)[:24] for k in (0, 1)])
    return breast.train.take(index)


def tiny(sd_dir: Path, **overrides) -> dict:
    return {"pretrained_dir": str(sd_dir), "templates": TEMPLATES, **overrides}


def test_profiles_share_keys_and_need_a_pipeline(tmp_path: Path) -> None:
    keys = {name: set(p) for name, p in TextualInversion.profiles.items()}
    assert keys["paper"] == keys["quick"] == keys["tiny"]
    assert all("{}" in t for t in TextualInversion.profiles["paper"]["templates"])
    assert not any("photo" in t for t in TextualInversion.profiles["paper"]["templates"])  # medical, not natural
    with pytest.raises(ValueError, match="pretrained_dir"):
        TextualInversion(2, 1, (28, 28), profile="tiny")
    with pytest.raises(FileNotFoundError):
        TextualInversion(2, 1, (28, 28), config={"pretrained_dir": str(tmp_path / "absent")}, profile="tiny")


def test_training_changes_only_the_new_embeddings_and_lowers_the_loss(sd_dir: Path, train: Split) -> None:
    model = build_generator("textual_inversion", 2, 1, (28, 28), config=tiny(sd_dir, steps=48), profile="tiny")
    assert model.resolution == 16 and model.tokens == ["<genmix-class-0>", "<genmix-class-1>"]
    init = model.learned.detach().clone()
    # The training loss is dominated by the random timestep and noise; a large fixed batch (same images,
    # noise, timesteps and templates before and after) isolates what the tokens changed.
    before = model.fixed_batch_loss(train, size=256)
    progress = Recorder()
    stats = model.fit(train, TrainHooks(progress=progress))
    assert progress.steps == list(range(3, 49, 3)) and stats["steps"] == 48
    assert model.fixed_batch_loss(train, size=256) < before - 5e-4

    fresh = StableDiffusionPipeline.from_pretrained(sd_dir)
    for name in ("unet", "vae"):
        trained = getattr(model.pipe, name).state_dict()
        for key, value in getattr(fresh, name).state_dict().items():
            assert torch.equal(trained[key], value), f"{name}.{key} changed"
    trained = model.pipe.text_encoder.state_dict()
    embed_key = next(key for key in trained if key.endswith("token_embedding.weight"))
    for key, value in fresh.text_encoder.state_dict().items():
        if key == embed_key:
            assert torch.equal(trained[key][: len(value)], value), "an original token embedding changed"
            assert trained[key].shape[0] == len(value) + 2
        else:
            assert torch.equal(trained[key], value), f"text_encoder.{key} changed"
    new_rows = trained[embed_key][-2:]
    assert torch.equal(new_rows, model.learned)
    assert (new_rows - init).abs().amax(dim=1).min() > 1e-3  # each class token learnt something


def test_sampling_gives_data_shaped_images_of_each_class(sd_dir: Path, train: Split) -> None:
    model = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=3), profile="tiny")
    model.fit(train)
    out = model.sample([2, 3], seed=0)
    assert out.images.shape == (5, 28, 28, 1) and out.images.dtype == np.uint8
    assert out.labels.tolist() == [0, 0, 1, 1, 1]
    pixels = out.images.astype(np.float64)
    assert pixels.std(axis=0).mean() > 0.5 and pixels.reshape(5, -1).std(axis=1).min() > 0.5
    np.testing.assert_array_equal(model.sample([2, 3], seed=0).images, out.images)
    model.config["sampler"] = "ddim"
    assert model.sample([1, 1], seed=0).images.shape == (2, 28, 28, 1)

    rgb = TextualInversion(2, 3, (20, 20), config=tiny(sd_dir, steps=2), profile="tiny")
    rgb_train = Split(np.repeat(train.images[:8, :20, :20], 3, axis=-1), train.labels[:8])
    rgb.fit(rgb_train)
    assert rgb.sample([1, 1], seed=0).images.shape == (2, 20, 20, 3)


def test_saves_diffusers_format_and_loads_through_load_textual_inversion(
    sd_dir: Path, train: Split, tmp_path: Path
) -> None:
    model = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=3), profile="tiny")
    model.fit(train)
    model.save(tmp_path / "ti")
    for k in range(2):
        saved = load_file(str(tmp_path / "ti" / "embeddings" / f"class_{k}" / "learned_embeds.safetensors"))
        assert list(saved) == [f"<genmix-class-{k}>"]
        assert torch.equal(saved[f"<genmix-class-{k}>"], model.learned[k][None])

    # A lab's own code: plain diffusers, no GenMix.
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir)
    pipe.load_textual_inversion(str(tmp_path / "ti" / "embeddings" / "class_1"))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<genmix-class-1>")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], model.learned[1])

    loaded = TextualInversion.load(tmp_path / "ti")
    assert torch.equal(loaded.learned, model.learned) and loaded.step == 3
    np.testing.assert_array_equal(loaded.sample([1, 2], seed=4).images, model.sample([1, 2], seed=4).images)


def test_missing_or_mismatched_embeddings_raise_instead_of_falling_back(
    sd_dir: Path, train: Split, tmp_path: Path
) -> None:
    model = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=2), profile="tiny")
    model.fit(train)
    model.save(tmp_path / "ti")
    class1 = tmp_path / "ti" / "embeddings" / "class_1" / "learned_embeds.safetensors"
    original = class1.read_bytes()

    class1.unlink()
    with pytest.raises(EmbeddingError, match="missing"):
        TextualInversion.load(tmp_path / "ti")
    save_file({"<genmix-class-1>": torch.zeros(1, 8)}, str(class1))  # wrong width for this text encoder
    with pytest.raises(EmbeddingError):
        TextualInversion.load(tmp_path / "ti")
    save_file({"<other-token>": torch.zeros(1, 16)}, str(class1))
    with pytest.raises(EmbeddingError, match="expected"):
        TextualInversion.load(tmp_path / "ti")
    class1.write_bytes(original)
    TextualInversion.load(tmp_path / "ti")

    # The pipeline swapped for one without the tokens: diffusers would silently drop them; we refuse.
    model.pipe.tokenizer = CLIPTokenizer.from_pretrained(sd_dir / "tokenizer")
    with pytest.raises(EmbeddingError, match="not in the tokenizer"):
        model.sample([1, 1])
    again = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=2), profile="tiny")
    with torch.no_grad():
        again.pipe.text_encoder.get_input_embeddings().weight[again._token_ids()[0]] += 1.0
    with pytest.raises(EmbeddingError, match="not the learnt one"):
        again.sample([1, 1])
    long_template = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, templates=["x" * 40 + " {}"]), profile="tiny")
    with pytest.raises(EmbeddingError, match="exactly once"):
        long_template.sample([1, 1])  # the pipeline would truncate the class token away


def test_resume_matches_an_unbroken_run_and_cancel_stops(sd_dir: Path, train: Split, tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "ckpt"
    first = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=4, checkpoint_every=2), profile="tiny", seed=3)
    first.fit(train, TrainHooks(checkpoint_dir=ckpt_dir))
    assert CheckpointDir(ckpt_dir).steps() == [2, 4]
    resumed = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=8, checkpoint_every=2), profile="tiny", seed=3)
    assert resumed.fit(train, TrainHooks(checkpoint_dir=ckpt_dir))["trained_steps"] == 4
    unbroken = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=8), profile="tiny", seed=3)
    unbroken.fit(train)
    assert torch.equal(resumed.learned, unbroken.learned)

    progress = Recorder()
    model = TextualInversion(2, 1, (28, 28), config=tiny(sd_dir, steps=20, log_every=1), profile="tiny")
    with pytest.raises(Cancelled):
        model.fit(train, TrainHooks(progress=progress, should_stop=stop_after(3)))
    assert progress.steps == [1, 2, 3] and model.step == 3
    model.check_embeddings()  # a cancelled run still leaves the learnt rows in place
