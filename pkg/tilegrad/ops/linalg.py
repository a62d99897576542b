"""Vector norms, einsum and sign. Their backward follows PyTorch's where the derivative is not
defined: a zero norm gives a zero gradient, sign's gradient is zero."""
import math

from ..backends.reference import xp_of
from .base import Cost, Op, Sample, away_from_zero, distinct, op, randn
from .reduce import _keep


@op
class VectorNorm(Op):
    """``linalg.vector_norm(x, ord, dims, keepdim)``: (sum |x|^p)^(1/p) over dims (None = all);
    ord inf / -inf is max / min |x|, ord 0 counts the non-zeros."""
    cost = staticmethod(lambda x, *_: Cost(3 * x.size, x.nbytes))

    @staticmethod
    def forward(ctx, x, ord, dims, keepdim):  # noqa: A002 - PyTorch's argument name
        xp = xp_of(x)
        a = xp.abs(x)
        if ord == math.inf:
            y = xp.amax(a, axis=dims, keepdims=keepdim)
        elif ord == -math.inf:
            y = xp.amin(a, axis=dims, keepdims=keepdim)
        elif ord == 0:
            y = xp.sum(x != 0, axis=dims, keepdims=keepdim).astype(x.dtype)
        elif ord == 1:
            y = xp.sum(a, axis=dims, keepdims=keepdim)
        elif ord == 2:
            y = xp.sqrt(xp.sum(x * x, axis=dims, keepdims=keepdim))
        else:
            y = xp.sum(a ** ord, axis=dims, keepdims=keepdim) ** (1.0 / ord)
        y = xp.asarray(y, dtype=x.dtype)
        ctx.save_for_backward(x, y)
        ctx.meta = ord, dims, keepdim
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        ord, dims, keepdim = ctx.meta
        xp = xp_of(x)
        zero = x.dtype.type(0)
        g, norm = _keep(gy, x.ndim, dims, keepdim), _keep(y, x.ndim, dims, keepdim)
        if ord == 0:
            return xp.zeros_like(x), None, None, None
        if ord in (math.inf, -math.inf):
            # The gradient is shared evenly by the elements that attain the extreme |x|.
            hit = xp.abs(x) == norm
            count = xp.sum(hit, axis=dims, keepdims=True)
            return xp.sign(x) * hit * (g / count), None, None, None
        if ord == 1:
            return xp.sign(x) * g, None, None, None
        if ord == 2:
            scale = xp.where(norm == 0, zero, g / xp.where(norm == 0, x.dtype.type(1), norm))
            return x * scale, None, None, None
        # d/dx (sum |x|^p)^(1/p) = sign(x) |x|^(p-1) / norm^(p-1); zero where x or the norm is 0.
        a = xp.abs(x)
        scaled = xp.where(a == 0, zero, xp.sign(x) * a ** (ord - 1))
        scale = xp.where(norm == 0, zero, g / xp.where(norm == 0, x.dtype.type(1), norm ** (ord - 1)))
        return scaled * scale, None, None, None


_NORM_CASES = [(randn, (7,), 2, None, False), (randn, (3, 5), 2, (1,), True), (away_from_zero, (3, 5), 1, (0,), False),
               (distinct, (4, 6), math.inf, (1,), False), (distinct, (4, 6), -math.inf, None, True),
               (away_from_zero, (2, 3, 4), 3, (0, 2), False), (away_from_zero, (5, 3), 0.5, (1,), False),
               (randn, (2, 3), 0, (1,), False), (randn, (2, 0, 3), 2, (2,), False), (randn, (), 2, None, False),
               (randn, (4, 129), 2, (1,), False)]
VectorNorm.samples = staticmethod(lambda rng: [
    Sample((gen(rng, s),), lambda x, o=o, d=d, k=k: VectorNorm.apply(x, o, d, k), f"{s},ord={o},dims={d},keepdim={k}")
    for gen, s, o, d, k in _NORM_CASES])


@op
class Sign(Op):
    """-1, 0 or 1 by the sign of x; its gradient is zero everywhere (PyTorch's convention)."""
    samples = staticmethod(lambda rng: [Sample((away_from_zero(rng, s),), lambda x: Sign.apply(x), f"{s}")
                                        for s in [(7,), (3, 5), (0, 2), ()]])

    @staticmethod
    def forward(ctx, x):
        return ctx.kernel("sign", x)

    @staticmethod
    def backward(ctx, gy):
        return xp_of(gy).zeros_like(gy)


