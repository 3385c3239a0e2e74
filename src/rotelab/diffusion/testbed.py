"""A diffusion testbed trained here: a tiny pixel-space UNet2DConditionModel with a frozen random
CLIP text encoder, on images whose duplication is known.

Splits (``items.jsonl``; ``label`` 1 = memorized):
- ``memorized``: image/caption pairs duplicated ``n_dup`` times in training;
- ``singleton``: seen once;
- ``unseen``: never trained on (controls).

Images are half real (scikit-learn's bundled 8x8 handwritten digits, tinted and upscaled) and half
procedural (coloured discs on coloured backgrounds). Captions are random word ids (``w17 w52 ...``)
read by :class:`~rotelab.diffusion.model.WordIdTokenizer`; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rotelab.core.io import atomic_write_text, write_json
from rotelab.diffusion.model import DiffusionModel, WordIdTokenizer, save_image


@dataclass(frozen=True)
class TestbedConfig:
    __test__ = False  # not a pytest test class, though its name starts with "Test"

    image_size: int = 16
    channels: tuple[int, int] = (16, 32)
    n_memorized: int = 6
    n_dup: int = 32
    n_singletons: int = 48
    n_unseen: int = 16
    vocab: int = 200
    n_tokens: int = 8  # caption length incl. BOS/EOS
    width: int = 32  # text-embedding width = cross-attention dim
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    caption_dropout: float = 0.1  # enables classifier-free guidance
    seed: int = 0


PRESETS: dict[str, TestbedConfig] = {
    "tiny": TestbedConfig(image_size=8, channels=(8, 16), n_memorized=3, n_dup=16, n_singletons=8, n_unseen=6, steps=300, batch_size=64, lr=5e-3),
    # the experiment: 8x8 so that memorization, the table and locality fit ~1 h of 2 busy cores
    "small": TestbedConfig(image_size=8, channels=(16, 32), n_memorized=6, n_dup=16, n_singletons=24, n_unseen=12, steps=500, batch_size=64, lr=4e-3),
    # the research note's 16x16 prototype size; 1000 steps memorized too little (MR 0.125 at τ 0.7)
    "small16": TestbedConfig(steps=2000),
}

def _disc(rng: np.random.Generator, size: int) -> np.ndarray:
    """A coloured disc on a coloured background  # (3, H, W) in [-1, 1]"""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    cy, cx = rng.uniform(0.25, 0.75, 2)
    r = rng.uniform(0.15, 0.35)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
    fg, bg = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    return np.where(mask[None], fg[:, None, None], bg[:, None, None]).astype(np.float32)


def _digits(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """scikit-learn's bundled digits, tinted with a random colour and resized  # (n, 3, H, W)"""
    from sklearn.datasets import load_digits

    d = load_digits().images  # (1797, 8, 8) in [0, 16]
    idx = rng.choice(len(d), n, replace=False)
    g = torch.from_numpy(d[idx] / 16.0).float()[:, None]  # (n, 1, 8, 8)
    g = F.interpolate(g, size=(size, size), mode="bilinear", align_corners=False) if size != 8 else g
    tint = torch.from_numpy(rng.uniform(0.3, 1.0, (n, 3, 1, 1))).float()
    return (g * tint * 2 - 1).numpy()


def make_items(cfg: TestbedConfig) -> tuple[list[dict], np.ndarray]:
    """Items (id, text, split, label) and their images  # (N, 3, H, W)"""
    rng = np.random.default_rng(cfg.seed)
    counts = {"memorized": cfg.n_memorized, "singleton": cfg.n_singletons, "unseen": cfg.n_unseen}
    n = sum(counts.values())
    n_dig = n // 2
    imgs = np.concatenate([_digits(rng, n_dig, cfg.image_size), np.stack([_disc(rng, cfg.image_size) for _ in range(n - n_dig)])])
    imgs = imgs[rng.permutation(n)]  # each split gets digits and discs
    items = []
    for split, k in counts.items():
        for j in range(k):
            words = rng.choice(np.arange(4, cfg.vocab), cfg.n_tokens - 2, replace=False)
            items.append({"id": f"{split}-{j}", "text": " ".join(f"w{w}" for w in words), "split": split, "label": int(split == "memorized")})
    return items, imgs


def build_models(cfg: TestbedConfig):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(cfg.seed)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=cfg.vocab, hidden_size=cfg.width, intermediate_size=2 * cfg.width, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=cfg.n_tokens, pad_token_id=1, bos_token_id=2, eos_token_id=3))
    unet = UNet2DConditionModel(
        sample_size=cfg.image_size, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=cfg.channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cfg.width, attention_head_dim=8, norm_num_groups=8,
    )
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    return unet, te, sched


def save_model(folder: Path, unet, te, sched, cfg: TestbedConfig) -> None:
    unet.save_pretrained(folder / "unet")
    te.save_pretrained(folder / "text_encoder")
    sched.save_pretrained(folder / "scheduler")
    atomic_write_text(folder / "word_tokenizer.json", json.dumps(asdict(WordIdTokenizer(cfg.n_tokens))))


CHECKPOINT = "train_ckpt.safetensors"  # the training checkpoint inside a testbed folder while it trains


def save_checkpoint(path: Path, unet, opt, step: int, losses: list[float]) -> None:
    """UNet weights, AdamW state, step and losses as one safetensors record (:mod:`rotelab.diffusion.store`)."""
    from rotelab.diffusion import store

    o = opt.state_dict()
    store.save(path, {"unet": dict(unet.state_dict()), "step": step, "losses": losses,
                      "opt": {"state": {str(k): v for k, v in o["state"].items()}, "param_groups": o["param_groups"]}})


