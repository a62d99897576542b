"""Trained examples of every architecture tilegrad targets, run by ``tilegrad train NAME`` and by
the scripts in ``examples/``. Each finishes in under two minutes on 2 CPU cores with its defaults
and states the target it reaches."""
NAMES = ("mlp", "cnn", "autoencoder", "lstm", "gru", "transformer", "gan")


def get(name):
    """The experiment class of an example (imported on demand: each pulls in its own data)."""
    if name in ("mlp", "cnn", "autoencoder"):
        from . import digits
        return {"mlp": digits.MLPExperiment, "cnn": digits.CNNExperiment, "autoencoder": digits.AutoencoderExperiment}[name]
    if name in ("lstm", "gru", "transformer"):
        from . import chars
        return {"lstm": chars.LSTMExperiment, "gru": chars.GRUExperiment, "transformer": chars.TransformerExperiment}[name]
    if name == "gan":
        from . import gan
        return gan.GANExperiment
    raise ValueError(f"unknown example {name!r}: choose one of {', '.join(NAMES)}")
