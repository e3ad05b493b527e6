#!/usr/bin/env python3
"""Build tests/fixtures/tokenizer_golden.jsonl: the expected BERT encodings that
tests/unit/test_tokenizer.c compares with core/data/tokenizer.c, id by id.

Reference: Hugging Face `tokenizers` (the Rust library behind BertTokenizerFast, and what
all-MiniLM-L6-v2's tokenizer.json describes): BertNormalizer + BertPreTokenizer +
WordPiece(max_input_chars_per_word=100, "##") + the [CLS] $A [SEP] $B:1 [SEP]:1 template,
via tokenizers.BertWordPieceTokenizer, with longest_first truncation. This equals
transformers' BertTokenizerFast; the slow Python BertTokenizer differs in a few corners
(listed at the top of core/data/tokenizer.c).

Interpreter: the pip one with `tokenizers` installed (check: python3 -c "import tokenizers").
Command, from the repository root (deterministic: fixed seed, no network):
    python3 tests/reference/make_tokenizer_golden.py tests/fixtures/vocab-uncased.txt \\
        > tests/fixtures/tokenizer_golden.jsonl

Format: one JSON object per line (so any text, tabs and newlines included, is safe):
  {"case": "uncased"|"cased", "a": str, "alen": int, "b": str|null, "blen": int,
   "max_len": int (0 = none), "ids": [...], "type_ids": [...]}
alen/blen are UTF-8 byte lengths, so a reader whose JSON strings are NUL-terminated (cJSON)
still sees texts with U+0000 in full.
"cased" entries use lowercase=False, strip_accents=False on the same vocabulary.
"""
import json
import random
import sys

import tokenizers
from tokenizers import BertWordPieceTokenizer

SEED = 20240607

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How's it going?",
    "I can't believe it's not butter -- really?!",
    "This movie was absolutely wonderful; I'd watch it again.",
    "It's a dull, lifeless and thoroughly unpleasant film.",
    "The company reported revenue of $3.2 billion in Q4 2023, up 12% year-over-year.",
    "Dr. Smith (aged 42) arrived at 10:30 a.m. on Jan. 5th.",
    "E-mail me at john.doe@example.com or visit https://example.org/path?q=1&x=2.",
    "Transformers use self-attention; BERT is bidirectional.",
    "unaffable unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "A man is playing a guitar.",
    "Two dogs run through a field of tall grass.",
    "The cat sat on the mat, and then it slept for hours...",
    "\"Quoted text,\" she said, 'with single quotes too.'",
    "Numbers: 0 1 2 3.14159 1,000,000 -42 +7 1e-9 0x1F 50%",
    "C++ and C# are languages; so is F#. Rust's borrow checker!",
    "naïve café résumé coöperate Ångström Zürich São Paulo Kraków",
    "Ελληνικά: Καλημέρα κόσμε, ΟΔΥΣΣΕΥΣ",
    "Русский текст: Привет, мир! Ёжик в тумане.",
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ไทย: สวัสดีชาวโลก",
    "한국어: 안녕하세요 세계",
    "日本語: こんにちは世界、カタカナ、漢字。",
    "中文：你好，世界！我爱自然语言处理。",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🥰 🫠",
    "Mixed: Hello世界Привет123ABCабв",
    "İstanbul IĞDIR ıi ǅ ß ẞ ﬁ ﬀ Ⅻ ⅻ Ａ ａ",
]

SPECIAL_CHARS = [
    "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f",
    "\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u2060", "\ufeff", "\ufffd", "\ue000",
    "\U000f0000", "\u0378", "\U0001fff0", "\u061c", "\U000e0001",
]
SPACES = [" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a",
          "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "  ", " \t \n "]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("¡¿«»‘’“”„†‡•…‰′″‹›‽⁂、。「」『』【】〜・！？，．：；（）—–‐‒―§¶·")
COMBINING = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0327", "\u0323", "\u0336",
             "\u20dd", "\u0488", "\u093f", "\u0903"]
SCRIPT_RANGES = [
    (0x41, 0x7a), (0xc0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x5ff), (0x600, 0x6ff),
    (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x1e00, 0x1eff), (0x2000, 0x206f),
    (0x2100, 0x214f), (0x2150, 0x218f), (0x2190, 0x21ff), (0x2200, 0x22ff), (0x2460, 0x24ff),
    (0x3000, 0x303f), (0x3040, 0x30ff), (0x3400, 0x4dbf), (0x4e00, 0x9fff), (0xac00, 0xd7a3),
    (0xf900, 0xfaff), (0xfb00, 0xfb4f), (0xfe30, 0xfe4f), (0xff00, 0xffef), (0x10400, 0x1044f),
    (0x1d400, 0x1d7ff), (0x1f300, 0x1faff), (0x20000, 0x2a6df), (0x2b740, 0x2b81f),
    (0x2b820, 0x2b930), (0x2f800, 0x2fa1f), (0x13a0, 0x13ff), (0x1c80, 0x1cbf), (0xa720, 0xa7ff),
    (0x10d40, 0x10d8f), (0x0890, 0x08ff), (0x11000, 0x1107f), (0x13430, 0x1345f),
]


