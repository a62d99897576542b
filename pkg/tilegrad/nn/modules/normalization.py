"""Normalisation layers: ``BatchNorm1d``/``BatchNorm2d`` (batch statistics in training, running
statistics in eval, written here from tensor ops) and ``LayerNorm`` (over ``F.layer_norm``)."""
from ... import creation, dtypes
from ...autograd import no_grad
from .. import functional as F, init
from ..parameter import Parameter
from .module import Module


def register_affine(module, n, affine, device, dtype):
    """The per-channel ``weight`` (ones) and ``bias`` (zeros) of a normalisation layer, or None
    for both when not ``affine`` (PyTorch's names, so its state dicts load)."""
    if affine:
        module.weight = Parameter(creation.ones(n, device=device, dtype=dtype))
        module.bias = Parameter(creation.zeros(n, device=device, dtype=dtype))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def register_running_stats(module, n, track, device, dtype):
    """``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` buffers, or
    None for each when not tracking."""
    if track:
        module.register_buffer("running_mean", creation.zeros(n, device=device, dtype=dtype))
        module.register_buffer("running_var", creation.ones(n, device=device, dtype=dtype))
        module.register_buffer("num_batches_tracked", creation.tensor(0, dtype=dtypes.int64, device=device))
    else:
        module.register_buffer("running_mean", None)
        module.register_buffer("running_var", None)
        module.register_buffer("num_batches_tracked", None)


class _BatchNorm(Module):
    _expected_dims = ()
    _shape_text = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        register_affine(self, num_features, affine, device, dtype)
        register_running_stats(self, num_features, track_running_stats, device, dtype)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        if x.ndim not in self._expected_dims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of shape "
                             f"{self._shape_text.format(C=self.num_features)}, got shape {tuple(x.shape)}")
        dims = (0,) + tuple(range(2, x.ndim))        # every dim but the channels
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats:
            count = x.numel() // self.num_features
            if self.training and count <= 1:
                raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)       # normalise with the biased variance, as PyTorch
            if self.training and self.running_mean is not None:
                self._update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.reshape(shape)) / (var.reshape(shape) + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def _update_running_stats(self, mean, var, count):
        with no_grad():
            self.num_batches_tracked.add_(1)
            # momentum=None means a cumulative average over all batches seen so far.
            m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
            unbiased = var.detach() * (count / (count - 1))  # the running variance is unbiased
            self.running_mean.mul_(1 - m).add_(mean.detach() * m)
            self.running_var.mul_(1 - m).add_(unbiased * m)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L) input, per channel C."""
    _expected_dims = (2, 3)
    _shape_text = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W) input, per channel C."""
    _expected_dims = (4,)
    _shape_text = "(N, {C}, H, W)"


class LayerNorm(Module):
    """Normalises over the last ``len(normalized_shape)`` dims, with an elementwise affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(*self.normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(creation.zeros(*self.normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x):
        n = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - n:]) != self.normalized_shape or x.ndim < n:
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input with trailing dims "
                             f"{self.normalized_shape}, got shape {tuple(x.shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
