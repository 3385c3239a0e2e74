"""The configuration of ``rotelab capacity cot`` and its check (no torch: the command line reads
its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass

from rotelab.capacity.checks import at_least, each_at_least, one_of
from rotelab.errors import RotelabError

ARMS = ("no_cot", "cot")
PRECISIONS = ("fp32", "bf16", "fp8", "int8")
POSITIONS = ("learned", "none")


@dataclass(frozen=True)
class CotConfig:
    length: int = 6  # input symbols per string
    alphabet: int = 4
    n_labels: int = 2
    pause: int = 2  # CoT trace = this many PAUSE tokens
    pos: str = "learned"  # positions in the sweep; the condition runs use NoPE (pos="none") unless named
    precision: str = "fp32"
    sizes: tuple[int, ...] = (8, 16, 32, 64, 128)  # quick default; the bench adds 256 and a third seed
    w_min: int = 2  # widths searched: w_min .. w_max (1 head), by galloping + bisection per depth
    w_max: int = 32
    depths: tuple[int, ...] = (2, 1)  # searched in this order; later depths only below the best P so far
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 2000  # max steps per candidate (stops at 100% memorised)
    lr: float = 5e-3  # 1e-2 diverged at width >= 18 on N = 256 (larger nets memorised less); 5e-3 fits N = 256 at width 12
    patience: int = 500  # a candidate whose memorised count stalls this many steps counts as failed
    single_n_max: int = 12
    prefix_pairs: int = 8
    cond_width: int = 8
    cond_depth: int = 1
    cond_heads: int = 2
    cond_steps: int = 2000
    cond_seeds: tuple[int, ...] = (0, 1, 2)
    precisions: tuple[str, ...] = PRECISIONS
    arms: tuple[str, ...] = ARMS  # sweep arms to run
    conditions: bool = True  # train the condition-separating families


def check_cot(cfg: CotConfig) -> CotConfig:
    """Every option in range; the strings must be able to hold the largest N distinct inputs."""
    each_at_least("--sizes", cfg.sizes, 2)
    each_at_least("--depths", cfg.depths, 1)
    each_at_least("--seeds", cfg.seeds, 0)
    each_at_least("--cond-seeds", cfg.cond_seeds, 0)
    at_least("--w-max", cfg.w_max, 2)
    if not 1 <= cfg.w_min <= cfg.w_max:
        raise RotelabError(f"w_min must be in [1, --w-max = {cfg.w_max}]; got {cfg.w_min}")
    for option, value, low in (("--pause", cfg.pause, 1), ("--length", cfg.length, 1), ("--steps", cfg.steps, 1), ("cond_steps", cfg.cond_steps, 1),
                               ("--single-n-max", cfg.single_n_max, 2), ("alphabet", cfg.alphabet, 2), ("n_labels", cfg.n_labels, 2),
                               ("prefix_pairs", cfg.prefix_pairs, 1), ("cond_depth", cfg.cond_depth, 1), ("cond_heads", cfg.cond_heads, 1), ("patience", cfg.patience, 0)):
        at_least(option, value, low)
    if cfg.cond_width < cfg.cond_heads or cfg.cond_width % cfg.cond_heads:
        raise RotelabError(f"cond_width must be a positive multiple of cond_heads = {cfg.cond_heads}; got {cfg.cond_width}")
    if not cfg.lr > 0:
        raise RotelabError(f"lr must be > 0; got {cfg.lr}")
    one_of("--pos", cfg.pos, POSITIONS)
    one_of("--precision", cfg.precision, PRECISIONS)
    for p in cfg.precisions:
        one_of("precisions", p, PRECISIONS)
    for a in cfg.arms:
        one_of("arms", a, ARMS)
    if cfg.alphabet**cfg.length < max(cfg.sizes):
        raise RotelabError(f"--length {cfg.length} gives {cfg.alphabet ** cfg.length} strings < largest --sizes {max(cfg.sizes)}")
    return cfg