def rand_cp(rng):
    while True:
        if rng.random() < 0.15:
            c = rng.randrange(0x80, 0x110000)
        else:
            lo, hi = rng.choice(SCRIPT_RANGES)
            c = rng.randint(lo, hi)
        if not (0xD800 <= c <= 0xDFFF):
            return chr(c)


def vocab_words(path):
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            w = line.rstrip("\n")
            if w and not w.startswith("[") and w.isalpha():
                words.append(w[2:] if w.startswith("##") else w)
    return words


def english_like(rng, words, n):
    out = []
    for i in range(n):
        w = rng.choice(words)
        r = rng.random()
        if r < 0.1:
            w = w.capitalize()
        elif r < 0.13:
            w = w.upper()
        out.append(w)
        if rng.random() < 0.12:
            out[-1] += rng.choice([",", ".", ";", ":", "!", "?", "'s", "-", "..."])
    return " ".join(out)


def make_texts(rng, words):
    texts = ["", " ", "   ", "\t\n\r", "\u3000\u00a0", "\x00", "\ufffd", "\u200b", "a", "A", ".", "...",
             "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[mask]", "[ CLS ]", "a[MASK]b", "x[SEP]y[CLS]",
             "[[CLS]]", "[CLS", "hello [MASK] world", "ΣΑΣ σας ς", "Σ", "ǲ", "İ", "ı", "K", "Å", "ẞ"]
    texts += SENTENCES
    texts += [s.upper() for s in SENTENCES[:12]]
    # Long words around the 100-character limit (chars, not bytes).
    for n in (99, 100, 101, 150, 400):
        texts.append("a" * n)
        texts.append("é" * n)
        texts.append("ab" * (n // 2) + " end")
        texts.append("start " + "x" * n + " " + "日" * 3)
        texts.append("\u00e9" * (n - 1) + "e\u0301")  # NFD shortens? no: é is 1 char both ways
    texts.append("a" * 100 + "\u0301")   # combining mark stripped after the length is counted? no: before
    texts.append("e\u0301" * 60)         # 120 chars raw, 60 after accent stripping
    texts.append("x" * 99 + "\u200b" * 5 + "y")  # zero-width chars dropped before counting
    # Character soups.
    for _ in range(500):
        n = rng.randint(1, 24)
        texts.append("".join(rand_cp(rng) for _ in range(n)))
    for _ in range(250):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(words))
            elif r < 0.5:
                parts.append(rng.choice(SPECIAL_CHARS))
            elif r < 0.65:
                parts.append(rng.choice(SPACES))
            elif r < 0.8:
                parts.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 5))))
            elif r < 0.9:
                parts.append(rng.choice(words) + rng.choice(COMBINING))
            else:
                parts.append(rand_cp(rng))
        texts.append("".join(parts))
    for _ in range(120):
        texts.append(str(rng.randint(0, 10 ** rng.randint(1, 15))) + rng.choice(["", ".", ",", "%", "th", " km"]) +
                     rng.choice(["", str(rng.random())]))
    for _ in range(400):
        texts.append(english_like(rng, words, rng.randint(1, 40)))
    for _ in range(100):
        s = rng.choice(SENTENCES)
        i = rng.randrange(len(s) + 1)
        texts.append(s[:i] + rng.choice(SPECIAL_CHARS + SPACES + COMBINING) + s[i:])
    return texts


def main():
    vocab = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/vocab-uncased.txt"
    rng = random.Random(SEED)
    words = vocab_words(vocab)
    texts = make_texts(rng, words)
    unc = BertWordPieceTokenizer(vocab, lowercase=True)
    cas = BertWordPieceTokenizer(vocab, lowercase=False, strip_accents=False)
    out = sys.stdout
    n = 0

    def emit(tok, case, a, b, max_len):
        nonlocal n
        if max_len:
            tok.enable_truncation(max_length=max_len, strategy="longest_first")
        else:
            tok.no_truncation()
        e = tok.encode(a, b) if b is not None else tok.encode(a)
        out.write(json.dumps({"case": case, "a": a, "alen": len(a.encode()), "b": b,
                              "blen": len(b.encode()) if b is not None else 0, "max_len": max_len,
                              "ids": e.ids, "type_ids": e.type_ids}, ensure_ascii=True) + "\n")
        n += 1

    for t in texts:
        emit(unc, "uncased", t, None, 0)
    for _ in range(300):  # singles with truncation
        emit(unc, "uncased", rng.choice(texts), None, rng.choice([2, 3, 4, 5, 8, 16, 32]))
    for _ in range(700):  # pairs: lengths around every branch of longest_first
        a = english_like(rng, words, rng.randint(0, 30)) if rng.random() < 0.7 else rng.choice(texts)
        b = english_like(rng, words, rng.randint(0, 30)) if rng.random() < 0.7 else rng.choice(texts)
        emit(unc, "uncased", a, b, rng.choice([0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 24, 32, 64, 128]))
    for t in rng.sample(texts, 300):  # the cased path
        emit(cas, "cased", t, None, 0)
    for _ in range(60):
        emit(cas, "cased", rng.choice(texts), rng.choice(texts), rng.choice([0, 5, 8, 16]))
    print("wrote %d entries (tokenizers %s)" % (n, tokenizers.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
