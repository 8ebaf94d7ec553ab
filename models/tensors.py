"""uint8 image arrays <-> float tensors: the only place the science code converts between the two.

Kept apart from :mod:`models.datasets` so the dataset reader stays torch-free (the API imports it).
Arrays are uint8 (N, H, W, C); tensors are ``DTYPE`` (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from models.runtime import DTYPE


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).to(DTYPE).div_(255.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C), rounding and clipping."""
    array = images.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int labels (N,) -> float one-hot (N, K)."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(DTYPE)
