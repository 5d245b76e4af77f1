"""WordPiece (BERT) tokenization in pure Python, equal to Hugging Face `tokenizers` on a BERT tokenizer.json.

For where `tokenizers` cannot run (Pyodide); only the standard library. HF's steps, in HF's order:
1. added tokens ([CLS], [SEP], [MASK] … with "normalized": false) are cut out of the raw text whole,
   leftmost first and longest at a tie;
2. BertNormalizer, character by character: clean_text drops NUL, U+FFFD and "other" characters
   (general category C: Cc, Cf, Cs, Co, Cn — tab, newline and carriage return excepted) and turns
   white space into " "; handle_chinese_chars puts spaces around CJK ideographs; strip_accents
   (default: when lowercasing) decomposes (NFD) and drops nonspacing marks (Mn); lowercase maps each
   character alone (so a final Σ becomes σ, not ς, unlike str.lower());
3. BertPreTokenizer: split at white space (dropped) and around each punctuation character (ASCII
   punctuation or general category P);
4. WordPiece: each word of at most max_input_chars_per_word characters becomes its greedy longest
   vocabulary pieces ("##" before all but the first), or one [UNK] if any part has no piece;
5. the template: [CLS] ids [SEP], the ids truncated first to fit max_length.

The Unicode data are Python's `unicodedata` (Unicode 14.0 in CPython 3.11) except where the Rust
tables `tokenizers` uses say otherwise: _HF_EXCEPTIONS lists those code points, found by comparing
every code point (tests/fixtures/make_wordpiece_fixtures.py prints the table; tests/test_wordpiece.py
checks every code point again).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from .errors import InvalidModelError, ModelNotFoundError, UnsupportedModelError

# --- tables (printed by tests/fixtures/make_wordpiece_fixtures.py tables) ---------------------------
_OTHER: tuple[tuple[int, int], ...] = (  # clean_text drops these (HF's is_other; unassigned ones are kept)
    (0x1, 0x8), (0xB, 0xC), (0xE, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C),
    (0x6DD, 0x6DD), (0x70F, 0x70F), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064),
    (0x2066, 0x206F), (0xE000, 0xF8FF), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD),
)
_NONSPACING: tuple[tuple[int, int], ...] = (  # strip_accents drops these after NFD (HF's Mn)
    (0x300, 0x36F), (0x483, 0x487), (0x591, 0x5BD), (0x5BF, 0x5BF), (0x5C1, 0x5C2), (0x5C4, 0x5C5), (0x5C7, 0x5C7),
    (0x610, 0x61A), (0x64B, 0x65F), (0x670, 0x670), (0x6D6, 0x6DC), (0x6DF, 0x6E4), (0x6E7, 0x6E8), (0x6EA, 0x6ED),
    (0x711, 0x711), (0x730, 0x74A), (0x7A6, 0x7B0), (0x7EB, 0x7F3), (0x816, 0x819), (0x81B, 0x823), (0x825, 0x827),
    (0x829, 0x82D), (0x859, 0x85B), (0x8E3, 0x902), (0x93A, 0x93A), (0x93C, 0x93C), (0x941, 0x948), (0x94D, 0x94D),
    (0x951, 0x957), (0x962, 0x963), (0x981, 0x981), (0x9BC, 0x9BC), (0x9C1, 0x9C4), (0x9CD, 0x9CD), (0x9E2, 0x9E3),
    (0xA01, 0xA02), (0xA3C, 0xA3C), (0xA41, 0xA42), (0xA47, 0xA48), (0xA4B, 0xA4D), (0xA51, 0xA51), (0xA70, 0xA71),
    (0xA75, 0xA75), (0xA81, 0xA82), (0xABC, 0xABC), (0xAC1, 0xAC5), (0xAC7, 0xAC8), (0xACD, 0xACD), (0xAE2, 0xAE3),
    (0xB01, 0xB01), (0xB3C, 0xB3C), (0xB3F, 0xB3F), (0xB41, 0xB44), (0xB4D, 0xB4D), (0xB56, 0xB56), (0xB62, 0xB63),
    (0xB82, 0xB82), (0xBC0, 0xBC0), (0xBCD, 0xBCD), (0xC00, 0xC00), (0xC3E, 0xC40), (0xC46, 0xC48), (0xC4A, 0xC4D),
    (0xC55, 0xC56), (0xC62, 0xC63), (0xC81, 0xC81), (0xCBC, 0xCBC), (0xCBF, 0xCBF), (0xCC6, 0xCC6), (0xCCC, 0xCCD),
    (0xCE2, 0xCE3), (0xD01, 0xD01), (0xD41, 0xD44), (0xD4D, 0xD4D), (0xD62, 0xD63), (0xDCA, 0xDCA), (0xDD2, 0xDD4),
    (0xDD6, 0xDD6), (0xE31, 0xE31), (0xE34, 0xE3A), (0xE47, 0xE4E), (0xEB1, 0xEB1), (0xEB4, 0xEB9), (0xEBB, 0xEBC),
    (0xEC8, 0xECD), (0xF18, 0xF19), (0xF35, 0xF35), (0xF37, 0xF37), (0xF39, 0xF39), (0xF71, 0xF7E), (0xF80, 0xF84),
    (0xF86, 0xF87), (0xF8D, 0xF97), (0xF99, 0xFBC), (0xFC6, 0xFC6), (0x102D, 0x1030), (0x1032, 0x1037),
    (0x1039, 0x103A), (0x103D, 0x103E), (0x1058, 0x1059), (0x105E, 0x1060), (0x1071, 0x1074), (0x1082, 0x1082),
    (0x1085, 0x1086), (0x108D, 0x108D), (0x109D, 0x109D), (0x135D, 0x135F), (0x1712, 0x1714), (0x1732, 0x1734),
    (0x1752, 0x1753), (0x1772, 0x1773), (0x17B4, 0x17B5), (0x17B7, 0x17BD), (0x17C6, 0x17C6), (0x17C9, 0x17D3),
    (0x17DD, 0x17DD), (0x180B, 0x180D), (0x18A9, 0x18A9), (0x1920, 0x1922), (0x1927, 0x1928), (0x1932, 0x1932),
    (0x1939, 0x193B), (0x1A17, 0x1A18), (0x1A1B, 0x1A1B), (0x1A56, 0x1A56), (0x1A58, 0x1A5E), (0x1A60, 0x1A60),
    (0x1A62, 0x1A62), (0x1A65, 0x1A6C), (0x1A73, 0x1A7C), (0x1A7F, 0x1A7F), (0x1AB0, 0x1ABD), (0x1B00, 0x1B03),
    (0x1B34, 0x1B34), (0x1B36, 0x1B3A), (0x1B3C, 0x1B3C), (0x1B42, 0x1B42), (0x1B6B, 0x1B73), (0x1B80, 0x1B81),
    (0x1BA2, 0x1BA5), (0x1BA8, 0x1BA9), (0x1BAB, 0x1BAD), (0x1BE6, 0x1BE6), (0x1BE8, 0x1BE9), (0x1BED, 0x1BED),
    (0x1BEF, 0x1BF1), (0x1C2C, 0x1C33), (0x1C36, 0x1C37), (0x1CD0, 0x1CD2), (0x1CD4, 0x1CE0), (0x1CE2, 0x1CE8),
    (0x1CED, 0x1CED), (0x1CF4, 0x1CF4), (0x1CF8, 0x1CF9), (0x1DC0, 0x1DF5), (0x1DFC, 0x1DFF), (0x20D0, 0x20DC),
    (0x20E1, 0x20E1), (0x20E5, 0x20F0), (0x2CEF, 0x2CF1), (0x2D7F, 0x2D7F), (0x2DE0, 0x2DFF), (0x302A, 0x302D),
    (0x3099, 0x309A), (0xA66F, 0xA66F), (0xA674, 0xA67D), (0xA69E, 0xA69F), (0xA6F0, 0xA6F1), (0xA802, 0xA802),
    (0xA806, 0xA806), (0xA80B, 0xA80B), (0xA825, 0xA826), (0xA8C4, 0xA8C4), (0xA8E0, 0xA8F1), (0xA926, 0xA92D),
    (0xA947, 0xA951), (0xA980, 0xA982), (0xA9B3, 0xA9B3), (0xA9B6, 0xA9B9), (0xA9BC, 0xA9BC), (0xA9E5, 0xA9E5),
    (0xAA29, 0xAA2E), (0xAA31, 0xAA32), (0xAA35, 0xAA36), (0xAA43, 0xAA43), (0xAA4C, 0xAA4C), (0xAA7C, 0xAA7C),
    (0xAAB0, 0xAAB0), (0xAAB2, 0xAAB4), (0xAAB7, 0xAAB8), (0xAABE, 0xAABF), (0xAAC1, 0xAAC1), (0xAAEC, 0xAAED),
    (0xAAF6, 0xAAF6), (0xABE5, 0xABE5), (0xABE8, 0xABE8), (0xABED, 0xABED), (0xFB1E, 0xFB1E), (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F), (0x101FD, 0x101FD), (0x102E0, 0x102E0), (0x10376, 0x1037A), (0x10A01, 0x10A03),
    (0x10A05, 0x10A06), (0x10A0C, 0x10A0F), (0x10A38, 0x10A3A), (0x10A3F, 0x10A3F), (0x10AE5, 0x10AE6),
    (0x11001, 0x11001), (0x11038, 0x11046), (0x1107F, 0x11081), (0x110B3, 0x110B6), (0x110B9, 0x110BA),
    (0x11100, 0x11102), (0x11127, 0x1112B), (0x1112D, 0x11134), (0x11173, 0x11173), (0x11180, 0x11181),
    (0x111B6, 0x111BE), (0x111CA, 0x111CC), (0x1122F, 0x11231), (0x11234, 0x11234), (0x11236, 0x11237),
    (0x112DF, 0x112DF), (0x112E3, 0x112EA), (0x11300, 0x11301), (0x1133C, 0x1133C), (0x11340, 0x11340),
    (0x11366, 0x1136C), (0x11370, 0x11374), (0x114B3, 0x114B8), (0x114BA, 0x114BA), (0x114BF, 0x114C0),
    (0x114C2, 0x114C3), (0x115B2, 0x115B5), (0x115BC, 0x115BD), (0x115BF, 0x115C0), (0x115DC, 0x115DD),
    (0x11633, 0x1163A), (0x1163D, 0x1163D), (0x1163F, 0x11640), (0x116AB, 0x116AB), (0x116AD, 0x116AD),
    (0x116B0, 0x116B5), (0x116B7, 0x116B7), (0x1171D, 0x1171F), (0x11722, 0x11725), (0x11727, 0x1172B),
    (0x16AF0, 0x16AF4), (0x16B30, 0x16B36), (0x16F8F, 0x16F92), (0x1BC9D, 0x1BC9E), (0x1D167, 0x1D169),
    (0x1D17B, 0x1D182), (0x1D185, 0x1D18B), (0x1D1AA, 0x1D1AD), (0x1D242, 0x1D244), (0x1DA00, 0x1DA36),
    (0x1DA3B, 0x1DA6C), (0x1DA75, 0x1DA75), (0x1DA84, 0x1DA84), (0x1DA9B, 0x1DA9F), (0x1DAA1, 0x1DAAF),
    (0x1E8D0, 0x1E8D6), (0xE0100, 0xE01EF),
)
_PUNCTUATION: tuple[tuple[int, int], ...] = (  # BertPreTokenizer isolates these (beyond ASCII punctuation)
    (0xA1, 0xA1), (0xA7, 0xA7), (0xAB, 0xAB), (0xB6, 0xB7), (0xBB, 0xBB), (0xBF, 0xBF), (0x37E, 0x37E),
    (0x387, 0x387), (0x55A, 0x55F), (0x589, 0x58A), (0x5BE, 0x5BE), (0x5C0, 0x5C0), (0x5C3, 0x5C3), (0x5C6, 0x5C6),
    (0x5F3, 0x5F4), (0x609, 0x60A), (0x60C, 0x60D), (0x61B, 0x61B), (0x61E, 0x61F), (0x66A, 0x66D), (0x6D4, 0x6D4),
    (0x700, 0x70D), (0x7F7, 0x7F9), (0x830, 0x83E), (0x85E, 0x85E), (0x964, 0x965), (0x970, 0x970), (0xAF0, 0xAF0),
    (0xDF4, 0xDF4), (0xE4F, 0xE4F), (0xE5A, 0xE5B), (0xF04, 0xF12), (0xF14, 0xF14), (0xF3A, 0xF3D), (0xF85, 0xF85),
    (0xFD0, 0xFD4), (0xFD9, 0xFDA), (0x104A, 0x104F), (0x10FB, 0x10FB), (0x1360, 0x1368), (0x1400, 0x1400),
    (0x166D, 0x166E), (0x169B, 0x169C), (0x16EB, 0x16ED), (0x1735, 0x1736), (0x17D4, 0x17D6), (0x17D8, 0x17DA),
    (0x1800, 0x180A), (0x1944, 0x1945), (0x1A1E, 0x1A1F), (0x1AA0, 0x1AA6), (0x1AA8, 0x1AAD), (0x1B5A, 0x1B60),
    (0x1BFC, 0x1BFF), (0x1C3B, 0x1C3F), (0x1C7E, 0x1C7F), (0x1CC0, 0x1CC7), (0x1CD3, 0x1CD3), (0x2010, 0x2027),
    (0x2030, 0x2043), (0x2045, 0x2051), (0x2053, 0x205E), (0x207D, 0x207E), (0x208D, 0x208E), (0x2308, 0x230B),
    (0x2329, 0x232A), (0x2768, 0x2775), (0x27C5, 0x27C6), (0x27E6, 0x27EF), (0x2983, 0x2998), (0x29D8, 0x29DB),
    (0x29FC, 0x29FD), (0x2CF9, 0x2CFC), (0x2CFE, 0x2CFF), (0x2D70, 0x2D70), (0x2E00, 0x2E2E), (0x2E30, 0x2E42),
    (0x3001, 0x3003), (0x3008, 0x3011), (0x3014, 0x301F), (0x3030, 0x3030), (0x303D, 0x303D), (0x30A0, 0x30A0),
    (0x30FB, 0x30FB), (0xA4FE, 0xA4FF), (0xA60D, 0xA60F), (0xA673, 0xA673), (0xA67E, 0xA67E), (0xA6F2, 0xA6F7),
    (0xA874, 0xA877), (0xA8CE, 0xA8CF), (0xA8F8, 0xA8FA), (0xA8FC, 0xA8FC), (0xA92E, 0xA92F), (0xA95F, 0xA95F),
    (0xA9C1, 0xA9CD), (0xA9DE, 0xA9DF), (0xAA5C, 0xAA5F), (0xAADE, 0xAADF), (0xAAF0, 0xAAF1), (0xABEB, 0xABEB),
    (0xFD3E, 0xFD3F), (0xFE10, 0xFE19), (0xFE30, 0xFE52), (0xFE54, 0xFE61), (0xFE63, 0xFE63), (0xFE68, 0xFE68),
    (0xFE6A, 0xFE6B), (0xFF01, 0xFF03), (0xFF05, 0xFF0A), (0xFF0C, 0xFF0F), (0xFF1A, 0xFF1B), (0xFF1F, 0xFF20),
    (0xFF3B, 0xFF3D), (0xFF3F, 0xFF3F), (0xFF5B, 0xFF5B), (0xFF5D, 0xFF5D), (0xFF5F, 0xFF65), (0x10100, 0x10102),
    (0x1039F, 0x1039F), (0x103D0, 0x103D0), (0x1056F, 0x1056F), (0x10857, 0x10857), (0x1091F, 0x1091F),
    (0x1093F, 0x1093F), (0x10A50, 0x10A58), (0x10A7F, 0x10A7F), (0x10AF0, 0x10AF6), (0x10B39, 0x10B3F),
    (0x10B99, 0x10B9C), (0x11047, 0x1104D), (0x110BB, 0x110BC), (0x110BE, 0x110C1), (0x11140, 0x11143),
    (0x11174, 0x11175), (0x111C5, 0x111C9), (0x111CD, 0x111CD), (0x111DB, 0x111DB), (0x111DD, 0x111DF),
    (0x11238, 0x1123D), (0x112A9, 0x112A9), (0x114C6, 0x114C6), (0x115C1, 0x115D7), (0x11641, 0x11643),
    (0x1173C, 0x1173E), (0x12470, 0x12474), (0x16A6E, 0x16A6F), (0x16AF5, 0x16AF5), (0x16B37, 0x16B3B),
    (0x16B44, 0x16B44), (0x1BC9F, 0x1BC9F), (0x1DA87, 0x1DA8B),
)
# clean_text makes these ' ', BertPreTokenizer splits at them (Rust's char::is_whitespace):
_WHITE_SPACE = (
    '\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002'
    '\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000'
)
_NFD: dict[int, str] = {  # where HF's NFD (then strip_accents) differs from unicodedata's
    0x11938: '𑤸',
}
_LOWER: dict[int, str] = {  # where HF's lowercase differs from str.lower
    0x1C89: '\u1c8a', 0xA7CB: 'ɤ', 0xA7CC: '\ua7cd', 0xA7CE: '\ua7cf', 0xA7D2: 'ꟓ', 0xA7D4: 'ꟕ', 0xA7DA: '\ua7db',
    0xA7DC: 'ƛ', 0x10D50: '\U00010d70', 0x10D51: '\U00010d71', 0x10D52: '\U00010d72', 0x10D53: '\U00010d73',
    0x10D54: '\U00010d74', 0x10D55: '\U00010d75', 0x10D56: '\U00010d76', 0x10D57: '\U00010d77',
    0x10D58: '\U00010d78', 0x10D59: '\U00010d79', 0x10D5A: '\U00010d7a', 0x10D5B: '\U00010d7b',
    0x10D5C: '\U00010d7c', 0x10D5D: '\U00010d7d', 0x10D5E: '\U00010d7e', 0x10D5F: '\U00010d7f',
    0x10D60: '\U00010d80', 0x10D61: '\U00010d81', 0x10D62: '\U00010d82', 0x10D63: '\U00010d83',
    0x10D64: '\U00010d84', 0x10D65: '\U00010d85', 0x16EA0: '\U00016ebb', 0x16EA1: '\U00016ebc',
    0x16EA2: '\U00016ebd', 0x16EA3: '\U00016ebe', 0x16EA4: '\U00016ebf', 0x16EA5: '\U00016ec0',
    0x16EA6: '\U00016ec1', 0x16EA7: '\U00016ec2', 0x16EA8: '\U00016ec3', 0x16EA9: '\U00016ec4',
    0x16EAA: '\U00016ec5', 0x16EAB: '\U00016ec6', 0x16EAC: '\U00016ec7', 0x16EAD: '\U00016ec8',
    0x16EAE: '\U00016ec9', 0x16EAF: '\U00016eca', 0x16EB0: '\U00016ecb', 0x16EB1: '\U00016ecc',
    0x16EB2: '\U00016ecd', 0x16EB3: '\U00016ece', 0x16EB4: '\U00016ecf', 0x16EB5: '\U00016ed0',
    0x16EB6: '\U00016ed1', 0x16EB7: '\U00016ed2', 0x16EB8: '\U00016ed3',
}
# --- end of tables ---------------------------------------------------------------------------------

_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))  # HF's is_chinese_char (not all of CJK)
_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"  # Rust's is_ascii_punctuation (symbols too)


def _class(ranges) -> str:
    """Ranges → the inside of a `re` character class."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_SPACE_CLASS = _class((ord(c), ord(c)) for c in _WHITE_SPACE)
