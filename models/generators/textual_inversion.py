"""Textual Inversion (Gal et al. 2023) on a pretrained Stable-Diffusion-style latent diffusion pipeline.

One new token ``<genmix-class-k>`` per class is added to the CLIP tokenizer; its embedding (initialised from
``init_word``) is the only thing that learns. Everything else — UNet, VAE, the rest of the text encoder —
stays frozen and bit-identical: the new rows live in a separate parameter that a forward hook splices into
the embedding output while training, and are written into the embedding matrix only afterwards.

The loss is the standard latent noise-prediction loss (ε, or v for v-prediction checkpoints) on that
class's training images, resized to the pipeline's resolution, gray repeated to RGB, with prompts from
medical templates ("a medical scan showing {}" ...; configurable) rather than the natural-photo ones, which
make medical images look "over-fancy". Samples come back at the data's channels and size.

Embeddings are saved as ``embeddings/class_{k}/learned_embeds.safetensors`` — diffusers' own format, so
``pipe.load_textual_inversion(dir / "embeddings/class_0")`` works in plain diffusers. diffusers silently
ignores a token it does not know, so :meth:`TextualInversion.sample` checks every class token (present, one
id, the learnt vector in place) first and raises :class:`EmbeddingError` rather than fall back to a plain prompt.

The pipeline comes from ``pretrained_dir``: a local folder written by ``save_pretrained`` (or a hub id, only
resolved from the local Hugging Face cache unless ``allow_download`` is set). Nothing is downloaded by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

from models import checkpoint as ckpt
from models.datasets import Split
from models.generators.base import Generator
from models.hooks import StopFn, TrainHooks, stop_if_asked
from models.profiles import TEXTUAL_INVERSION_SAMPLERS
from models.runtime import autocast, place_model, torch_rng
from models.tensors import to_uint8

META_FILE = "genmix.json"
EMBEDDINGS_DIR = "embeddings"
EMBEDDING_FILE = "learned_embeds.safetensors"
TOKEN_FORMAT = "<genmix-class-{k}>"


class EmbeddingError(ValueError):
    """A class token's embedding is missing, duplicated or not the learnt one: never sample without it."""


def _class_dir(k: int) -> str:
    return f"{EMBEDDINGS_DIR}/class_{k}"


