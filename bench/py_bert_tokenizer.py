"""py_bert_tokenizer.py - the reference tokenizer's algorithm in pure Python
(transformers' BertTokenizerLegacy semantics, as ../shared/data/golden/README.md
spells them out), the baseline the evaluation benchmark measures against.
On the THUCNews titles it agrees with transformers 5's BertTokenizer too
(docs/api.md, "Tokenizers")."""
import unicodedata

CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in CJK)


def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class BertTokenizer:
    def __init__(self, vocab_path, lower=True):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.lower = lower
        self.unk = self.vocab["[UNK]"]

    def _clean(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD:
                continue
            if ch in "\t\n\r" or ch == " " or unicodedata.category(ch) == "Zs":
                out.append(" ")
                continue
            if unicodedata.category(ch).startswith("C"):
                continue
            out.append(f" {ch} " if _is_cjk(cp) else ch)
        return unicodedata.normalize("NFC", "".join(out))

    def _split_punct(self, word):
        out, cur = [], []
        for ch in word:
            if _is_punct(ch):
                if cur:
                    out.append("".join(cur))
                    cur = []
                out.append(ch)
            else:
                cur.append(ch)
        if cur:
            out.append("".join(cur))
        return out

    def _wordpiece(self, word):
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    cur = self.vocab[piece]
                    break
                end -= 1
            if cur is None:
                return [self.unk]
            ids.append(cur)
            start = end
        return ids

    def tokenize_ids(self, text):
        ids = []
        for word in self._clean(text).split():
            if self.lower:
                word = unicodedata.normalize("NFD", word.lower())
                word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            for piece in self._split_punct(word):
                ids.extend(self._wordpiece(piece))
        return ids
