"""``tilegrad train NAME``: train one of the bundled examples with a progress bar, save a
checkpoint after every epoch, and continue from it with ``--resume``."""


def add_parser(commands):
    from ..examples import NAMES
    p = commands.add_parser("train", help="train an example model (mlp, cnn, lstm, gru, transformer, autoencoder, gan)",
                            description="Train an example model on data shipped with tilegrad. Each finishes in "
                                        "under two minutes on 2 CPU cores with its defaults and reports whether it "
                                        "reached its stated target.")
    p.add_argument("name", choices=NAMES, help="the example")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (default: the example's own)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: checkpoints/NAME.safetensors)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(run=run)


def run(args):
    from ..examples import runner
    if args.epochs is not None and args.epochs < 1:
        print("tilegrad train: --epochs must be at least 1")
        return 2
    if args.device.startswith("cuda"):
        import tilegrad
        if not tilegrad.cuda.is_available():
            print("tilegrad train: --device cuda needs a GPU and CuPy; none is usable here (see `tilegrad doctor`)")
            return 2
    try:
        runner.run(args.name, device=args.device, epochs=args.epochs, resume=args.resume,
                   checkpoint=args.checkpoint, seed=args.seed)
    except FileNotFoundError as e:
        print(f"tilegrad train: {e}")
        return 2
    return 0
