"""A text-conditional diffusion model as rotelab sees it: UNet2DConditionModel + text encoder +
noise scheduler (+ optional VAE and tokenizer), loaded from a diffusers pipeline folder.

Every method works on *text embeddings* ``y`` (the encoder's last hidden state, (L, D) per
prompt), because DoRI, NeMo and Wen et al. all act there. Prompts become embeddings once, via
:meth:`DiffusionModel.embed`.

Folder layout (a diffusers pipeline folder; the testbed writes the same)::

    unet/  text_encoder/  scheduler/  [vae/]  [tokenizer/ | word_tokenizer.json]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from rotelab.errors import RotelabError

# Classifier-free guidance scale used everywhere on the testbed (generation, replication, NeMo's
# signal, DoRI evaluation). Measured on the small preset (6 memorized prompts x 8 seeds, τ 0.7):
# g = 1.0 -> MR 0.79 memorized / 0.10 controls; 1.5 -> 0.85 / 0.18; 2.0 -> 0.71 / 0.08; 3.0 (the
# earlier default) -> 0.42 on 4 seeds. The tiny text encoder makes the conditional-unconditional gap
# small, and large scales push samples off the learned images. SD uses 7.5.
GUIDANCE = 1.5


@dataclass(frozen=True)
class WordIdTokenizer:
    """The testbed's tokenizer: caption words are ``w<id>``; ids are padded to ``max_length``.

    No vocabulary file is needed, so the testbed never downloads a tokenizer.

    >>> WordIdTokenizer(6).encode(["w7 w9"]).tolist()
    [[2, 7, 9, 3, 1, 1]]
    """

    max_length: int
    pad: int = 1
    bos: int = 2
    eos: int = 3

    def encode(self, texts: Sequence[str]) -> Tensor:
        rows = []
        for t in texts:
            words = t.split()
            bad = next((w for w in words if not (w[:1] == "w" and w[1:].isdigit())), None)
            if bad is not None:
                raise RotelabError(f"text '{t[:40]}': word '{bad[:20]}' is not w<id> (the testbed's word-id tokenizer)")
            ids = [int(w[1:]) for w in words]
            row = ([self.bos] + ids + [self.eos])[: self.max_length] if t.strip() else []
            rows.append(row + [self.pad] * (self.max_length - len(row)))
        return torch.tensor(rows, dtype=torch.long)


def _load_tokenizer(path: Path):
    if (path / "word_tokenizer.json").exists():
        from rotelab.core.io import read_json

        spec = read_json(path / "word_tokenizer.json")
        try:
            return WordIdTokenizer(**spec)
        except TypeError as e:
            raise RotelabError(f"{path / 'word_tokenizer.json'}: not a word-id tokenizer spec ({e})") from None
    if (path / "tokenizer").is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path / "tokenizer")
    raise RotelabError(f"{path}: no tokenizer/ folder and no word_tokenizer.json")


class DiffusionModel:
    """Load with :meth:`load`; ``unet`` may be modified in place by mitigations (hooks, pruning)."""

    def __init__(self, unet, text_encoder, scheduler, tokenizer, vae=None, path: Path | None = None):
        self.unet, self.text_encoder, self.scheduler, self.tokenizer, self.vae = unet, text_encoder, scheduler, tokenizer, vae
        self.path = path
        self._fingerprint: str | None = None
        for m in (unet, text_encoder, vae):
            if m is not None:
                m.eval().requires_grad_(False)
        self.alphas_cumprod = scheduler.alphas_cumprod.float()
        self.T = int(scheduler.config.num_train_timesteps)

    @classmethod
    def load(cls, path: Path | str) -> "DiffusionModel":
        """Open a pipeline folder (or a testbed / adversarial run folder: its ``model/``); safetensors weights only."""
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel

        path = pipeline_folder(path)
        unet = UNet2DConditionModel.from_pretrained(path / "unet", use_safetensors=True)
        te = CLIPTextModel.from_pretrained(path / "text_encoder", use_safetensors=True)
        sched = DDPMScheduler.from_pretrained(path / "scheduler")
        vae = None
        if (path / "vae").is_dir():
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(path / "vae", use_safetensors=True)
        model = cls(unet, te, sched, _load_tokenizer(path), vae, path)
        model.fingerprint = fingerprint_pipeline(path)
        return model

    def save(self, folder: Path) -> None:
        """Write a pipeline folder (safetensors weights, JSON configs) that :meth:`load` reads back;
        the tokenizer files are copied from the folder this model was loaded from."""
        import shutil

        self.unet.save_pretrained(folder / "unet")
        self.text_encoder.save_pretrained(folder / "text_encoder")
        self.scheduler.save_pretrained(folder / "scheduler")
        if self.vae is not None:
            self.vae.save_pretrained(folder / "vae")
        src = self.path
        if src is not None and (src / "word_tokenizer.json").is_file():
            shutil.copy(src / "word_tokenizer.json", folder / "word_tokenizer.json")
        if src is not None and (src / "tokenizer").is_dir():
            shutil.copytree(src / "tokenizer", folder / "tokenizer", dirs_exist_ok=True)

    @property
    def fingerprint(self) -> str:
        """Identity of the weights (the folder's for a loaded model, else sampled from the tensors)."""
        if self._fingerprint is None:
            self._fingerprint = _fingerprint_modules(self.unet, self.text_encoder, self.vae)
        return self._fingerprint

    @fingerprint.setter
    def fingerprint(self, value: str) -> None:
        self._fingerprint = value

    # -- text -------------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str]) -> Tensor:
        if isinstance(self.tokenizer, WordIdTokenizer):
            return self.tokenizer.encode(texts)
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.tokenizer.model_max_length, return_tensors="pt")
        return tok.input_ids

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> Tensor:
        """Text embeddings y = text_encoder(ids).last_hidden_state  # (B, L, D)"""
        return self.text_encoder(self.token_ids(texts)).last_hidden_state

    def check_texts(self, texts: Sequence[str], where: str) -> None:
        """Refuse texts whose token ids fall outside the text encoder's embedding rows (one line)."""
        rows = self.text_encoder.get_input_embeddings().num_embeddings
        try:
            ids = self.token_ids(texts)
        except RotelabError as e:
            raise RotelabError(f"{where}: {e}") from None
        bad = (ids >= rows).any(dim=1)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise RotelabError(f"{where}: text '{texts[i][:40]}' has token id {int(ids[i].max())} beyond the text encoder's {rows} embedding rows")

    def null_embedding(self) -> Tensor:
        return self.embed([""])[0]  # (L, D)

    # -- images <-> model space -------------------------------------------------------------
    @property
    def image_size(self) -> int:
        s = self.unet.config.sample_size
        return int(s * (2 ** (len(self.vae.config.block_out_channels) - 1)) if self.vae is not None else s)

    @torch.no_grad()
    def to_x0(self, images: Tensor) -> Tensor:
        """Pixels in [-1, 1] (B, 3, H, W) -> the UNet's space (latents when a VAE exists)."""
        if self.vae is None:
            return images
        return self.vae.encode(images).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def to_pixels(self, x0: Tensor) -> Tensor:
        if self.vae is None:
            return x0.clamp(-1, 1)
        return self.vae.decode(x0 / self.vae.config.scaling_factor).sample.clamp(-1, 1)

    def noise_shape(self, n: int) -> tuple[int, ...]:
        c, s = self.unet.config.in_channels, self.unet.config.sample_size
        return (n, c, s, s)

    # -- the denoiser -----------------------------------------------------------------------
    def eps(self, x_t: Tensor, t: Tensor | int, y: Tensor) -> Tensor:
        """ε_θ(x_t, t, y); ``y`` (B, L, D) or (L, D), broadcast over the batch."""
        if y.dim() == 2:
            y = y.expand(x_t.shape[0], -1, -1)
        return self.unet(x_t, t, encoder_hidden_states=y).sample

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε  (DDPM forward process)."""
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def denoising_loss(self, x0: Tensor, y: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """L = mean ‖ε − ε_θ(x_t, t, y)‖² per sample  # (B,)"""
        pred = self.eps(self.add_noise(x0, noise, t), t, y)
        return (pred - noise).pow(2).flatten(1).mean(1)

    @torch.no_grad()
    def sample(self, y: Tensor, seeds: Sequence[int], *, steps: int = 25, guidance: float | None = None) -> Tensor:
        """DDIM sampling with classifier-free guidance; one image per seed  # (S, 3, H, W) in [-1, 1]."""
        from diffusers import DDIMScheduler

        guidance = GUIDANCE if guidance is None else guidance
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(steps)
        x = torch.stack([torch.randn(self.noise_shape(1)[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        y = y.expand(len(seeds), -1, -1) if y.dim() == 2 else y
        null = self.null_embedding().expand_as(y)
        for t in ddim.timesteps:
            e = self.eps(torch.cat([x, x]), t, torch.cat([null, y]))
            e_u, e_c = e.chunk(2)
            x = ddim.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
        return self.to_pixels(x)

    def first_timestep(self, steps: int = 25) -> int:
        from diffusers import DDIMScheduler

        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(steps)
        return int(ddim.timesteps[0])


def pipeline_folder(path: Path | str) -> Path:
    """The pipeline folder behind ``path`` (itself, or the ``model/`` of a testbed or adversarial run),
    checked without loading: components present, weights as safetensors (pickle weights can run code
    on load and are refused)."""
    path = Path(path)
    if not path.exists():
        raise RotelabError(f"{path}: not found")
    if not path.is_dir():
        raise RotelabError(f"{path}: not a folder; --model takes a diffusers pipeline folder")
    if (path / "model" / "unet").is_dir():  # a testbed or mitigation folder: use its model/
        path = path / "model"
    for sub in ("unet", "text_encoder", "scheduler"):
        if not (path / sub).is_dir():
            raise RotelabError(f"{path}: not a diffusers pipeline folder (no {sub}/)")
    for sub in ("unet", "text_encoder", "vae"):
        if (path / sub).is_dir() and not any((path / sub).glob("*.safetensors")):
            raise RotelabError(f"{path / sub}: no safetensors weights (pickle weights such as *.bin are not loaded: they can run code)")
    if not (path / "word_tokenizer.json").exists() and not (path / "tokenizer").is_dir():
        raise RotelabError(f"{path}: no tokenizer/ folder and no word_tokenizer.json")
    return path


def fingerprint_pipeline(path: Path) -> str:
    """Cheap identity of a pipeline folder: each component's :func:`~rotelab.core.models.fingerprint_folder`
    (config, weight sizes, mtimes and head/tail bytes), the scheduler config and the tokenizer files."""
    import hashlib

    from rotelab.core.models import fingerprint_folder

    h = hashlib.sha256()
    for sub in ("unet", "text_encoder", "vae"):
        if (path / sub / "config.json").exists():
            h.update(f"{sub}:{fingerprint_folder(path / sub)}".encode())
    for f in [path / "scheduler" / "scheduler_config.json", path / "word_tokenizer.json", *sorted((path / "tokenizer").glob("*"))]:
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:24]


def _fingerprint_modules(*modules) -> str:
    """Identity of in-memory weights: names, shapes and a few slices of every 8th tensor."""
    import hashlib

    h = hashlib.sha256()
    for m in modules:
        if m is None:
            continue
        for i, (name, p) in enumerate(m.state_dict().items()):
            h.update(f"{name}{tuple(p.shape)}".encode())
            if i % 8 == 0:
                flat = p.detach().reshape(-1)
                h.update(flat[:64].float().cpu().numpy().tobytes())
                h.update(flat[-64:].float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def load_images(paths: Sequence[Path], size: int) -> Tensor:
    """PNG/JPEG files -> (B, 3, size, size) in [-1, 1] (bilinear resize)."""
    from PIL import Image

    out = []
    for p in paths:
        if not Path(p).exists():
            raise RotelabError(f"{p}: image file not found")
        im = Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
    return torch.stack(out)


def save_image(path: Path, image: Tensor) -> None:
    from PIL import Image

    arr = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
