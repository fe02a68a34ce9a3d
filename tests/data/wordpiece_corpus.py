"""A seeded corpus and vocabulary for WordPiece equality tests (no download, no files but
`wordpiece_edge_cases.json`).

`make_corpus()` mixes the hand-written edge cases with generated sentences: English,
accented Latin (precomposed and decomposed), Greek, Vietnamese, Cyrillic, CJK, Hangul,
kana, Arabic, Hebrew, Indic and Thai words, emoji (modifiers, ZWJ sequences, flags),
digits, punctuation runs, compatibility characters, over-long words, random assigned
code points, and every kind of whitespace and control character between them.
`make_vocabulary()` builds a WordPiece vocabulary from it: frequent words, random prefixes
and "##" pieces of words, single characters, with some characters held out so that words
become `[UNK]`.
"""

import json
import pathlib
import random
import re
import unicodedata

EDGE_CASES_FILE = pathlib.Path(__file__).with_name("wordpiece_edge_cases.json")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

ENGLISH = (
    "the quick brown fox jumps over lazy dog a an and of to in is it that was for on are "
    "with as his they be at one have this from or had by word but what some we can out other "
    "were all there when up use your how said each she which do their time if will way about "
    "many then them write would like so these her long make thing see him two has look more "
    "running jumped tokenization unbelievable preprocessing TensorFlow Keras WordPiece BERT "
    "don't it's o'clock e-mail state-of-the-art U.S.A. Mr. Dr. www.example.com user@mail.org"
).split()
LATIN = (
    "café naïve crème brûlée déjà façade Noël Zoë Straße Ärger über Öl señor niño mañana "
    "São coração ação Łódź żółć Gdańsk příliš žluťoučký kůň İstanbul ığdır Şişli þorn "
    "Ångström Œuvre œil Øresund æble Ærø garçon fiancée résumé jalapeño Müller Ģirts "
    "Dvořák Škoda Čapek ŞEKER ÇOCUK ĞÜNEŞ ß ẞ ǅemal"
).split()
GREEK = (
    "Καλημέρα ελληνικά φιλοσοφία ΑΘΗΝΑ ψυχή σοφός ΣΟΦΟΣ ΌΛΟΙ Ήλιος Ἀθῆναι ἄνθρωπος "
    "ΐ ΰ ϊ ϋ Ελλάδα ευχαριστώ ΟΔΥΣΣΕΎΣ ᾳ ᾼ"
).split()
VIETNAMESE = (
    "Tiếng Việt người Hà Nội phở đường Đà Nẵng chữ quốc ngữ được những ưu tiên Huế Thành "
    "phố Hồ Chí Minh Hạ Long Mỹ Sơn nghiêng ĐẸP TRỜI quyển sách"
).split()
CYRILLIC = "Москва привет ЁЛКА ёж Україна ї Беларусь Қазақстан српски".split()
CJK = (
    "中文 汉字 北京欢迎你 我爱自然语言处理 日本語 ひらがな カタカナ ガ パン ｶﾞｷﾞ 한국어 서울 "
    "안녕하세요 豈 更 𠀀 𪜀 㐀 〇 々 漢字かな交じり文"
).split()
OTHER_SCRIPTS = (
    "مرحبا العربية שלום שָׁלוֹם हिन्दी क़ ज़ ภาษาไทย தமிழ் ქართული Հայերեն ꮳ Ꮳ ᏸ ދިވެހި ܐܪܡܝܐ ᠮᠣᠩᠭᠣᠯ"
).split()
EMOJI = ("😀 😂 👍 👍🏽 👨‍👩‍👧 🇫🇷 🇯🇵 ❤️ 🏳️‍🌈 🤖 🎉 ☕ ✌🏿 #️⃣ © ® ™ ½ ♥ ★ ☆").split()
PUNCTUATION = (
    "!!! ?! ... — – « » “ ” ' '' ## @@ $$$ ^_^ << >> {[()]} 、 。 ！ ？ … ‼ ¿ ¡ § ¶ "
    "* & % + = | \\ / ~ ` : ; , . - _ · • ‹ › 〈 〉 ※"
).split()
COMPATIBILITY = (
    "ﬁ ﬂ ﬀ ﬅ Ⅻ ℃ ㎞ ＦＵＬＬ ｗｉｄｔｈ ǈ ǋ ŉ ſ µ K Ω Å ① ⑴ ² ³ ℌ ℍ ℕ ㈱ ㍿ ﬗ ﷺ"
).split()
SEPARATORS = [" "] * 40 + [
    "  ",
    "\t",
    "\n",
    "\r\n",
    " \u00a0",
    "\u00a0",
    "\u3000",
    "\u2009",
    "\u200b",
    "\u00ad",
    "\u200d",
    "\x0b",
    "\x0c",
    "\x1f",
    "\x85",
    "\u2028",
    "\ufeff",
    "",
    "",
    "",
    ", ",
    ". ",
    "-",
    "/",
]


def _assigned_code_points() -> list[int]:
    """Code points assigned in Python's Unicode (no unassigned, private use, surrogate)."""
    return [
        code_point
        for code_point in range(0x30000)
        if unicodedata.category(chr(code_point)) not in ("Cn", "Co", "Cs")
    ]


def _number(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 12)))
    if kind == 1:
        return f"{rng.uniform(-1000, 1000):.{rng.randrange(1, 5)}f}"
    if kind == 2:
        return f"{rng.randrange(1, 10**7):,}"
    if kind == 3:
        return "".join(chr(0xFF10 + rng.randrange(10)) for _ in range(rng.randrange(1, 5)))
    if kind == 4:
        return "".join(chr(0x0660 + rng.randrange(10)) for _ in range(rng.randrange(1, 5)))
    return f"{rng.randrange(100)}%"


