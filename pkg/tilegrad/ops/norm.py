"""Normalisation ops."""

from .base import Cost, Op, Sample, op, randn


@op
class LayerNorm(Op):
    """Normalise over the last ``n_dims`` dims, then scale and shift (weight and bias may be None)."""
    cost = staticmethod(lambda x, *_: Cost(8 * x.size, 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x, weight, bias, n_dims, eps):
        y, mean, rstd = ctx.kernel("layer_norm", x, weight, bias, n_dims, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.n_dims = n_dims
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, mean, rstd = ctx.saved_tensors
        gx, gw, gb = ctx.kernel("layer_norm_backward", x, weight, mean, rstd, gy, ctx.n_dims)
        need = ctx.needs_input_grad
        return gx, (gw if need[1] else None), (gb if need[2] else None), None, None


def _layer_norm_samples(rng):
    cases = [((4, 6), 1, True), ((2, 3, 5), 2, True), ((3, 7), 1, False), ((1, 9), 1, True), ((0, 4), 1, True)]
    out = []
    for shape, n, affine in cases:
        norm_shape = shape[len(shape) - n:]
        if affine:
            inputs = (randn(rng, shape), randn(rng, norm_shape), randn(rng, norm_shape))
            call = (lambda x, w, b, n=n: LayerNorm.apply(x, w, b, n, 1e-5))
        else:
            inputs = (randn(rng, shape),)
            call = (lambda x, n=n: LayerNorm.apply(x, None, None, n, 1e-5))
        out.append(Sample(inputs, call, f"{shape},dims={n},affine={affine}"))
    return out


LayerNorm.samples = staticmethod(_layer_norm_samples)