class TextualInversion(Generator):
    """One learnt token per class in a frozen latent diffusion pipeline; see the module docstring."""

    name: ClassVar[str] = "textual_inversion"
    resume_keys: ClassVar[tuple[str, ...]] = ("num_classes", "channels", "image_size", "tokens", "resolution")
    _restoring: ClassVar[bool] = False  # set by load(): the tokens come from saved embeddings, not init words
    # profiles and total_key: models.profiles.GENERATOR_PROFILES["textual_inversion"] and STEP_KEYS["textual_inversion"]

    def _build(self) -> None:
        self._setup()
        if not self._restoring:
            self._add_tokens()

    # ------------------------------------------------------------------------------------------ set-up

    def _source(self) -> str:
        source = self.config["pretrained_dir"]  # callers fill it from the service's ti_pretrained setting
        if not source:
            raise ValueError(
                "textual_inversion needs a Stable Diffusion pipeline: set the 'pretrained_dir' setting (a local "
                "folder or hub id; a service's default is GENMIX_TI_PRETRAINED); see docs/GENERATORS.md"
            )
        return str(source)

    def _setup(self) -> None:
        cfg = self.config
        if cfg["sampler"] not in TEXTUAL_INVERSION_SAMPLERS:
            choices = ", ".join(TEXTUAL_INVERSION_SAMPLERS)
            raise ValueError(f"textual_inversion sampler must be one of {choices}, got {cfg['sampler']!r}")
        if not cfg["templates"] or any("{}" not in t for t in cfg["templates"]):
            raise ValueError("every prompt template needs one '{}' for the class token")
        init_words = cfg["init_words"]
        if init_words is not None and len(init_words) != self.num_classes:
            raise ValueError(f"init_words needs {self.num_classes} words, got {len(init_words)}")
        source = self._source()
        local = Path(source).is_dir()
        if not local and not cfg["allow_download"] and Path(source).anchor:
            raise FileNotFoundError(f"Stable Diffusion folder {source} does not exist")
        try:
            self.pipe = StableDiffusionPipeline.from_pretrained(
                source,
                safety_checker=None,  # its NSFW filter blacks out images; not meaningful for medical scans
                feature_extractor=None,
                requires_safety_checker=False,
                local_files_only=local or not cfg["allow_download"],
            )
        except OSError as exc:  # diffusers' own advice (``local_files_only=False``) is not a GenMix setting
            if local or cfg["allow_download"]:
                raise
            raise FileNotFoundError(
                f"Stable Diffusion pipeline {source!r} is neither a local folder nor in this machine's Hugging Face "
                "cache, and downloads are off: download it once into the cache (`huggingface-cli download "
                f"{source}`) or save it to a folder and point GENMIX_TI_PRETRAINED (the service's default) or the "
                "job's textual_inversion pretrained_dir at it; a worker downloads it itself only where the "
                "server allows downloads (GENMIX_ALLOW_DOWNLOADS)"
            ) from exc
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.to(self.device)
        for module in (self.pipe.unet, self.pipe.vae):
            place_model(module, self.device)  # channels_last, cudnn.benchmark, TF32 on CUDA
        for module in (self.pipe.unet, self.pipe.vae, self.pipe.text_encoder):
            module.requires_grad_(False).eval()
        self.noise_scheduler = DDPMScheduler.from_config(self.pipe.scheduler.config)
        self.scheduler_config = dict(self.pipe.scheduler.config)  # the pipeline's own, before sampling swaps it
        self.tokens = [TOKEN_FORMAT.format(k=k) for k in range(self.num_classes)]
        native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        self.resolution = int(cfg["resolution"] or native)
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        self.learned = torch.nn.Parameter(torch.zeros(0))
        self.optimizer: torch.optim.Optimizer | None = None
        self.rng = self._train_rng()  # batches, templates, latents, noise, timesteps, drawn on the device

    def _embedding(self) -> torch.nn.Embedding:
        return self.pipe.text_encoder.get_input_embeddings()

    def _token_ids(self) -> list[int]:
        tokenizer = self.pipe.tokenizer
        ids = []
        for token in self.tokens:
            if token not in tokenizer.get_vocab():
                raise EmbeddingError(f"class token {token} is not in the tokenizer: its embedding was never loaded")
            ids.append(int(tokenizer.convert_tokens_to_ids(token)))
        return ids

    def _add_tokens(self) -> None:
        """New tokens, initialised from the init word(s); their vectors become the trainable ``learned``."""
        tokenizer = self.pipe.tokenizer
        clash = [t for t in self.tokens if t in tokenizer.get_vocab()]
        if clash:
            raise EmbeddingError(f"tokens {clash} already exist in this tokenizer")
        if tokenizer.add_tokens(self.tokens) != len(self.tokens):
            raise EmbeddingError(f"could not add all of {self.tokens} to the tokenizer")
        # The new rows are overwritten just below: skip transformers' costly mean/covariance initialisation.
        self.pipe.text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        weight = self._embedding().weight
        words = self.config["init_words"] or [self.config["init_word"]] * self.num_classes
        init = []
        for word in words:
            ids = tokenizer(word, add_special_tokens=False).input_ids
            if not ids:
                raise ValueError(f"init word {word!r} tokenises to nothing")
            init.append(weight[ids].mean(dim=0))
        with torch.no_grad():
            self.learned = torch.nn.Parameter(torch.stack(init).float())
            self._write_rows()

    def _write_rows(self) -> None:
        """Put the learnt vectors into the text encoder's embedding matrix (and nothing else)."""
        weight = self._embedding().weight
        with torch.no_grad():
            weight[self._token_ids()] = self.learned.detach().to(weight.dtype)

    def check_embeddings(self) -> None:
        """Raise :class:`EmbeddingError` unless every class token is one id carrying its learnt vector."""
        tokenizer = self.pipe.tokenizer
        ids = self._token_ids()
        if len(set(ids)) != len(ids):
            raise EmbeddingError(f"class tokens share ids: {dict(zip(self.tokens, ids, strict=True))}")
        weight = self._embedding().weight
        if self.learned.shape != (self.num_classes, weight.shape[1]):
            raise EmbeddingError(
                f"learnt embeddings are {tuple(self.learned.shape)}, the text encoder needs "
                f"({self.num_classes}, {weight.shape[1]})"
            )
        for k, (token, token_id) in enumerate(zip(self.tokens, ids, strict=True)):
            for template in self.config["templates"]:  # the pipeline truncates long prompts: the token must survive
                prompt_ids = tokenizer(template.format(token), truncation=True, max_length=tokenizer.model_max_length)
                if prompt_ids.input_ids.count(token_id) != 1:
                    raise EmbeddingError(
                        f"prompt {template.format(token)!r} does not keep {token} exactly once within "
                        f"{tokenizer.model_max_length} tokens"
                    )
            if not torch.equal(weight[token_id].float().cpu(), self.learned[k].detach().float().cpu()):
                raise EmbeddingError(f"the text encoder's embedding of {token} is not the learnt one")

    # ---------------------------------------------------------------------------------------- training

    def _to_pixels(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> (N, 3, R, R) in [-1, 1] at the pipeline's resolution."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True)
        return x * 2.0 - 1.0

    @torch.no_grad()
    def _encode(self, images: np.ndarray, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's latent distribution (mean, std) of every training image, computed once."""
        means, stds = [], []
        for start in range(0, len(images), batch):
            with autocast(self.device, self.config["mixed_precision"]):
                dist = self.pipe.vae.encode(self._to_pixels(images[start : start + batch])).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        return torch.cat(means), torch.cat(stds)

    def _prompt_ids(self) -> torch.Tensor:
        """Token ids of every (template, class) prompt: (T, K, L)."""
        tokenizer = self.pipe.tokenizer
        table = [
            tokenizer(
                [template.format(token) for token in self.tokens],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            for template in self.config["templates"]
        ]
        return torch.stack(table).to(self.device)

    def _splice_hook(self, ids: list[int]):  # noqa: ANN202 - a torch hook handle
        """While training, replace the embedding output at class-token positions by the trainable vectors."""
        id_table = torch.tensor(ids, device=self.device)

        def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            # No host-side "any match?" branch (a device sync per step): rows without a class token keep
            # `output` through the select (training prompts always hold one).
            match = inputs[0][..., None] == id_table  # (B, L, K)
            which = match.float().argmax(dim=-1)
            return torch.where(match.any(dim=-1, keepdim=True), self.learned[which].to(output.dtype), output)

        return self._embedding().register_forward_hook(hook)

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([self.learned], lr=self.config["lr"], weight_decay=0.0)

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        assert self.optimizer is not None
        tensors = {"learned": self.learned.detach(), "rng/train": self.rng.get_state()}
        opt_tensors, opt_meta = ckpt.optimizer_state(self.optimizer, "opt")
        tensors.update(opt_tensors)
        return tensors, {**self.describe(), "opt": opt_meta}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if tensors["learned"].shape != self.learned.shape:
            raise EmbeddingError(f"checkpoint embeddings {tuple(tensors['learned'].shape)} do not fit")
        with torch.no_grad():
            self.learned.copy_(tensors["learned"])
        assert self.optimizer is not None
        ckpt.load_optimizer_state(self.optimizer, "opt", tensors, meta["opt"])
        for group in self.optimizer.param_groups:  # the current config decides the learning rate
            group["lr"] = self.config["lr"]
        self._restore_rng(tensors["rng/train"], meta)

    def _draw(self, weights: torch.Tensor, batch: int, latent_shape: tuple[int, ...], gen: torch.Generator) -> dict:
        """One batch's random choices, drawn where ``gen`` lives (the training device: no host-drawn noise copied
        in); checkpointed with the generator, so resuming reproduces them exactly."""
        device = gen.device
        steps = self.noise_scheduler.config.num_train_timesteps
        return {
            "index": torch.multinomial(weights.to(device), batch, replacement=True, generator=gen),
            "template": torch.randint(0, len(self.config["templates"]), (batch,), generator=gen, device=device),
            "eps_latent": torch.randn((batch, *latent_shape), generator=gen, device=device),
            "noise": torch.randn((batch, *latent_shape), generator=gen, device=device),
            "timesteps": torch.randint(0, steps, (batch,), generator=gen, device=device),
        }

    def _loss(self, data: dict[str, torch.Tensor], draw: dict[str, torch.Tensor]) -> torch.Tensor:
        """Latent noise-prediction loss (ε, or v for v-prediction pipelines) of one drawn batch."""
        draw = {key: value.to(self.device) for key, value in draw.items()}
        index, timesteps, noise = draw["index"], draw["timesteps"], draw["noise"]
        latents = (data["mean"][index] + data["std"][index] * draw["eps_latent"]) * data["scaling"]
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        ids = data["prompts"][draw["template"], data["labels"][index]]
        with autocast(self.device, self.config["mixed_precision"]):
            states = self.pipe.text_encoder(ids)[0]
            pred = self.pipe.unet(noisy, timesteps, states).sample
        if self.noise_scheduler.config.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return F.mse_loss(pred.float(), target.float())

    def _prepare(self, train: Split) -> dict[str, Any]:
        labels = train.labels.astype(np.int64)
        counts = np.bincount(labels, minlength=self.num_classes)
        balanced = 1.0 / counts[labels] if self.config["balanced"] else np.ones(len(labels))
        mean, std = self._encode(train.images)
        return {
            "weights": torch.from_numpy(balanced).to(device=self.device, dtype=torch.float64),
            "labels": torch.from_numpy(labels).to(self.device),
            "mean": mean,
            "std": std,
            "prompts": self._prompt_ids(),
            "scaling": float(self.pipe.vae.config.scaling_factor),
        }

    @torch.no_grad()
    def fixed_batch_loss(self, train: Split, size: int = 32, seed: int = 0) -> float:
        """The loss on one fixed, seeded batch: a noise-free view of progress (the training loss is very noisy)."""
        self._check_data(train)
        self.check_embeddings()
        data = self._prepare(train)
        draw = self._draw(data["weights"], size, tuple(data["mean"].shape[1:]), torch_rng(seed, self.device))
        return float(self._loss(data, draw))

    def _train_step(self, data: dict[str, Any], latent_shape: tuple[int, ...]) -> torch.Tensor:
        assert self.optimizer is not None
        loss = self._loss(data, self._draw(data["weights"], self.config["batch_size"], latent_shape, self.rng))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Learn the class tokens for ``config["steps"]`` steps in total, resuming from a checkpoint if present."""
        hooks = hooks or TrainHooks()
        self._check_data(train)
        self.check_embeddings()
        self.learned.requires_grad_(True)
        self.optimizer = self._new_optimizer()
        store = self._open_store(hooks)
        data = self._prepare(train)
        latent_shape = tuple(data["mean"].shape[1:])
        handle = self._splice_hook(self._token_ids())
        try:
            return self._train_loop(hooks, store, lambda: self._train_step(data, latent_shape))
        finally:
            handle.remove()
            self.learned.requires_grad_(False)
            self._write_rows()

    # ---------------------------------------------------------------------------------------- sampling

    def _sampling_scheduler(self) -> DPMSolverMultistepScheduler | DDIMScheduler:
        config = self.scheduler_config
        if self.config["sampler"] == "ddim":
            return DDIMScheduler.from_config(config)
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")

    @torch.no_grad()
    def _from_pipeline(self, x: torch.Tensor) -> torch.Tensor:
        """Pipeline output (N, 3, R, R) in [0, 1] -> (N, C, H, W) at the data's channels and size."""
        x = x.float().to(self.device)
        if tuple(x.shape[-2:]) != tuple(self.image_size):
            x = F.interpolate(x, size=tuple(self.image_size), mode="bilinear", antialias=True)
        if self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return x.clamp(0, 1)

    def sample(self, per_class: list[int], seed: int = 0, should_stop: StopFn | None = None) -> Split:
        """``per_class[k]`` images of class ``k`` (prompts cycle through the templates); same seed, same images."""
        self.check_embeddings()
        labels = self.sample_labels(per_class)
        templates = self.config["templates"]
        prompts = [templates[i % len(templates)].format(self.tokens[k]) for i, k in enumerate(labels)]
        self.pipe.scheduler = self._sampling_scheduler()
        rng = torch_rng(seed)
        chunks = []
        batch = max(1, int(self.config["sample_batch_size"]))
        for start in range(0, len(labels), batch):
            stop_if_asked(should_stop)
            chunk = prompts[start : start + batch]
            negative = [self.config["negative_prompt"]] * len(chunk) if self.config["negative_prompt"] else None
            with autocast(self.device, self.config["mixed_precision"]):
                out = self.pipe(
                    prompt=chunk,
                    negative_prompt=negative,
                    height=self.resolution,
                    width=self.resolution,
                    num_inference_steps=int(self.config["sample_steps"]),
                    guidance_scale=float(self.config["guidance_scale"]),
                    generator=rng,
                    output_type="pt",
                ).images
            chunks.append(to_uint8(self._from_pipeline(out)))
        return self.assemble(chunks, labels)

    # ------------------------------------------------------------------------------------------- files

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "tokens": self.tokens,
            "resolution": self.resolution,
            "embedding_dim": int(self._embedding().weight.shape[1]),
        }

    def save(self, directory: Path) -> None:
        """One ``learned_embeds.safetensors`` per class (diffusers' format) + ``genmix.json`` last (commit mark).

        The pipeline itself is not copied (gigabytes): ``genmix.json`` records where it came from.
        """
        directory = Path(directory)
        self.check_embeddings()
        for k, token in enumerate(self.tokens):
            ckpt.write_tensors(directory / _class_dir(k) / EMBEDDING_FILE, {token: self.learned[k].detach()[None]})
        ckpt.write_json(directory / META_FILE, {**self.describe(), "step": self.step})

    @classmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> TextualInversion:
        """Rebuild from ``pretrained_dir`` plus the saved embeddings, through diffusers' ``load_textual_inversion``."""
        directory = Path(directory)
        meta = cls.read_description(directory / META_FILE)
        model = cls.__new__(cls)
        model._restoring = True
        Generator.__init__(
            model,
            meta["num_classes"],
            meta["channels"],
            tuple(meta["image_size"]),
            config=meta["config"],
            profile=meta["profile"],
            device=device,
            seed=meta["seed"],
        )
        if meta["tokens"] != model.tokens:
            raise EmbeddingError(f"{directory} holds tokens {meta['tokens']}, expected {model.tokens}")
        folders = [directory / _class_dir(k) for k in range(model.num_classes)]
        missing = [str(f / EMBEDDING_FILE) for f in folders if not (f / EMBEDDING_FILE).is_file()]
        if missing:
            raise EmbeddingError(f"missing learnt embeddings: {missing}")
        for folder, token in zip(folders, model.tokens, strict=True):
            saved = ckpt.read_tensors(folder / EMBEDDING_FILE)
            if list(saved) != [token]:
                raise EmbeddingError(f"{folder / EMBEDDING_FILE} holds {list(saved)}, expected [{token!r}]")
        try:
            model.pipe.load_textual_inversion([str(f) for f in folders], weight_name=EMBEDDING_FILE)
        except ValueError as err:  # diffusers' shape / duplicate checks
            raise EmbeddingError(f"cannot load the embeddings in {directory}: {err}") from err
        weight = model._embedding().weight
        model.learned = torch.nn.Parameter(weight[model._token_ids()].detach().float().clone(), requires_grad=False)
        model.step = int(meta.get("step", 0))
        model.check_embeddings()
        return model