_PUNCT_CLASS = re.escape(_ASCII_PUNCTUATION) + _class(_PUNCTUATION)
_DROPPED = re.compile(f"[\\x00\\ufffd{_class(_OTHER)}]")
_SPACE = re.compile(f"[{_SPACE_CLASS}]")
_CJK_CHAR = re.compile(f"([{_class(_CJK)}])")
_MARK = re.compile(f"[{_class(_NONSPACING)}]")
_NFD_SPECIAL = re.compile("([" + "".join(map(chr, _NFD)) + "])") if _NFD else None
_LOWER_SPECIAL = re.compile("[" + "".join(map(chr, _LOWER)) + "]") if _LOWER else None
_WORD = re.compile(f"[{_PUNCT_CLASS}]|[^{_PUNCT_CLASS}{_SPACE_CLASS}]+")  # BertPreTokenizer's words


# --- normalizer ------------------------------------------------------------------------------------


def _nfd(text: str) -> str:
    """NFD as HF's tables have it (_NFD: the code points they decompose otherwise)."""
    if _NFD_SPECIAL is None or not _NFD_SPECIAL.search(text):
        return unicodedata.normalize("NFD", text)
    parts = _NFD_SPECIAL.split(text)  # odd items are the special characters
    return "".join(_NFD[ord(p)] if i % 2 else unicodedata.normalize("NFD", p) for i, p in enumerate(parts))


