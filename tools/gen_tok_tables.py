"""gen_tok_tables.py - where the Rust tokenizers' Unicode data differs from utf8proc's.

transformers 5's BertTokenizer runs the Rust `tokenizers` pipeline, which
takes its Unicode data from three places: the `unicode_categories` crate
(control, punctuation, non-spacing mark), `unicode-normalization-alignments`
(NFD) and Rust's std (White_Space, lowercase).  core/eval/tokenizer.c (mode
TOK_BERT) asks utf8proc instead, and corrects it with the small table rs_delta
that this script prints.  It probes the installed `tokenizers` one code point
at a time, so it finds what the crates do, not what their docs say.

    .venv/bin/python tools/gen_tok_tables.py          # C table + summary

It also reports, without a table, the other differences core/eval/tokenizer.c
either special-cases (U+11938's missing decomposition, U+0130's full
lowercase) or documents (combining classes, Unicode 16.0 case pairs): see
docs/api.md, "Tokenizers".  Needs libutf8proc (ctypes) and takes ~30 s.
"""
import ctypes
import ctypes.util
import sys

from tokenizers import normalizers, pre_tokenizers

NONE, OTHER, PUNCT, MN = "RS_NONE", "RS_OTHER", "RS_PUNCT", "RS_MN"
# utf8proc_category_t, in enum order
CATS = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
        "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]


class Prop(ctypes.Structure):  # the first fields of utf8proc_property_t
    _fields_ = [("category", ctypes.c_int16), ("combining_class", ctypes.c_int16),
                ("bidi_class", ctypes.c_int16), ("decomp_type", ctypes.c_int16),
                ("decomp_seqindex", ctypes.c_uint16)]


def load_utf8proc():
    name = ctypes.util.find_library("utf8proc")
    if not name:
        sys.exit("libutf8proc not found")
    u = ctypes.CDLL(name)
    u.utf8proc_get_property.restype = ctypes.POINTER(Prop)
    u.utf8proc_tolower.restype = ctypes.c_int32
    u.utf8proc_unicode_version.restype = ctypes.c_char_p
    u.utf8proc_NFD.restype = ctypes.c_void_p
    u.utf8proc_NFD.argtypes = [ctypes.c_char_p]
    return u


def main():
    u = load_utf8proc()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.free.argtypes = [ctypes.c_void_p]

    def cat(cp):
        return CATS[u.utf8proc_get_property(cp).contents.category]

    def ccc(cp):
        return u.utf8proc_get_property(cp).contents.combining_class

    def unfd(c):
        p = u.utf8proc_NFD(c.encode())
        s = ctypes.string_at(p).decode()
        libc.free(p)
        return s

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    nfd = normalizers.NFD()
    lower = normalizers.Lowercase()
    cjk = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True,
                                     strip_accents=False, lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()

    rs, ut = {}, {}  # class as the crates see it / as utf8proc does (None: does not matter)
    nfd_diff, lower_diff, space_diff, cjk_rs = [], [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        ucat = cat(cp)
        dec = nfd.normalize_str(c)
        udec = unfd(c) if cp else c
        if dec != udec:
            nfd_diff.append((cp, dec, udec))
        # crate classes; NUL and U+FFFD are dropped by name, ASCII punctuation by range
        cl = clean.normalize_str(c)
        split = [s for s, _ in pre.pre_tokenize_str("a" + c + "b")]
        if cp in (0, 0xFFFD) or c in "\t\n\r":
            r = None
        elif cl == "":
            r = OTHER
        elif cp >= 128 and split == ["a", c, "b"]:
            r = PUNCT
        elif dec == c and strip.normalize_str(c) == "":
            r = MN
        else:
            r = NONE
        if cp < 128 or cp in (0xFFFD,):
            x = None
        elif ucat in ("Cc", "Cf", "Co"):
            x = OTHER
        elif ucat[0] == "P":
            x = PUNCT
        elif ucat == "Mn" and udec == c:
            x = MN
        else:
            x = NONE
        if ucat == "Mn" and udec != c and r in (MN, NONE):
            x = r = None  # decomposes before the mark test: its own class is never asked
        rs[cp], ut[cp] = r, x
        # White_Space as derived in tokenizer.c: Zs, Zl, Zp, U+0009-000D, U+0085
        is_ws = split == ["a", "b"]
        want_ws = ucat in ("Zs", "Zl", "Zp") or 9 <= cp <= 13 or cp == 0x85
        if is_ws != want_ws:
            space_diff.append(cp)
        low = lower.normalize_str(c)
        ulow = "i\u0307" if cp == 0x130 else chr(u.utf8proc_tolower(cp))
        if low != ulow:
            lower_diff.append((cp, low, ulow, ucat))
        if cjk.normalize_str(c) != c:
            cjk_rs.append(cp)

    delta = [cp for cp in rs if rs[cp] is not None and ut[cp] is not None and rs[cp] != ut[cp]]
    # One range per run of code points the crates give the same class, trimmed
    # to the differing ones: the code points a range covers beyond those get
    # the class they already have.
    ranges = []
    for cp in delta:
        if ranges and ranges[-1][2] == rs[cp] and all(
                rs.get(x) in (rs[cp], None) for x in range(ranges[-1][1] + 1, cp)):
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, rs[cp]])
    print(f"/* {len(delta)} code points in {len(ranges)} ranges; utf8proc "
          f"{u.utf8proc_unicode_version().decode()} */")
    for i in range(0, len(ranges), 3):
        print("    " + " ".join("{0x%04X, 0x%04X, %s}," % tuple(r) for r in ranges[i:i + 3]))
    print("\nNFD differences (cp, tokenizers, utf8proc):",
          [(hex(cp), a, b) for cp, a, b in nfd_diff if cp], file=sys.stderr)
    print("White_Space differences:", [hex(c) for c in space_diff], file=sys.stderr)
    print("lowercase differences (cp, tokenizers, utf8proc, utf8proc category):",
          [(hex(c), a, b, k) for c, a, b, k in lower_diff], file=sys.stderr)
    runs = []
    for cp in cjk_rs:
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    print("CJK ranges spaced out:", [(hex(a), hex(b)) for a, b in runs], file=sys.stderr)
    # combining classes: a mark the normalizer does not reorder has class 0 there
    y_low, y_high = "\u0334", "\u0301"  # classes 1 and 230
    unknown_ccc = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or ccc(cp) == 0 or unfd(chr(cp)) != chr(cp):
            continue
        if ccc(cp) > 1:
            ok = nfd.normalize_str("a" + chr(cp) + y_low) == "a" + y_low + chr(cp)
        else:
            ok = nfd.normalize_str("a" + y_high + chr(cp)) == "a" + chr(cp) + y_high
        if not ok:
            unknown_ccc.append(cp)
    print(f"combining class 0 for the normalizer, not for utf8proc: {len(unknown_ccc)} marks:",
          " ".join("%04X" % c for c in unknown_ccc), file=sys.stderr)


if __name__ == "__main__":
    main()
