"""A character-level tokenizer for the synthetic tasks, as a HF `PreTrainedTokenizerFast`.

Every character is one token (a `tokenizers` WordLevel model behind a pre-tokenizer that
isolates each character), so token t of a text is character t-1 (after BOS) and offsets
map labels exactly. It saves with `save_pretrained` and loads with `AutoTokenizer`.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
# Digits, both notations' operators and equality signs, separators, filler, unknown.
CHARS = "0123456789+-*pmt=>,;:?.QA"


def build_tokenizer(chars: str = CHARS) -> PreTrainedTokenizerFast:
    """The tokenizer: ids 0-3 are <pad> <bos> <eos> <unk>, then one id per character."""
    if len(set(chars)) != len(chars):
        raise ValueError(f"tokenizer characters must be distinct, got {chars!r}")
    vocab = {tok: i for i, tok in enumerate(SPECIALS + tuple(chars))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # decode without spaces between characters
    # BOS is added by the tokenizer itself, so HF and TransformerLens tokenise alike.
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=1024, clean_up_tokenization_spaces=False)
    return fast

