"""``GroupNorm`` and ``InstanceNorm1d``/``InstanceNorm2d``: per-sample normalisation over groups
of channels or single channels, over ``F.group_norm`` / ``F.instance_norm``."""
from .. import init, layers_functional as FL
from .module import Module
from .normalization import register_affine, register_running_stats


class GroupNorm(Module):
    """Normalises (N, C, ...) over each of ``num_groups`` groups of channels, with a per-channel affine."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        register_affine(self, num_channels, affine, device, dtype)

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected input of shape "
                             f"(N, {self.num_channels}, ...), got shape {tuple(x.shape)}")
        return FL.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(Module):
    _dims = 0  # the batched input's rank

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        register_affine(self, num_features, affine, device, dtype)
        register_running_stats(self, num_features, track_running_stats, device, dtype)

    def forward(self, x):
        spatial = "L" if self._dims == 3 else "H, W"
        if x.ndim not in (self._dims - 1, self._dims) or x.shape[-self._dims + 1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of shape "
                             f"(N, {self.num_features}, {spatial}) or ({self.num_features}, {spatial}), "
                             f"got shape {tuple(x.shape)}")
        batched = x.ndim == self._dims
        b = x if batched else x.unsqueeze(0)
        use_input_stats = self.training or not self.track_running_stats
        # (PyTorch keeps num_batches_tracked at 0 for instance norm: it never counts batches)
        out = FL.instance_norm(b, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                               self.momentum if self.momentum is not None else 0.1, self.eps)
        return out if batched else out.squeeze(0)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    _dims = 3


class InstanceNorm2d(_InstanceNorm):
    _dims = 4
