"""How fast is the diffusion generator? Training steps/s against a bare diffusers loop, and sampler images/s.

* Training: ``Diffusion.fit`` (the project's trainer: class-balanced batches from uint8 images, label
  dropout for classifier-free guidance, grad clipping, EMA) against a bare loop written the way diffusers'
  example scripts are (float batch already on the device, ``randn_like`` noise, ``DDPMScheduler.add_noise``,
  the same ``UNet2DModel`` config with class labels, AdamW, grad clipping, ``EMAModel(foreach=True)``).
  The two are interleaved chunk by chunk — the bare chunk runs inside the trainer's progress callback — so
  load spikes on a shared machine hit both alike; medians over chunks are reported.
* Sampling: the trained EMA model's images/s with DPM-Solver++ and DDIM at their default step counts against
  DDPM's 1000 steps (same images, same classifier-free guidance).

    python bench/generators.py --steps 60 --chunk 10 --sample-images 16 --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel

from models.datasets import ImageSet, Split, load_npz
from models.generators import generator_class
from models.generators.diffusion import DEFAULT_SAMPLE_STEPS, Diffusion
from models.hooks import TrainHooks
from models.runtime import device_name, pick_device
from models.tensors import to_tensor

REPO_ROOT = Path(__file__).resolve().parents[1]


class BareLoop:
    """The diffusers example's inner loop for the same UNet config, with class labels; nothing else."""

    def __init__(
        self,
        config: dict,
        train: Split,
        batch: int,
        lr: float,
        num_train_timesteps: int,
        beta_schedule: str,
        ema_decay: float,
        device: torch.device,
    ) -> None:
        torch.manual_seed(0)
        self.unet = UNet2DModel.from_config(config).to(device).train()
        self.images = to_tensor(train.images, device).mul(2).sub(1)
        if (
            self.images.shape[1] != config["in_channels"]
            or tuple(self.images.shape[-2:]) != (config["sample_size"],) * 2
        ):
            raise ValueError("the bare loop needs data at the UNet's channels and size")
        self.labels = torch.from_numpy(train.labels).to(device)
        self.batch = batch
        self.scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=lr, weight_decay=0.0)
        self.ema = EMAModel(self.unet.parameters(), decay=ema_decay, use_ema_warmup=True, power=0.75, foreach=True)
        self.device = device

    def run(self, steps: int) -> None:
        for _ in range(steps):
            index = torch.randint(0, len(self.images), (self.batch,), device=self.device)
            clean, labels = self.images[index], self.labels[index]
            noise = torch.randn_like(clean)
            timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (self.batch,), device=self.device)
            noisy = self.scheduler.add_noise(clean, noise, timesteps)
            pred = self.unet(noisy, timesteps, class_labels=labels).sample
            loss = F.mse_loss(pred.float(), noise.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.ema.step(self.unet.parameters())


def bench_training(
    model: Diffusion,
    train: Split,
    steps: int,
    chunk: int,
    warmup: int,
    clock: Callable[[], float],
    sync: Callable[[], None],
) -> dict[str, float]:
    """Median seconds per step of the project's trainer and of the bare loop, interleaved chunk by chunk."""
    cfg = model.config
    bare = BareLoop(
        dict(model.unet.config),
        train,
        cfg["batch_size"],
        cfg["lr"],
        cfg["num_train_timesteps"],
        cfg["beta_schedule"],
        cfg["ema_decay"],
        model.device,
    )
    project_times: list[float] = []
    bare_times: list[float] = []
    mark = {"t": 0.0}

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        sync()
        now = clock()
        if step > warmup:
            project_times.append((now - mark["t"]) / chunk)
        start = clock()
        bare.run(chunk)
        sync()
        if step > warmup:
            bare_times.append((clock() - start) / chunk)
        mark["t"] = clock()

    model.config.update(steps=warmup + steps, log_every=chunk, checkpoint_every=None)
    mark["t"] = clock()
    model.fit(train, TrainHooks(progress=progress))
    project, reference = statistics.median(project_times), statistics.median(bare_times)
    return {
        "project_s_per_step": project,
        "bare_s_per_step": reference,
        "project_over_bare": reference / project,
        "chunks": len(project_times),
    }


def bench_sampling(
    model: Diffusion, images: int, clock: Callable[[], float], sync: Callable[[], None]
) -> dict[str, dict[str, float]]:
    """Images/s of each sampler at its default step count, on the same noise and labels."""
    noise = torch.randn(images, model.model_channels, *model.model_size, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(images) % model.num_classes
    results = {}
    for sampler, steps in DEFAULT_SAMPLE_STEPS.items():
        model.denoise(noise[:2], labels[:2], sampler=sampler, steps=2)  # warm-up
        sync()
        start = clock()
        model.denoise(noise, labels, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(1))
        sync()
        seconds = clock() - start
        results[sampler] = {"steps": steps, "seconds": seconds, "images_per_s": images / seconds}
    ddpm = results["ddpm"]["images_per_s"]
    for entry in results.values():
        entry["speedup_vs_ddpm"] = entry["images_per_s"] / ddpm
    return results


def time_profiles(
    names: list[str],
    data: ImageSet,
    profile: str,
    steps: int,
    device: torch.device,
    clock: Callable[[], float],
    sync: Callable[[], None],
) -> dict[str, dict[str, float]]:
    """Seconds per training step of each generator's ``profile`` over ``steps`` steps, and the whole profile's."""
    results = {}
    for name in names:
        cls = generator_class(name)
        length_key = "iterations" if "iterations" in cls.profiles[profile] else "steps"
        total = int(cls.profiles[profile][length_key])
        model = cls(data.num_classes, data.channels, data.image_size, profile=profile, device=device, seed=0)
        warm = max(1, steps // 10)
        model.config.update({length_key: warm, "checkpoint_every": None})
        model.fit(data.train)  # warm-up: allocations, first-call overheads
        model.config[length_key] = warm + steps
        sync()
        start = clock()
        model.fit(data.train)
        sync()
        per_step = (clock() - start) / steps
        results[name] = {"s_per_step": per_step, "profile_steps": total, "profile_hours": per_step * total / 3600}
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "datasets" / "breastmnist.npz"))
    parser.add_argument("--profile", default="quick", help="Diffusion profile whose UNet and batch are timed")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per side")
    parser.add_argument("--chunk", type=int, default=10, help="steps per interleaved chunk")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (a multiple of --chunk)")
    parser.add_argument("--sample-images", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: process CPU time (steadier on a shared machine)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--time-profiles", default="", help="also time these generators' --profile, e.g. stylegan,dcgan"
    )
    parser.add_argument("--time-steps", type=int, default=100, help="timed steps per generator for --time-profiles")
    parser.add_argument("--skip-diffusion", action="store_true", help="only run --time-profiles")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup % args.chunk:
        parser.error("--warmup must be a multiple of --chunk")
    device = pick_device(args.device)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    data = load_npz(args.data)
    name = device_name(device)
    print(
        f"device={device} ({name}), threads={torch.get_num_threads()}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, clock={args.clock}, load={os.getloadavg()[0]:.1f}"
    )
    results: dict = {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "profile": args.profile,
        "data": Path(args.data).name,
    }
    if not args.skip_diffusion:
        model = Diffusion(data.num_classes, data.channels, data.image_size, profile=args.profile, device=device, seed=0)
        training = bench_training(model, data.train, args.steps, args.chunk, args.warmup, clock, sync)
        sampling = bench_sampling(model, args.sample_images, clock, sync)
        cfg = model.config
        print(
            f"data={Path(args.data).name} {data.image_size} x{data.channels}; diffusion profile={args.profile}: "
            f"UNet {cfg['block_out_channels']} x{cfg['layers_per_block']}, batch {cfg['batch_size']}, "
            f"guidance {cfg['guidance_scale']}"
        )
        print(f"training ({training['chunks']} chunks of {args.chunk} steps, median):")
        print(f"  project trainer  {1 / training['project_s_per_step']:8.2f} steps/s")
        print(f"  bare diffusers   {1 / training['bare_s_per_step']:8.2f} steps/s")
        print(f"  project / bare   {training['project_over_bare']:8.2f}x   (target >= 0.9x)")
        print(f"sampling ({args.sample_images} images):")
        for sampler, entry in sampling.items():
            print(
                f"  {sampler:<6} {entry['steps']:>5} steps {entry['images_per_s']:9.3f} images/s "
                f"{entry['speedup_vs_ddpm']:7.1f}x DDPM"
            )
        results.update(training=training, sampling=sampling)
    names = [n for n in args.time_profiles.split(",") if n]
    if names:
        timed = time_profiles(names, data, args.profile, args.time_steps, device, clock, sync)
        print(f"profile '{args.profile}' training time ({args.time_steps} timed steps each):")
        for gen_name, entry in timed.items():
            print(
                f"  {gen_name:<10} {entry['s_per_step']:7.3f} s/step x {entry['profile_steps']} steps "
                f"= {entry['profile_hours']:.2f} h"
            )
        results["profiles"] = timed
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
