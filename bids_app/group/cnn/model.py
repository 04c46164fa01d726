"""The 3D VGG-style network of the paper's Table 1 (section 2.7).

Layers at ``width_multiplier`` = 1 (all convolutions 3x3x3, stride 1, padding 1)::

    conv 64 | BN-ReLU-conv 64 | maxpool
    BN-ReLU-conv 128 x2       | maxpool
    BN-ReLU-conv 256 x3       | maxpool
    BN-ReLU-conv 512 x3       | maxpool
    BN-ReLU-conv 512 x3       | BN-ReLU | maxpool (kernel 2, stride 1)
    flatten | FC fc_width-ReLU-Dropout | FC fc_width-ReLU-Dropout | FC n_classes (logits)

Documented choices where Table 1 is silent or would be harmful:

* Pre-activation: the first convolution is a plain convolution and every later one is
  preceded by BatchNorm3d + ReLU ("Batchnorm + ReLU + Conv" in Table 1).
* Table 1 lists no activation between the last convolution and the first fully connected
  layer; without one the last convolution's output would reach the FC layers un-normalised
  and linear, so a BatchNorm3d + ReLU is inserted after the last convolution (before the
  last pool).
* No ReLU on the output layer: the ReLU Table 1 lists before the softmax would clip the
  logits. The network returns logits; the softmax lives in the cross-entropy loss.
* Initialisation (He et al. 2015): Kaiming-normal weights, ``mode="fan_out"`` for the
  ReLU convolutions as torchvision's VGG does (std = sqrt(2 / (c_out * 27))), and
  ``mode="fan_in"`` for the linear layers (std = sqrt(2 / n_in)); zero biases; BatchNorm
  weight 1, bias 0.
* Channel counts are ``max(1, round(c * width_multiplier))``.

Input-size rule (grids too small for five pools): the spatial shape is followed through
the network at construction (from ``config.in_shape``). A pooling stage pools an axis only
where that axis' size is >= 2 (kernel 2 with stride 2, floor; kernel 2 with stride 1 for
the last pool); along axes of size 1 the kernel and stride are 1. Any ``in_shape`` >=
(1, 1, 1) therefore works. At 61x73x61 the maps are 3x4x3 after the four stride-2 pools and
2x3x2 after the last pool: 512 * 12 = 6144 features enter the first FC layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: Table 1's convolution widths, "M" = maxpool kernel 2 stride 2, "L" = last pool (stride 1).
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "L")


@dataclass
class VGG3DConfig:
    """Configuration of :class:`VGG3D` (see the module docstring)."""

    in_shape: tuple[int, int, int] = (61, 73, 61)
    width_multiplier: float = 1.0
    fc_width: int = 4096
    dropout: float = 0.7
    n_classes: int = 2

    def __post_init__(self) -> None:
        shape = tuple(self.in_shape)
        if len(shape) != 3 or any(int(n) != n or n < 1 for n in shape):
            raise ValueError(f"in_shape must be 3 integers >= 1, got {self.in_shape}")
        self.in_shape = tuple(int(n) for n in shape)
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier}")
        if int(self.fc_width) < 1:
            raise ValueError(f"fc_width must be >= 1, got {self.fc_width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if int(self.n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")


def channels(base: int, width_multiplier: float) -> int:
    """Scaled channel count ``max(1, round(base * width_multiplier))``."""
    return max(1, int(round(base * width_multiplier)))


def pool_plan(in_shape) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Per-axis (kernel, stride) of the five pools for ``in_shape`` (the input-size rule).

    Returns
    -------
    list of (kernel, stride)
        Four stride-2 pools then the stride-1 pool; axes of size 1 get kernel/stride 1.
    """
    size = [int(n) for n in in_shape]
    plan = []
    for item in LAYOUT:
        if item not in ("M", "L"):
            continue
        kernel = tuple(2 if n >= 2 else 1 for n in size)
        stride = tuple(k if item == "M" else 1 for k in kernel)
        size = [(n - k) // s + 1 for n, k, s in zip(size, kernel, stride, strict=True)]
        plan.append((kernel, stride))
    return plan


def feature_shape(in_shape, width_multiplier: float = 1.0) -> tuple[int, int, int, int]:
    """Shape ``(channels, x, y, z)`` of the maps entering the first FC layer.

    The flattened feature size is the product, e.g. (512, 2, 3, 2) -> 6144 at 61x73x61.
    """
    size = [int(n) for n in in_shape]
    for kernel, stride in pool_plan(in_shape):
        size = [(n - k) // s + 1 for n, k, s in zip(size, kernel, stride, strict=True)]
    return (channels(512, width_multiplier), *size)


class VGG3D(nn.Module):
    """3D VGG of Table 1; ``forward((N, 1, X, Y, Z))`` -> logits ``(N, n_classes)``."""

    def __init__(self, config: VGG3DConfig):
        super().__init__()
        self.config = config
        plan = iter(pool_plan(config.in_shape))
        layers: list[nn.Module] = []
        c_in = 1
        first = True
        for item in LAYOUT:
            if item in ("M", "L"):
                if item == "L":
                    layers += [nn.BatchNorm3d(c_in), nn.ReLU(inplace=True)]
                kernel, stride = next(plan)
                layers.append(nn.MaxPool3d(kernel_size=kernel, stride=stride))
                continue
            c_out = channels(item, config.width_multiplier)
            if not first:
                layers += [nn.BatchNorm3d(c_in), nn.ReLU(inplace=True)]
            layers.append(nn.Conv3d(c_in, c_out, kernel_size=3, stride=1, padding=1))
            c_in, first = c_out, False
        self.features = nn.Sequential(*layers)
        shape = feature_shape(config.in_shape, config.width_multiplier)
        n_features = shape[0] * shape[1] * shape[2] * shape[3]
        fc = int(config.fc_width)
        self.classifier = nn.Sequential(
            nn.Linear(n_features, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(fc, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(fc, int(config.n_classes)),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation (see the module docstring)."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch ``(N, 1, *in_shape)``."""
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != self.config.in_shape:
            raise ValueError(
                f"x must have shape (N, 1, {', '.join(map(str, self.config.in_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.classifier(torch.flatten(self.features(x), 1))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all, or only those requiring gradients)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
