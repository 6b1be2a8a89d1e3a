"""test_tokenizer_oracle.py - core/tokenizer against transformers 5's two BERT tokenizers.

prunerd's default tokenizer (eval.tokenizer "bert", TOK_BERT) against
transformers' BertTokenizer (the Rust tokenizers pipeline), and its legacy
one ("bert_legacy", TOK_BERT_LEGACY) against BertTokenizerLegacy (the Python
BasicTokenizer + WordpieceTokenizer), both built from the shared vocab, with
do_lower_case on and off.  Token ids are compared, without [CLS]/[SEP], over

- every title of ../shared/data/thucnews/dev.txt (10,000): any difference
  fails;
- hand-picked strings (the golden file's 26 and more): any difference fails;
- every code point of planes 0-3 and 14 that Python's unicodedata (Unicode
  14.0) or utf8proc (15.0, asked through tests/tok_driver) assigns, plus a
  few unassigned ones and noncharacters, each as "a<cp>b" so that dropping,
  splitting, marks and case all show: any difference fails, except the code
  points of ALLOW below, each with the Unicode-version mismatch that
  explains it.

It prints the counts, then every code point where prunerd's default differs
from BertTokenizer or BertTokenizerLegacy, and where BertTokenizer differs
from BertTokenizerLegacy (runs of neighbours with the same outcome merged),
and writes the full list to $PRUNERD_BUILD/tests/tokenizer_oracle_diffs.txt.
It fails, never skips, when ../shared or transformers is missing.

Run through meson (the .venv in the source root has transformers 5):
    meson test -C build test_tokenizer_oracle --print-errorlogs
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import Tally, shared  # noqa: E402

t = Tally("test_tokenizer_oracle")

# Code points where prunerd's default may differ from BertTokenizer, or its
# legacy mode from BertTokenizerLegacy, because the libraries carry different
# Unicode versions ({cp: (mode, reason)}).  Empty: core/eval/tokenizer.c corrects
# utf8proc 15.0 to Python's 14.0 (uni15_new) and to the tokenizers crate's
# 8.0 categories (rs_delta), and every such difference left is in code points
# outside this test or invisible in ids with this vocab (see docs/api.md,
# "Tokenizers"; the last check below keeps that claim honest).
ALLOW = {}

# Beyond the golden file's 26: where the two transformers classes part.
EXTRA = [
    "a[CLS]b", "[UNK]", "[unk]", "x [MASK] y", "[SEP", "[PAD][PAD]", "ΑΣ[SEP]ΑΣ", "e\u0301[CLS]",
    "e\u0301", "E\u0301\u0301", "a\u0301\u1ac1b", "a\u1ac1\u0301b", "İstanbul İ", "ΌΣΟΣ ΟΔΟΣ.",
    "\u037e;\u0387", "\u212b\u2126\u212a", "豈更車 \uf900", "\U0002b820\U0002b91f\U0002b920",
    "a\u0378b\U000e0080c", "\u1c89\u1c8a\ua7cb", "ǅǄǆ", "ﬁ ﬂ ẞ ß", "한국어 \u1100\u1161\u11a8",
    "a\u0345b \u0344 \u0f73", "中\u3000文\u00a0x\u2028y\u0085z\u001cw\u000bv", "soft\u00adhyphen",
    "\ufeffbom", "tab\tnl\nr\rend", "A" * 101, "a" * 100, "ÀÉÎÕÜ ＡＢＣ ｆｕｌｌ", "👍🏽 \U000e0041",
    "\u0890\u166d\U000111c9\u1734", "\U0001e95e\U0001e944", "\U00011938", "Ǆ\u0301",
    "price：￥１００，涨幅５％！", "《新闻》“引号”【括号】", "\u200b\u200c\u200d\u2060", "",
]
# Unassigned everywhere here (or noncharacters, or planes 15-16 private use).
UNASSIGNED = [0x0378, 0x0380, 0x2FE0, 0xFFFE, 0xFFFF, 0x1FFFE, 0x2FFFF, 0x3FFFD, 0xE0080,
              0xE01F0, 0xEFFFD, 0xF0000, 0xFFFFD, 0x100000, 0x10FFFD, 0x10FFFF,
              # assigned in Unicode 16.0, which only Rust's lowercase tables know
              0x1C89, 0xA7CB, 0x10D50, 0x16EA0]
PLANES = ((0x0000, 0x3FFFF), (0xE0000, 0xEFFFF))


def fail_now(msg):
    print(f"FAIL {msg}", flush=True)
    t.failed += 1
    t.done()


try:
    import transformers
    from transformers import BertTokenizer, BertTokenizerLegacy
except ImportError as e:
    fail_now(f"transformers 5 (BertTokenizer, BertTokenizerLegacy) is not importable from "
             f"{sys.executable}: {e}")

build = os.environ.get("PRUNERD_BUILD")
if not build:
    fail_now("PRUNERD_BUILD is not set (run through meson test)")
driver = os.path.join(build, "tests", "tok_driver")
if not os.access(driver, os.X_OK):
    fail_now(f"{driver} is missing (build the project first)")

vocab = shared("data", "vocab", "bert-base-chinese-vocab.txt")
dev = shared("data", "thucnews", "dev.txt")
golden = shared("data", "golden", "tokenize-dev.jsonl")
with open(vocab, encoding="utf-8") as f:
    id_to_token = [line.rstrip("\n") for line in f]


def run_driver(*args, stdin=None):
    p = subprocess.run([driver, *args], stdin=stdin, capture_output=True)
    if p.returncode != 0:
        fail_now(f"tok_driver {' '.join(args)} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    return p.stdout.decode().splitlines()


# ---- inputs ----
with open(dev, encoding="utf-8") as f:
    titles = [line.rstrip("\n").rsplit("\t", 1)[0] for line in f if line.strip()]
with open(golden, encoding="utf-8") as f:
    tricky = [json.loads(line)["text"] for _, line in zip(range(26), f)]
tricky += EXTRA

cps = set()
for lo, hi in PLANES:
    cps.update(cp for cp in range(lo, hi + 1)
               if unicodedata.category(chr(cp)) not in ("Cn", "Cs"))
    cps.update(int(x) for x in run_driver("--assigned", str(lo), str(hi)))
new15 = {cp for cp in cps if unicodedata.category(chr(cp)) == "Cn"}
cps = sorted(cps | set(UNASSIGNED))
cp_texts = ["a" + chr(cp) + "b" for cp in cps]
texts = titles + tricky + cp_texts
n_titles, n_tricky = len(titles), len(tricky)
print(f"transformers {transformers.__version__}, Python unicodedata {unicodedata.unidata_version}; "
      f"{n_titles} titles, {n_tricky} hand-picked strings, {len(cps)} code points "
      f"({len(new15)} assigned by utf8proc only)", flush=True)
t.check(n_titles == 10000, f"dev.txt: expected 10000 titles, read {n_titles}")

fd, texts_path = tempfile.mkstemp(prefix="tok_oracle.", suffix=".jsonl")
with os.fdopen(fd, "w", encoding="utf-8") as f:
    for s in texts:
        f.write(json.dumps(s) + "\n")

# ---- tokenize ----
results = {}  # (lower, who) -> list of id lists; who: ours_bert, ours_legacy, bert, legacy
timings = {}
for lower in (True, False):
    t0 = time.monotonic()
    bert = BertTokenizer(vocab=vocab, do_lower_case=lower)  # vocab_file= would be ignored
    legacy = BertTokenizerLegacy(vocab_file=vocab, do_lower_case=lower)
    t.check(bert.vocab_size == len(id_to_token) and legacy.vocab_size == len(id_to_token),
            f"vocab sizes: BertTokenizer {bert.vocab_size}, BertTokenizerLegacy "
            f"{legacy.vocab_size}, file {len(id_to_token)}")
    norm = json.loads(bert.backend_tokenizer.normalizer.__getstate__())
    t.check(norm == {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                     "strip_accents": None, "lowercase": lower},
            f"BertTokenizer's normalizer: {norm}")
    t.check(legacy.basic_tokenizer.tokenize_chinese_chars and
            legacy.basic_tokenizer.strip_accents is None,
            "BertTokenizerLegacy: tokenize_chinese_chars on, strip_accents None")
    enc = bert.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    results[lower, "bert"] = [e.ids for e in enc]
    # the public call gives what the backend does (checked on the titles)
    public = bert(titles, add_special_tokens=False)["input_ids"]
    t.check(public == results[lower, "bert"][:n_titles],
            "BertTokenizer(...) and its backend_tokenizer disagree on the titles")
    t1 = time.monotonic()
    results[lower, "legacy"] = legacy(texts, add_special_tokens=False)["input_ids"]
    t2 = time.monotonic()
    for mode in ("bert", "bert_legacy"):
        with open(texts_path, "rb") as f:
            out = run_driver(vocab, mode, "lower" if lower else "cased", stdin=f)
        t.check(len(out) == len(texts), f"tok_driver {mode}: {len(out)} lines for {len(texts)}")
        results[lower, "ours_" + mode.replace("bert_", "")] = [json.loads(x) for x in out]
    t3 = time.monotonic()
    timings[lower] = (t1 - t0, t2 - t1, t3 - t2)
os.unlink(texts_path)
for lower, (b, l, o) in timings.items():
    print(f"lower={lower}: BertTokenizer {b:.1f} s, BertTokenizerLegacy {l:.1f} s, "
          f"prunerd (both modes, {len(texts)} texts each) {o:.2f} s")


# ---- compare ----
def toks(ids):
    if isinstance(ids, dict):
        return f"error: {ids.get('error')}"
    return "[" + " ".join(id_to_token[i] if 0 <= i < len(id_to_token) else f"#{i}"
                          for i in ids) + "]"


def describe(cp):
    name = unicodedata.name(chr(cp), "")
    if not name:
        name = "(unassigned in 14.0)" if cp in new15 else "(unassigned)"
    return f"U+{cp:04X} {name} [{unicodedata.category(chr(cp))}]"


PAIRS = (("ours", "bert", "prunerd default vs BertTokenizer"),
         ("ours_legacy", "legacy", "prunerd legacy vs BertTokenizerLegacy"),
         ("bert", "legacy", "BertTokenizer vs BertTokenizerLegacy"),
         ("ours", "legacy", "prunerd default vs BertTokenizerLegacy"))
extra = set(UNASSIGNED)
report = []
for lower in (True, False):
    r = {k[1]: v for k, v in results.items() if k[0] == lower}
    r["ours"] = r["ours_bert"]
    seen = {}  # code point diffs of a pair, to say when two pairs' lists are the same
    for a, b, label in PAIRS:
        must_agree = a.startswith("ours") and not (a == "ours" and b == "legacy")
        # titles and hand-picked strings
        for lo, hi, what in ((0, n_titles, "titles"), (n_titles, n_titles + n_tricky, "strings")):
            bad = [i for i in range(lo, hi) if r[a][i] != r[b][i]]
            if must_agree:
                t.check(not bad, f"{label}, lower={lower}: {len(bad)} {what} differ")
            report.append(f"{label}, lower={lower}: {len(bad)} of {hi - lo} {what} differ"
                          + (":" if bad else ""))
            report += [f"    {texts[i]!r}: {a} {toks(r[a][i])}, {b} {toks(r[b][i])}"
                       for i in bad[:10 if what == "titles" else len(bad)]]
        # code points
        base = n_titles + n_tricky
        diff = [(j, r[a][base + j], r[b][base + j]) for j in range(len(cps))
                if r[a][base + j] != r[b][base + j]]
        allowed = [d for d in diff if must_agree and cps[d[0]] in ALLOW]
        if must_agree:
            unexplained = [d for d in diff if cps[d[0]] not in ALLOW]
            t.check(not unexplained, f"{label}, lower={lower}: {len(unexplained)} code points "
                                     f"differ (and are not in ALLOW)")
        report.append(f"{label}, lower={lower}: {len(diff)} of {len(cps)} code points differ"
                      + (f" ({len(allowed)} allowed)" if allowed else ""))
        same_as = [lab for lab, d in seen.items() if d == diff]
        seen[label] = diff
        if diff and same_as:
            report[-1] += f": the list of {same_as[0]}"
            continue
        report[-1] += ":" if diff else ""
        runs = []  # [first index, last index, (a's ids, b's ids)]: list neighbours, same outcome
        for j, x, y in diff:
            if runs and runs[-1][1] == j - 1 and runs[-1][2] == (x, y) and \
                    (cps[j] in extra) == (cps[j - 1] in extra) and cps[j] not in ALLOW:
                runs[-1][1] = j
            else:
                runs.append([j, j, (x, y)])
        for first, last, (x, y) in runs:
            span = describe(cps[first]) if first == last else \
                f"{describe(cps[first])} .. {describe(cps[last])} ({last - first + 1})"
            why = f"  allowed: {ALLOW[cps[first]][1]}" if cps[first] in ALLOW else ""
            report.append(f"    {span}: {a} {toks(x)}, {b} {toks(y)}{why}")

# The NFD reordering prunerd does with utf8proc's combining classes (the
# crate's are Unicode 9.0) cannot show in ids while no token has a mark.
marks = [tok for tok in id_to_token if any(unicodedata.combining(c) for c in tok)]
t.check(not marks, f"the vocab holds tokens with combining marks: {marks[:10]}")

print("\n".join(report))
out_path = os.path.join(build, "tests", "tokenizer_oracle_diffs.txt")
try:
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(report) + "\n")
    print(f"(written to {out_path})")
except OSError as e:
    print(f"cannot write {out_path}: {e}")
t.done()
