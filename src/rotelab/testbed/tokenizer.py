"""A byte-level BPE tokenizer trained locally with ``tokenizers`` and saved with the model."""

from __future__ import annotations

from typing import Iterable

EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 4096, min_frequency: int = 2):
    """Train a GPT-2-style byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast``.

    One special token, ``<|endoftext|>``, serves as BOS, EOS and padding (as in GPT-2). It is
    prepended to every text (a post-processor), so training and scoring see the same positions
    and the first word of a text gets a prediction.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{EOS} $A", special_tokens=[(EOS, tok.token_to_id(EOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS, unk_token=None
    )