# ---- einsum -------------------------------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_einsum(equation, shapes):
    """(input subscripts, output subscripts) of ``equation`` with every '...' spelled out in
    letters unused elsewhere, and the output made explicit (PyTorch's implicit rule: the
    letters used once, in alphabetical order, after the broadcast dims). Raises ValueError."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum(): the equation names {len(inputs)} operands but {len(shapes)} were given")
    for sub in inputs + [rhs]:
        bad = set(sub.replace("...", "")) - set(_LETTERS)
        if bad or sub.count("...") > 1 or "." in sub.replace("...", ""):
            raise ValueError(f"einsum(): invalid subscripts {sub!r} in {equation!r}")
    spare = [c for c in _LETTERS if c not in equation]
    n_ellipsis = 0
    for sub, shape in zip(inputs, shapes):
        named = len(sub.replace("...", ""))
        if ("..." in sub and named > len(shape)) or ("..." not in sub and named != len(shape)):
            raise ValueError(f"einsum(): subscripts {sub!r} do not match an operand of {len(shape)} dims")
        if "..." in sub:
            n_ellipsis = max(n_ellipsis, len(shape) - named)
    broadcast = "".join(spare[:n_ellipsis])

    def spell(sub, ndim):
        if "..." not in sub:
            return sub
        k = ndim - len(sub.replace("...", ""))
        return sub.replace("...", broadcast[n_ellipsis - k:])

    subs = [spell(sub, len(shape)) for sub, shape in zip(inputs, shapes)]
    if arrow:
        out = rhs.replace("...", broadcast)
        missing = set(out) - set("".join(subs))
        if missing or len(set(out)) != len(out):
            raise ValueError(f"einsum(): output subscripts {rhs!r} repeat a letter or name one absent from the inputs")
    else:
        counts = {c: "".join(subs).count(c) for c in set("".join(subs)) - set(broadcast)}
        out = broadcast + "".join(sorted((c for c, n in counts.items() if n == 1), key=_LETTERS.index))
    return subs, out


def _letter_sizes(subs, shapes):
    sizes = {}
    for sub, shape in zip(subs, shapes):
        for c, n in zip(sub, shape):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ValueError(f"einsum(): subscript {c} has size {n} in one operand and {sizes[c]} in another")
            sizes[c] = n if n != 1 else sizes.get(c, 1)
    return sizes


@op
class Einsum(Op):
    """``einsum(equation, *operands)`` over spelled-out subscripts (see ``parse_einsum``).
    The gradient of an operand is the einsum of the output gradient with the other operands;
    a letter repeated within the operand (a diagonal) is restored with an identity matrix,
    and size-1 dims broadcast against others are summed back by the engine."""
    cost = staticmethod(lambda subs, out, *xs: Cost(
        2 * math.prod(_letter_sizes(subs, [x.shape for x in xs]).values()), sum(x.nbytes for x in xs)))

    @staticmethod
    def forward(ctx, subs, out, *xs):
        xp = xp_of(xs[0])
        sizes = _letter_sizes(subs, [x.shape for x in xs])
        # Broadcast size-1 dims up front so every operand's gradient has one well-defined shape.
        xs = [xp.broadcast_to(x, tuple(sizes[c] for c in sub)) for x, sub in zip(xs, subs)]
        ctx.save_for_backward(*xs)
        ctx.meta = subs, out, sizes
        return xp.einsum(",".join(subs) + "->" + out, *xs)

    @staticmethod
    def backward(ctx, gy):
        xs = ctx.saved_tensors
        subs, out, sizes = ctx.meta
        xp = xp_of(gy)
        grads = []
        for i, sub in enumerate(subs):
            if not ctx.needs_input_grad[i + 2]:
                grads.append(None)
                continue
            operands, terms = [gy], [out]
            operands += [x for j, x in enumerate(xs) if j != i]
            terms += [s for j, s in enumerate(subs) if j != i]
            spare = iter(c for c in _LETTERS if c not in sizes)
            size_of = dict(sizes)
            target = ""
            for c in sub:  # a repeated letter gets a fresh one, tied to the first by an identity
                if c in target:
                    fresh = next(spare)
                    operands.append(xp.eye(sizes[c], dtype=gy.dtype))
                    terms.append(c + fresh)
                    size_of[fresh] = sizes[c]
                    c = fresh
                target += c
            available = set("".join(terms))
            present = "".join(c for c in target if c in available)
            g = xp.einsum(",".join(terms) + "->" + present, *operands)
            # Letters only this operand carries were summed in forward: their gradient is broadcast.
            g = g.reshape(tuple(size_of[c] if c in available else 1 for c in target))
            grads.append(xp.broadcast_to(g, xs[i].shape))
        return (None, None) + tuple(grads)


def _einsum_sample(rng, equation, *shapes):
    subs, out = parse_einsum(equation, shapes)
    return Sample(tuple(randn(rng, s) for s in shapes), lambda *xs: Einsum.apply(subs, out, *xs), f"{equation} {shapes}")


Einsum.samples = staticmethod(lambda rng: [
    _einsum_sample(rng, "ij,jk->ik", (3, 4), (4, 5)), _einsum_sample(rng, "bij,bjk->bik", (2, 3, 4), (2, 4, 1)),
    _einsum_sample(rng, "ii->i", (4, 4)), _einsum_sample(rng, "ii", (3, 3)), _einsum_sample(rng, "ij->", (2, 5)),
    _einsum_sample(rng, "i,j->ij", (3,), (4,)), _einsum_sample(rng, "...ij,...jk", (2, 1, 3, 4), (5, 4, 2)),
    _einsum_sample(rng, "bhqd,bhkd->bhqk", (1, 2, 3, 5), (1, 2, 4, 5)), _einsum_sample(rng, "ij,j->i", (3, 4), (1,)),
    _einsum_sample(rng, "ij,ij,ij->i", (2, 3), (2, 3), (2, 3)), _einsum_sample(rng, "ij,jk->ik", (0, 3), (3, 2)),
    _einsum_sample(rng, "iij->j", (2, 2, 3))])
