"""``python -m lowrank train ...``: train a UNet into the model cache (see :mod:`lowrank.models`).

Example: ``python -m lowrank train --epochs 6 --snapshots 1`` trains the 16x16 Fashion-MNIST
model of chapter 05's standard profile; the chapter then loads it instead of training.

A bad value stops before anything is loaded or written, in one line that names its flag (exit
status 2, as argparse's own errors); a cache or data problem found later (a corrupt cached run,
missing data) in one line too, exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from lowrank.nets.cache import is_cached, load_unet
from lowrank.nets.runs import DATASETS, PARAMETERIZATIONS, UNetRun

# what a flag takes besides numbers, added to its error
_WORDS = {"size": " (or 'native')", "train_images": " (or 'all')"}


def _size(text: str) -> int | None:
    if text == "native":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or 'native', got {text!r}"
        ) from None


def _count(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _flag_message(error: Exception, fields: set[str]) -> str:
    """A :class:`UNetRun` error with its field (the message's first word) as the flag."""
    text = " ".join(str(error).split())  # one line
    match = re.match(r"([a-z_]+)\b(.*)", text)
    if match and match[1] in fields:
        return _flag(match[1]) + match[2] + _WORDS.get(match[1], "")
    return text


def main(argv: list[str] | None = None) -> int:
    defaults = UNetRun()
    parser = argparse.ArgumentParser(prog="python -m lowrank")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a UNet into the model cache")
    train.add_argument("--dataset", choices=DATASETS, default=defaults.dataset)
    train.add_argument(
        "--size",
        type=_size,
        default=defaults.size,
        help="image side after downsampling, or 'native' (default %(default)s)",
    )
    train.add_argument(
        "--train-images",
        type=_count,
        default=defaults.train_images,
        help="class-balanced training subset, or 'all' (default)",
    )
    train.add_argument("--channels", type=int, nargs="+", default=list(defaults.channels))
    train.add_argument("--layers-per-block", type=int, default=defaults.layers_per_block)
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--ema-decay", type=float, default=defaults.ema_decay)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--snapshots",
        type=int,
        nargs="*",
        default=[],
        help="epochs after which the EMA weights are also kept",
    )
    train.add_argument(
        "--noise-levels",
        type=float,
        nargs="+",
        help="train a denoising autoencoder at these noise levels only (default: a diffusion "
        "model, every timestep)",
    )
    train.add_argument(
        "--epoch-images",
        type=int,
        help="repeat a smaller training subset to at least this many images per epoch "
        "(default: one pass over the subset)",
    )
    train.add_argument(
        "--parameterization",
        choices=list(PARAMETERIZATIONS),
        default=defaults.parameterization,
        help="ddpm: epsilon prediction on the T = 1000 schedule; edm: EDM's preconditioning "
        "and log-normal noise levels (default %(default)s)",
    )
    train.add_argument(
        "--delta",
        type=float,
        default=defaults.delta,
        help="class-agnostic overlay (I_a + delta I_b) / (1 + delta) of every image, b of "
        "another class (chapter 10; default %(default)s: the plain data)",
    )
    train.add_argument(
        "--delta-seed",
        type=int,
        default=defaults.delta_seed,
        help="seed of the overlay's partners (default %(default)s)",
    )
    train.add_argument(
        "--cache", help="cache folder (default: $LOWRANK_CACHE, else ~/.cache/lowrank/models)"
    )
    train.add_argument(
        "--data",
        help="folder of the data set (default: $LOWRANK_DATA, else "
        "the Debian package's folder for Fashion-MNIST)",
    )
    args = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(UNetRun)}
    try:
        run = UNetRun(**{k: v for k, v in vars(args).items() if k in fields})
    except (TypeError, ValueError) as e:
        train.error(_flag_message(e, fields))  # exits with status 2
    if args.data is not None and not Path(args.data).exists():
        train.error(f"--data {args.data!r} does not exist: pass the data set's folder or file")
    if args.cache is not None and Path(args.cache).exists() and not Path(args.cache).is_dir():
        train.error(f"--cache {args.cache!r} is a file: pass a folder")
    try:
        cached = is_cached(run, args.cache)
        record = load_unet(run, cache=args.cache, data_root=args.data).record
    except (OSError, ValueError) as e:  # each names its file and the fix (disk full, read-only)
        print(f"{train.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    speed = record.images_per_second
    print(f"{run.folder(args.cache)}")
    done = "loaded from the cache" if cached or not speed else f"{speed:.0f} training images/s"
    print(f"final loss {record.final_loss:.4f} after {len(record.losses)} epochs; {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
