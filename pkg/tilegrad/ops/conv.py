"""2-D convolution, transposed convolution and pooling over NCHW tensors."""

from .base import Cost, Op, Sample, distinct, op, randn


def _conv_cost(x, w, *_):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    return Cost(2 * n * o * cg * kh * kw * h * wd, x.nbytes + w.nbytes + n * o * h * wd * x.itemsize)


@op
class Conv2d(Op):
    """Cross-correlation of NCHW input with OIHW weight (I = C / groups), plus an optional bias."""
    cost = staticmethod(_conv_cost)

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups, activation=None):
        ctx.geometry = stride, padding, dilation, groups
        if b is not None or activation is not None:  # with the epilogue (fused where the backend can)
            y = ctx.kernel("conv2d_bias_act", x, w, b, stride, padding, dilation, groups, activation or "none")
        else:
            y = ctx.kernel("conv2d", x, w, stride, padding, dilation, groups)
        ctx.save_for_backward(x, w, y if activation == "relu" else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, y = ctx.saved_tensors
        if y is not None:
            gy = ctx.kernel("relu_backward", y, gy)
        need = ctx.needs_input_grad
        gx = ctx.kernel("conv2d_backward_input", gy, w, x.shape, *ctx.geometry) if need[0] else None
        gw = ctx.kernel("conv2d_backward_weight", gy, x, w.shape, *ctx.geometry) if need[1] else None
        gb = gy.sum(axis=(0, 2, 3)) if need[2] else None
        return gx, gw, gb, None, None, None, None, None


def _conv_samples(rng):
    # (x shape, weight shape, bias, stride, padding, dilation, groups): ragged sizes, groups, 1x1.
    cases = [((2, 3, 7, 6), (4, 3, 3, 3), True, (1, 1), (1, 1), (1, 1), 1, None),
             ((1, 4, 9, 8), (6, 2, 3, 2), False, (2, 1), (0, 1), (1, 2), 2, None),
             ((2, 2, 5, 5), (3, 2, 1, 1), True, (1, 1), (0, 0), (1, 1), 1, None),
             ((1, 3, 8, 7), (3, 1, 3, 3), True, (2, 2), (1, 1), (1, 1), 3, None),
             ((2, 3, 6, 5), (5, 3, 3, 3), True, (1, 1), (1, 1), (1, 1), 1, "relu"),
             ((1, 2, 5, 7), (4, 2, 2, 3), False, (1, 2), (0, 1), (1, 1), 1, "relu")]
    out = []
    for xs, ws, bias, s, p, d, g, act in cases:
        if bias:
            inputs, call = (randn(rng, xs), randn(rng, ws), randn(rng, ws[:1])), \
                (lambda x, w, b, s=s, p=p, d=d, g=g, act=act: Conv2d.apply(x, w, b, s, p, d, g, act))
        else:
            inputs, call = (randn(rng, xs), randn(rng, ws)), \
                (lambda x, w, s=s, p=p, d=d, g=g, act=act: Conv2d.apply(x, w, None, s, p, d, g, act))
        out.append(Sample(inputs, call, f"x{xs},w{ws},s{s},p{p},d{d},g{g},bias={bias},act={act}"))
    return out


Conv2d.samples = staticmethod(_conv_samples)


@op
class ConvTranspose2d(Op):
    """The adjoint of Conv2d in its input (PyTorch's ConvTranspose2d); weight is (C_in, C_out / groups, kh, kw)."""
    cost = staticmethod(lambda x, w, *_: Cost(2 * x.size * w.size // w.shape[0], x.nbytes + w.nbytes))

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, output_padding, groups, dilation):
        n, _, h, wd = x.shape
        _, og, kh, kw = w.shape
        out_h = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
        out_w = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
        ctx.save_for_backward(x, w)
        ctx.geometry = stride, padding, dilation, groups
        y = ctx.kernel("conv2d_backward_input", x, w, (n, og * groups, out_h, out_w), stride, padding, dilation, groups)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = ctx.kernel("conv2d", gy, w, *ctx.geometry) if need[0] else None
        gw = ctx.kernel("conv2d_backward_weight", x, gy, w.shape, *ctx.geometry) if need[1] else None
        gb = gy.sum(axis=(0, 2, 3)) if need[2] else None
        return gx, gw, gb, None, None, None, None, None


ConvTranspose2d.samples = staticmethod(lambda rng: [
    Sample((randn(rng, xs), randn(rng, ws), randn(rng, (ws[1] * g,))),
           lambda x, w, b, s=s, p=p, op_=op_, g=g, d=d: ConvTranspose2d.apply(x, w, b, s, p, op_, g, d),
           f"x{xs},w{ws},s{s},p{p},out_pad{op_},g{g},d{d}")
    for xs, ws, s, p, op_, g, d in [((2, 3, 4, 5), (3, 2, 3, 3), (1, 1), (1, 1), (0, 0), 1, (1, 1)),
                                    ((1, 4, 3, 3), (4, 3, 3, 2), (2, 2), (1, 0), (1, 1), 2, (1, 1)),
                                    ((1, 2, 4, 4), (2, 2, 2, 2), (2, 2), (0, 0), (0, 0), 1, (2, 1))]])


@op
class MaxPool2d(Op):
    """(max of each window, its flat index into the input's H*W plane, as PyTorch's return_indices).
    The backward kernel reads the same indices, so the op returns the array it saves (changing
    the returned indices in place before backward changes the gradient, as in PyTorch)."""
    non_differentiable_outputs = (1,)
    cost = staticmethod(lambda x, k, *_: Cost(x.size * k[0] * k[1], 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        y, arg = ctx.kernel("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode)
        ctx.save_for_backward(arg)
        ctx.meta = x.shape, kernel, stride, padding, dilation, ceil_mode
        return y, arg

    @staticmethod
    def backward(ctx, gy, _g_indices):
        (arg,) = ctx.saved_tensors
        return (ctx.kernel("max_pool2d_backward", gy, arg, *ctx.meta),) + (None,) * 5


def _max_pool_samples(rng):
    # Ragged planes, ceil mode, dilation; the wider ones cover the native kernel's vector
    # interior (stride 1 and 2) and its borders. The last returns the indices too.
    cases = [((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
             ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1), (1, 1), True),
             ((1, 1, 9, 8), (3, 2), (1, 2), (1, 0), (2, 1), False),
             ((2, 1, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),
             ((1, 2, 5, 29), (3, 3), (1, 1), (1, 1), (1, 1), False),
             ((2, 1, 6, 41), (3, 3), (2, 2), (1, 1), (1, 1), True)]
    out = [Sample((distinct(rng, xs),), lambda x, k=k, s=s, p=p, d=d, c=c: MaxPool2d.apply(x, k, s, p, d, c)[0],
                  f"{xs},k{k},s{s},p{p},d{d},ceil={c}") for xs, k, s, p, d, c in cases]
    out.append(Sample((distinct(rng, (1, 2, 7, 37)),),
                      lambda x: MaxPool2d.apply(x, (3, 2), (2, 2), (1, 1), (1, 2), True),
                      "(1, 2, 7, 37),k(3, 2),s(2, 2),p(1, 1),d(1, 2),ceil=True,indices"))
    return out


MaxPool2d.samples = staticmethod(_max_pool_samples)


@op
class AvgPool2d(Op):
    cost = staticmethod(lambda x, k, *_: Cost(x.size * k[0] * k[1], 2 * x.nbytes))

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.meta = x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
        return ctx.kernel("avg_pool2d", x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)

    @staticmethod
    def backward(ctx, gy):
        return (ctx.kernel("avg_pool2d_backward", gy, *ctx.meta),) + (None,) * 6


AvgPool2d.samples = staticmethod(lambda rng: [
    Sample((randn(rng, xs),), lambda x, a=a: AvgPool2d.apply(x, *a), f"{xs},{a}")
    for xs, a in [((2, 3, 6, 6), ((2, 2), (2, 2), (0, 0), False, True, None)),
                  ((1, 2, 7, 5), ((3, 3), (2, 2), (1, 1), True, True, None)),
                  ((1, 2, 7, 5), ((3, 3), (2, 2), (1, 1), True, False, None)),
                  ((1, 1, 5, 6), ((2, 3), (1, 2), (1, 1), False, False, 4)),
                  ((1, 2, 5, 29), ((3, 3), (1, 1), (1, 1), False, True, None)),
                  ((2, 1, 6, 41), ((3, 2), (2, 2), (1, 1), True, False, None))]])