def load_checkpoint(path: Path, unet, opt) -> tuple[int, list[float]]:
    """Restore what :func:`save_checkpoint` wrote into ``unet`` and ``opt``; returns (step, losses)."""
    from rotelab.diffusion import store

    state = store.load(path)
    unet.load_state_dict(state["unet"])
    opt.load_state_dict({"state": {int(k): v for k, v in state["opt"]["state"].items()}, "param_groups": state["opt"]["param_groups"]})
    return int(state["step"]), list(state["losses"])


def train_diffusion(unet, y_all: torch.Tensor, x_all: torch.Tensor, sched, *, steps: int, batch_size: int, lr: float, seed: int,
                    ckpt: Path | None = None, progress: Callable[[int], None] | None = None) -> list[float]:
    """Plain DDPM training, L = ‖ε − ε_θ(x_t, t, y)‖², on pairs (x_all[i], y_all[i]); resumable via
    ``ckpt`` (a safetensors record, every 250 steps and at the end).

    Returns the loss of every step.
    """
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    start, losses = 0, []
    if ckpt is not None and ckpt.exists():
        start, losses = load_checkpoint(ckpt, unet, opt)
    model = DiffusionModel.__new__(DiffusionModel)  # only its forward-process maths are needed here
    model.alphas_cumprod, model.unet = sched.alphas_cumprod.float(), unet
    unet.train().requires_grad_(True)
    for step in range(start, steps):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)  # a step's batch depends only on (seed, step): resume is exact
        idx = torch.randint(len(x_all), (batch_size,), generator=g)
        noise = torch.randn(x_all[idx].shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g)
        loss = model.denoising_loss(x_all[idx], y_all[idx], noise, t).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1)
        if ckpt is not None and ((step + 1) % 250 == 0 or step + 1 == steps):
            save_checkpoint(ckpt, unet, opt, step + 1, losses)
    unet.eval().requires_grad_(False)
    return losses


def build_testbed(out: Path, cfg: TestbedConfig, *, progress: bool = True) -> dict:
    """Write ``out/{items.jsonl, images/, model/, train.json}``; resumes an interrupted training."""
    from rotelab.core.console import progress as bar_

    items, imgs = make_items(cfg)
    for it, im in zip(items, imgs):
        it["image"] = f"images/{it['id']}.png"
        save_image(out / it["image"], torch.from_numpy(im))
    atomic_write_text(out / "items.jsonl", "".join(json.dumps(it) + "\n" for it in items))
    unet, te, sched = build_models(cfg)
    tok = WordIdTokenizer(cfg.n_tokens)
    gen = torch.Generator().manual_seed(cfg.seed)
    # training pairs: memorized ×n_dup, singletons ×1; captions dropped to the null prompt at rate p
    train_idx = [i for i, it in enumerate(items) for _ in range({"memorized": cfg.n_dup, "singleton": 1, "unseen": 0}[it["split"]])]
    texts = [items[i]["text"] if torch.rand(1, generator=gen).item() >= cfg.caption_dropout else "" for i in train_idx]
    with torch.no_grad():
        y_all = te(tok.encode(texts)).last_hidden_state
    x_all = torch.from_numpy(imgs[train_idx])
    with bar_(disable=not progress) as bar:
        task = bar.add_task("training diffusion testbed", total=cfg.steps)
        losses = train_diffusion(unet, y_all, x_all, sched, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                                 ckpt=out / CHECKPOINT, progress=lambda s: bar.update(task, completed=s))
    save_model(out / "model", unet, te, sched, cfg)
    summary = {"config": asdict(cfg), "n_train_pairs": len(train_idx), "n_items": {s: sum(it["split"] == s for it in items) for s in ("memorized", "singleton", "unseen")},
               "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:])),
               "n_params_unet": sum(p.numel() for p in unet.parameters())}
    write_json(out / "train.json", {**summary, "losses": losses})
    (out / CHECKPOINT).unlink(missing_ok=True)
    return summary


def read_items(path: Path) -> list[dict]:
    """Items from a JSONL (``text``; optional ``id``, ``label`` 1 = memorized, ``image`` path relative
    to the file) or from a testbed folder's ``items.jsonl``. Image paths come back absolute."""
    from rotelab.core.data import read_jsonl

    path = Path(path)
    file = path / "items.jsonl" if path.is_dir() else path
    return [check_item({"id": s.id, "text": s.text, **s.meta}, f"{file}: item '{s.id}'", base=file.parent) for s in read_jsonl(file)]


def check_item(row: dict, where: str, *, base: Path | None = None) -> dict:
    """One validated item: id, text, label (0 or 1), split, and ``image`` as an existing absolute
    path (relative paths are relative to ``base``); a problem is one line starting with ``where``."""
    from rotelab.errors import RotelabError

    if not isinstance(row, dict):
        raise RotelabError(f"{where}: expected a dict with 'text', got {type(row).__name__}")
    text, label, split = row.get("text"), row.get("label", 0), row.get("split", "")
    if not isinstance(text, str) or not text.strip():
        raise RotelabError(f"{where}: field 'text' must be a non-empty string")
    if isinstance(label, bool) or label not in (0, 1):
        raise RotelabError(f"{where}: field 'label' must be 0 or 1; got {label!r}")
    if not isinstance(split, str):
        raise RotelabError(f"{where}: field 'split' must be a string")
    it = {"id": str(row.get("id")), "text": text, "label": int(label), "split": split}
    img = row.get("image")
    if img:
        if not isinstance(img, (str, Path)):
            raise RotelabError(f"{where}: field 'image' must be a path")
        p = Path(img) if base is None else (base / img)
        p = p.resolve()
        if not p.is_file():
            raise RotelabError(f"{where}: image {p} not found")
        it["image"] = p
    return it