def _decomposed(rng: random.Random, word: str) -> str:
    word = unicodedata.normalize("NFD", word)
    if rng.random() < 0.3:  # a mark in a non-canonical order, or stacked
        marks = rng.sample(["\u0301", "\u0323", "\u0308", "\u0302", "\u0327", "\u031b"], 2)
        position = rng.randrange(len(word) + 1)
        word = word[:position] + "".join(marks) + word[position:]
    return word


def _long_word(rng: random.Random) -> str:
    unit = rng.choice(["a", "xy", "é", "ẞ", "e\u0301", "中", "Ωμ", "ab1", "😀"])
    return unit * rng.randrange(20, 130 // len(unit.encode()) + 40)


def _random_chars(rng: random.Random, assigned: list[int]) -> str:
    return "".join(chr(rng.choice(assigned)) for _ in range(rng.randrange(1, 6)))


def _token(rng: random.Random, assigned: list[int]) -> str:
    pool = rng.choices(
        [
            "english",
            "latin",
            "greek",
            "vietnamese",
            "cyrillic",
            "cjk",
            "other",
            "emoji",
            "punctuation",
            "compatibility",
            "number",
            "decomposed",
            "long",
            "random",
            "mixed",
        ],
        weights=[30, 10, 6, 6, 4, 8, 4, 4, 8, 3, 6, 4, 1, 3, 4],
    )[0]
    if pool == "english":
        word = rng.choice(ENGLISH)
        return rng.choice([word, word, word.capitalize(), word.upper()])
    if pool == "number":
        return _number(rng)
    if pool == "decomposed":
        return _decomposed(rng, rng.choice(LATIN + GREEK + VIETNAMESE))
    if pool == "long":
        return _long_word(rng)
    if pool == "random":
        return _random_chars(rng, assigned)
    if pool == "mixed":  # scripts glued together in one "word"
        parts = [ENGLISH, LATIN, GREEK, VIETNAMESE, CJK, EMOJI, CYRILLIC]
        return "".join(rng.choice(rng.choice(parts)) for _ in range(rng.randrange(2, 4)))
    return rng.choice(
        {
            "latin": LATIN,
            "greek": GREEK,
            "vietnamese": VIETNAMESE,
            "cyrillic": CYRILLIC,
            "cjk": CJK,
            "other": OTHER_SCRIPTS,
            "emoji": EMOJI,
            "punctuation": PUNCTUATION,
            "compatibility": COMPATIBILITY,
        }[pool]
    )


def _sentence(rng: random.Random, assigned: list[int]) -> str:
    kind = rng.random()
    if kind < 0.01:
        return ""
    if kind < 0.02:
        return "".join(rng.choice([" ", "\t", "\n", "\r", "\u00a0", "\u3000"]) for _ in range(5))
    pieces = []
    for _ in range(rng.randrange(1, 25)):
        pieces.append(_token(rng, assigned))
        pieces.append(rng.choice(SEPARATORS))
    if rng.random() < 0.05:  # an ASCII control character somewhere
        pieces.insert(rng.randrange(len(pieces) + 1), chr(rng.choice([1, 2, 7, 8, 27, 127])))
    text = "".join(pieces[:-1])
    return text if rng.random() < 0.9 else f"  {text}\n"


def edge_cases() -> list[str]:
    return json.loads(EDGE_CASES_FILE.read_text(encoding="utf-8"))


def make_corpus(num_sentences: int = 10_000, seed: int = 1234) -> list[str]:
    """The edge cases, then `num_sentences` generated sentences (deterministic)."""
    rng = random.Random(seed)
    assigned = _assigned_code_points()
    return edge_cases() + [_sentence(rng, assigned) for _ in range(num_sentences)]


def make_vocabulary(corpus: list[str], seed: int = 99, max_words: int = 4000) -> list[str]:
    """A WordPiece vocabulary for `corpus`, cased and uncased words both in it."""
    rng = random.Random(seed)
    counts = {}
    for text in corpus:
        for form in (text, text.casefold(), unicodedata.normalize("NFC", text).casefold()):
            stripped = "".join(
                c for c in unicodedata.normalize("NFD", form) if unicodedata.category(c) != "Mn"
            )
            for word in re.findall(r"\w+|[^\w\s]", form + " " + stripped):
                counts[word] = counts.get(word, 0) + 1
    # No control characters in tokens (TF-Text reads "\x00" as an empty key), pieces of at
    # most 20 characters, as in real vocabularies.
    words = sorted(
        (word for word in counts if not any(unicodedata.category(c) == "Cc" for c in word)),
        key=lambda word: (-counts[word], word),
    )
    characters = sorted({char for word in words for char in word})
    held_out = set(rng.sample(characters, len(characters) // 10))
    vocabulary = dict.fromkeys(SPECIAL_TOKENS)
    for word in words[:max_words]:
        if len(word) <= 20 and not held_out.intersection(word):
            vocabulary[word] = None
    for char in characters:
        if char not in held_out:
            vocabulary[char] = None
            vocabulary["##" + char] = None
    for word in rng.sample(words, min(len(words), 3000)):
        if len(word) < 3:
            continue
        start = rng.randrange(1, len(word))
        end = rng.randrange(start + 1, min(len(word), start + 20) + 1)
        vocabulary[word[: rng.randrange(1, min(len(word), 21))]] = None
        vocabulary["##" + word[start:end]] = None
    return list(vocabulary)