def _lowercase(text: str) -> str:
    """Each character lowercased alone, as HF does (str.lower() would make a final Σ a ς)."""
    if _LOWER_SPECIAL is None or not _LOWER_SPECIAL.search(text):
        return "".join(map(str.lower, text))
    return "".join(_LOWER.get(ord(c)) or c.lower() for c in text)


class BertNormalizer:
    def __init__(self, clean_text: bool = True, handle_chinese_chars: bool = True, strip_accents: bool | None = None,
                 lowercase: bool = True) -> None:
        self.clean_text, self.handle_chinese_chars, self.lowercase = clean_text, handle_chinese_chars, lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents

    def __call__(self, text: str) -> str:
        if self.clean_text:
            text = _SPACE.sub(" ", _DROPPED.sub("", text))
        if self.handle_chinese_chars:
            text = _CJK_CHAR.sub(r" \1 ", text)
        if self.strip_accents:
            text = _MARK.sub("", _nfd(text))
        if self.lowercase:
            text = _lowercase(text)
        return text


# --- pre-tokenizer ---------------------------------------------------------------------------------


def pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: words split at white space (dropped) and around punctuation (kept, one a word)."""
    return _WORD.findall(text)


# --- the tokenizer ---------------------------------------------------------------------------------


class WordPieceTokenizer:
    """A BERT tokenizer.json (WordPiece model, BertNormalizer, BertPreTokenizer, [CLS] $A [SEP])."""

    def __init__(self, tokenizer_json: dict) -> None:
        try:
            self._build(tokenizer_json)
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidModelError(f"tokenizer.json is not a WordPiece tokenizer ({type(e).__name__}: {e}); "
                                    "convert the model again ('nomoat convert').") from e

    def _build(self, tj: dict) -> None:
        model = tj["model"]
        if model.get("type") != "WordPiece":
            raise UnsupportedModelError(f"tokenizer.json's model is {model.get('type')!r}, not WordPiece.")
        self.vocab: dict[str, int] = dict(model["vocab"])
        self.vocab_size = len(self.vocab)
        self.unk_id = self.vocab[model.get("unk_token", "[UNK]")]
        self.prefix: str = model.get("continuing_subword_prefix", "##")
        self.max_word_chars: int = int(model.get("max_input_chars_per_word", 100))
        self._longest = max(map(len, self.vocab))

        norm = tj.get("normalizer") or {}
        if norm.get("type") != "BertNormalizer":
            raise UnsupportedModelError(f"tokenizer.json's normalizer is {norm.get('type')!r}, not BertNormalizer.")
        self.normalize = BertNormalizer(norm.get("clean_text", True), norm.get("handle_chinese_chars", True),
                                        norm.get("strip_accents"), norm.get("lowercase", True))
        if (tj.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
            raise UnsupportedModelError("tokenizer.json's pre_tokenizer is not BertPreTokenizer.")

        added = tj.get("added_tokens", [])
        if any(a.get(k) for a in added for k in ("normalized", "lstrip", "rstrip", "single_word")):
            raise UnsupportedModelError("The pure-Python WordPiece tokenizer keeps added tokens only as raw, "
                                        "exact text.")
        self._added = {a["content"]: a["id"] for a in added if a["content"]}
        alternatives = sorted(self._added, key=len, reverse=True)  # at one position, the longest first
        self._added_re = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

        post = tj.get("post_processor") or {}
        if post.get("type") == "TemplateProcessing":
            single = post["single"]
            names = [s["SpecialToken"]["id"] if "SpecialToken" in s else "$A" for s in single]
            if len(names) != 3 or names[1] != "$A":
                raise UnsupportedModelError(f"tokenizer.json's template {names} is not [CLS] $A [SEP].")
            specials = post["special_tokens"]
            self.cls_id, self.sep_id = (specials[names[0]]["ids"][0], specials[names[2]]["ids"][0])
        elif post.get("type") == "BertProcessing":
            self.cls_id, self.sep_id = post["cls"][1], post["sep"][1]
        else:
            raise UnsupportedModelError(f"tokenizer.json's post_processor is {post.get('type')!r}; "
                                        "a BERT tokenizer adds [CLS] and [SEP] (TemplateProcessing).")
        self.special_ids = frozenset(self._added.values()) | {self.cls_id, self.sep_id}

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> WordPieceTokenizer:
        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing; re-run 'nomoat convert'.")
        try:
            return cls(json.loads(path.read_bytes().decode("utf-8")))
        except ValueError as e:
            raise InvalidModelError(f"{path} is not valid JSON ({str(e)[:200]}); re-run 'nomoat convert'.") from e

    def _word(self, word: str, ids: list[int]) -> None:
        """Greedy longest-match pieces of one word, or [UNK] for the whole word."""
        if len(word) > self.max_word_chars:
            ids.append(self.unk_id)
            return
        pieces, start = [], 0
        while start < len(word):
            end = min(len(word), start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                ids.append(self.unk_id)
                return
            start = end
        ids.extend(pieces)

    def tokenize(self, text: str) -> list[int]:
        """The text's ids, without [CLS]/[SEP] and without truncation."""
        ids: list[int] = []
        start = 0
        for m in self._added_re.finditer(text) if self._added_re else ():
            self._stretch(text[start:m.start()], ids)
            ids.append(self._added[m.group()])
            start = m.end()
        self._stretch(text[start:], ids)
        return ids

    def _stretch(self, text: str, ids: list[int]) -> None:
        for word in pre_tokenize(self.normalize(text)):
            self._word(word, ids)

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """[CLS] ids [SEP]; with max_length, the ids cut so that the whole is at most max_length
        (HF's truncation of a single sequence)."""
        ids = self.tokenize(text)
        if max_length is not None:
            ids = ids[:max(max_length - 2, 0)]
        return [self.cls_id, *ids, self.sep_id]


