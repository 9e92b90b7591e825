"""Canonical-Polyadic (CP) low-rank 3-D convolution (Ashtari et al. 2021).

The dense kernel ``V`` (C_out, C_in, 3, 3, 3) is re-parameterised as a sum of ``R`` rank-1 tensors
(Ashtari et al. 2021, eq. 2-3)::

    V[o, i, h, w, d] = sum_r U1[o, r] * U2[i, r] * U3[h, r] * U4[w, r] * U5[d, r]

which is evaluated as a chain of cheap convolutions: a 1x1x1 conv C_in -> R (U2), three depthwise
1-D convs on the R channels along X, Y and Z (U3, U4, U5), and a 1x1x1 conv R -> C_out (U1, with
the bias). With zero padding the chain is exactly the dense convolution with the reconstructed
kernel (:meth:`CPConv3d.reconstruct_kernel`). The rank is ``R = ceil(alpha * C_in)``; Ashtari et al. 2021
tunes ``alpha = R / C_in`` (0.5 in the paper).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def cp_rank(in_channels: int, alpha: float) -> int:
    """Rank ``R = max(1, ceil(alpha * C_in))`` of a CP convolution (Ashtari et al. 2021: alpha = R / C_in)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return max(1, math.ceil(alpha * in_channels))


class CPConv3d(nn.Module):
    """Low-rank 3-D convolution in CP form, stride 1, 'same' zero padding.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        rank: R, the number of rank-1 terms.
        kernel_size: odd cubic kernel size k (3 in Ashtari et al. 2021).
        bias: add a learned bias per output channel.

    Shapes:
        input (B, C_in, X, Y, Z) -> output (B, C_out, X, Y, Z).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rank: int,
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.rank = rank
        self.kernel_size = kernel_size
        k, p = kernel_size, kernel_size // 2
        self.reduce = nn.Conv3d(in_channels, rank, 1, bias=False)  # U2
        # depthwise 1-D convs along X (U3), Y (U4), Z (U5)
        self.along_x = nn.Conv3d(rank, rank, (k, 1, 1), padding=(p, 0, 0), groups=rank, bias=False)
        self.along_y = nn.Conv3d(rank, rank, (1, k, 1), padding=(0, p, 0), groups=rank, bias=False)
        self.along_z = nn.Conv3d(rank, rank, (1, 1, k), padding=(0, 0, p), groups=rank, bias=False)
        self.expand = nn.Conv3d(rank, out_channels, 1, bias=bias)  # U1 (+ bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the factorised convolution; (B, C_in, X, Y, Z) -> (B, C_out, X, Y, Z)."""
        return self.expand(self.along_z(self.along_y(self.along_x(self.reduce(x)))))

    @property
    def bias(self) -> torch.Tensor | None:
        """The bias (C_out,) or None."""
        return self.expand.bias

    def factors(self) -> tuple[torch.Tensor, ...]:
        """Factor matrices U1 (C_out, R), U2 (C_in, R), U3, U4, U5 (k, R) of Ashtari et al. 2021 eq. 2."""
        r = self.rank
        u1 = self.expand.weight.reshape(self.out_channels, r)
        u2 = self.reduce.weight.reshape(r, self.in_channels).t()
        u3 = self.along_x.weight.reshape(r, self.kernel_size).t()
        u4 = self.along_y.weight.reshape(r, self.kernel_size).t()
        u5 = self.along_z.weight.reshape(r, self.kernel_size).t()
        return u1, u2, u3, u4, u5

    def reconstruct_kernel(self) -> torch.Tensor:
        """Dense kernel (C_out, C_in, k, k, k) equal to this CP conv (with ``padding=k // 2``)."""
        u1, u2, u3, u4, u5 = self.factors()
        return torch.einsum("or,ir,hr,wr,dr->oihwd", u1, u2, u3, u4, u5)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, rank={self.rank}, "
            f"kernel_size={self.kernel_size}"
        )