class HFWordPiece:
    """The same interface over Hugging Face `tokenizers` (CPython: fast, batched in Rust)."""

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for a file it cannot read
            raise InvalidModelError(f"{path} is not a tokenizer `tokenizers` can read ({str(e)[:200]}); "
                                    "re-run 'nomoat convert'.") from e
        self._tok.no_padding()  # the source's tokenizer.json pads and truncates to 128: nomoat does both itself
        self._tok.no_truncation()
        self.vocab_size = self._tok.get_vocab_size()

    def tokenize(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        return self.encode_batch([text], max_length)[0]

    def encode_batch(self, texts: list[str], max_length: int | None = None) -> list[list[int]]:
        """[CLS] ids [SEP] of each text; with max_length, cut as HF's truncation cuts (the last id is [SEP])."""
        out = [e.ids for e in self._tok.encode_batch(texts)]
        if max_length is None:
            return out
        return [ids if len(ids) <= max_length else ids[:max_length - 1] + ids[-1:] for ids in out]


def load_wordpiece(model_dir: str | Path, prefer: str = "auto") -> WordPieceTokenizer | HFWordPiece:
    """A package's WordPiece tokenizer: HF `tokenizers` where it imports ("auto", "hf"), else (or
    "python") the pure-Python one; both give the same ids."""
    if prefer not in ("auto", "hf", "python"):
        raise ValueError(f"prefer must be 'auto', 'hf' or 'python', not {prefer!r}")
    if prefer != "python":
        try:
            return HFWordPiece(model_dir)
        except ImportError:
            if prefer == "hf":
                raise
    return WordPieceTokenizer.from_dir(model_dir)
