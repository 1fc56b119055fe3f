"""Stated ages and school years in text: "14-year-old", "aged fourteen", "14 años", "14歳".

Each rule is a regex template in one language; `{n}` stands for an age (digits, or that
language's number words, or Chinese/Japanese numerals), `{o}` for an English ordinal. A rule
yields the age it implies: the number itself, an age derived from a school grade (US grade
g -> g + 5, UK year y -> y + 4), one less than the bound of "under N", or a fixed age for
phrases like "middle schooler". Templates are written in normalized form (lowercase,
without accents except ñ) because they run on normalized text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pictale_server.safety.patterns import term_pattern

ADULT_AGE = 18


def _words(text: str) -> list[str]:
    return text.split()


# Word lists and rules read best packed, so the formatter leaves them alone.
# fmt: off
_EN_UNITS = _words("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                   "fifteen sixteen seventeen eighteen nineteen")
_EN_TENS = _words("twenty thirty forty fifty sixty seventy eighty ninety")
_ES = _words("cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
             "dieciseis diecisiete dieciocho diecinueve")
_FR = _words("zero un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
             "seize dix-sept dix-huit dix-neuf")
_DE = _words("null eins zwei drei vier funf sechs sieben acht neun zehn elf zwolf dreizehn vierzehn "
             "funfzehn sechzehn siebzehn achtzehn neunzehn")
_PT = _words("zero um dois tres quatro cinco seis sete oito nove dez onze doze treze catorze quinze "
             "dezesseis dezessete dezoito dezenove")
_IT = _words("zero uno due tre quattro cinque sei sette otto nove dieci undici dodici tredici "
             "quattordici quindici sedici diciassette diciotto diciannove")
# Genitive stems used in compounds: "четырнадцатилетняя" (fourteen-year-old).
_RU = _words("нуля одно двух трех четырех пяти шести семи восьми девяти десяти одиннадцати двенадцати "
             "тринадцати четырнадцати пятнадцати шестнадцати семнадцати восемнадцати "
             "девятнадцати")

NUMBER_WORDS: dict[str, dict[str, int]] = {
    "en": {**dict(zip(_EN_UNITS, range(20))), **{w: 20 + 10 * i for i, w in enumerate(_EN_TENS)}},
    "es": {**dict(zip(_ES, range(20))), "un": 1, "una": 1, "veinte": 20, "treinta": 30},
    "fr": {**dict(zip(_FR, range(20))), "une": 1, "vingt": 20, "trente": 30},
    "de": {**dict(zip(_DE, range(20))), "ein": 1, "zwanzig": 20, "dreissig": 30},
    "pt": {**dict(zip(_PT, range(20))), "uma": 1, "duas": 2, "quatorze": 14, "dezasseis": 16,
           "dezassete": 17, "dezanove": 19, "vinte": 20, "trinta": 30},
    "it": {**dict(zip(_IT, range(20))), "un": 1, "una": 1, "venti": 20, "trenta": 30},
    "ru": {**dict(zip(_RU, range(20))), "двадцати": 20, "тридцати": 30},
    "cjk": {},
}
_ORDINALS = _words("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
                   "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth")
ORDINAL_WORDS: dict[str, int] = {word: index + 1 for index, word in enumerate(_ORDINALS)}

# A unit after a number means it is not an age ("under 10 minutes", "she was 14 pages in").
_NOT_AGE_UNIT = (r"(?!\s{0,3}(?:%|percent|minutes?|mins?|hours?|hrs?|seconds?|secs?|days?|weeks?|"
                 r"months?|miles?|km|kilometers?|meters?|metres?|feet|foot|ft|inch|inches|cm|"
                 r"pounds?|lbs?|kg|kilos?|dollars?|euros?|people|men|women|times|pages?|points?))")
_SCHOOL = r"(?:elementary|primary|grade|middle|junior[\s-]?high|high)[\s-]?school"
_PUPIL = r"(?:students?|girls?|boys?|kids?|pupils?|child|children|freshm[ae]n|sophomores?|juniors?|seniors?)"

# (language, kind, template). kind: "age" (n is the age), "under" (n is a bound), "grade"
# (US grade n), "year" (UK year n), or a number: the age a phrase implies.
AGE_RULES: tuple[tuple[str, str | int, str], ...] = (
    ("en", "age", r"{n}\s*-?\s*(?:years?|yrs?|y)\s*-?\s*olds?"),
    ("en", "age", r"{n}\s*-?\s*(?:y\s*/\s*o|y\.\s*o\b\.?|yo|yrs?\s*old)(?![^\W_])"),
    ("en", "age", r"{n}\s*-?\s*years?\s+of\s+age"),
    ("en", "age", r"{n}\s*-?\s*months?\s*-?\s*olds?"),
    ("en", "age", r"\bage[sd]?\s*(?:of\s+)?[:=]?\s*{n}" + _NOT_AGE_UNIT),
    ("en", "age", (r"\b(?:she|he|they|i|you|we)\s*(?:'s|'m|'re|\s+is|\s+was|\s+are|\s+am|\s+were)\s+"
                   r"(?:only\s+|just\s+|barely\s+|still\s+|now\s+)?{n}(?=\s*(?:$|[^\w\s]|and\b|but\b|"
                   r"now\b|so\b|years?\b|yrs?\b))")),
    # A name and an age: "Lily is 14.", "Lily, 14,", "Lily (14)".
    ("en", "age", (r"(?<![^\W_])[^\W\d_]{2,}\s+(?:is|was)\s+(?:only\s+|just\s+|barely\s+|still\s+|now\s+)?{n}"
                   r"(?=\s*(?:$|[^\w\s]|and\b|but\b|years?\b))")),
    ("en", "age", r"(?<![^\W_])[^\W\d_]{2,}\s*,\s*(?P<n>\d{1,2})\s*(?:[,;)]|\.(?!\d)|$)"),
    ("en", "age", r"(?<![^\W_])[^\W\d_]{2,}\s*\(\s*(?P<n>\d{1,2})\s*\)"),
    ("en", "age", r"\bturn(?:s|ed|ing)?\s+{n}\b" + _NOT_AGE_UNIT),
    ("en", "age", r"{o}\s+birthday"),
    ("en", "under", r"\b(?:under|below|younger\s+than|not\s+yet)\s+(?:the\s+age\s+of\s+)?{n}" + _NOT_AGE_UNIT),
    ("en", "grade", r"{o}[\s-]*grade(?:rs?)?\b"),
    ("en", "grade", r"\bgrade\s*{n}\b" + _NOT_AGE_UNIT),
    ("en", "year", r"\b(?:year|yr)\s*{n}\s+" + _PUPIL),
    ("en", 15, _SCHOOL + r"(?:ers?\b|\s+" + _PUPIL + r"\b)"),
    ("en", 15, r"\b(?:freshm[ae]n|sophomores?|juniors?|seniors?)\s+(?:in|at)\s+" + _SCHOOL),
    ("en", 15, r"\b(?:is|are|'s|'re|still)\s+in\s+" + _SCHOOL),
    ("es", "age", (r"\b(?:tiene|tenia|cumplio|cumple|cumplir|con|a\s+sus|de)\s+{n}\s+(?:años|añitos)"
                   r"(?!\s+(?:de\s+(?!edad)|atras|antes|despues|mas))")),
    ("es", "age", r"{n}\s+(?:años|añitos)\s+de\s+edad"),
    ("es", "under", r"\b(?:menor(?:es)?|menos)\s+de\s+{n}(?:\s+años)?" + _NOT_AGE_UNIT),
    ("fr", "age", (r"(?:(?<!y )\ba|\bavait|\baura|\bagee?s?\s+de|\bde|\bfete\s+ses|\bvient\s+d'avoir)\s+{n}\s+ans"
                   r"(?!\s+(?:de\s+(?:mariage|prison|vie|travail)|plus\s+tot|plus\s+tard))")),
    ("fr", "under", r"\bmoins\s+de\s+{n}\s+ans"),
    ("de", "age", r"{n}\s*-?\s*jahrig\w*"),
    ("de", "age", r"{n}\s+jahre?\s+alt"),
    ("de", "age", (r"\b(?:sie|er|ich|du)\s+(?:ist|war|bin|bist)\s+(?:erst\s+|gerade\s+|noch\s+)?{n}"
                   r"(?=\s*(?:$|[^\w\s]|und\b|jahre))")),
    ("de", "age", r"\bmit\s+{n}(?=\s*(?:$|[,.;!?]|jahren\b))"),
    ("de", "under", r"\bunter\s+{n}(?:\s+jahren)?(?=\s*(?:$|[^\w\s]|jahren?\b))"),
    ("de", "grade", r"\b{n}\.?\s*klasse\b"),
    ("de", 12, r"\b\w*klassler(?:in|innen)?\b"),
    ("pt", "age", (r"\b(?:tem|tinha|fez|faz|completou|com|de)\s+{n}\s+anos"
                   r"(?!\s+(?:de\s+(?!idade)|atras|antes|depois|mais))")),
    ("pt", "age", r"{n}\s+anos\s+de\s+idade"),
    ("pt", "under", r"\bmenor(?:es)?\s+de\s+{n}(?:\s+anos)?" + _NOT_AGE_UNIT),
    ("it", "age", r"\b(?:ha|aveva|compie|compiuto|di|a)\s+{n}\s+anni(?!\s+(?:di\s|fa\b|prima|dopo))"),
    ("it", "age", r"{n}\s*-?\s*enn[ei]\b"),
    ("it", "under", r"\bsotto\s+i\s+{n}(?:\s+anni)?" + _NOT_AGE_UNIT),
    ("ru", "age", r"{n}\s*-?\s*(?:ти|х|ми)?\s*-?\s*летн\w*"),
    ("ru", "age", r"(?:ей|ему|мне|тебе|исполнилось|было|всего|лишь)\s+{n}\s+(?:лет|год|года)\b"),
    ("ru", "under", r"\bмладше\s+{n}"),
    ("cjk", "age", r"{n}\s*(?:歳|才|岁|歲|周岁|週歲)"),
    ("cjk", "under", r"{n}\s*(?:歳|才)\s*未満"),
    ("cjk", "under", r"(?:未满|未滿)\s*{n}\s*(?:岁|周岁|歲|週歲)"),
    ("cjk", 14, r"(?:小学|中学|高校|初中|高中|小學|中學)\s*(?:[1-6一二三四五六])\s*年"),
)
_ITALIAN_ENNE = _words("decenne undicenne dodicenne tredicenne quattordicenne quindicenne sedicenne "
                       "diciassettenne")
# fmt: on

# Languages that write "fourteen-year-old" as one word: number words may run into the next.
_COMPOUNDING = {"de", "ru"}
_KANJI_DIGITS = "一二三四五六七八九"
_KANJI_NUMBER = f"(?:[{_KANJI_DIGITS}]?十[{_KANJI_DIGITS}]?|[{_KANJI_DIGITS}])"
_DIGITS = r"(?<![\d.])\d{1,2}(?!\d)"
# A number word straight after a tens word is a compound's unit: "twenty five", "treinta y cinco".
_TENS_BEFORE = re.compile(
    r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|veinte|treinta|cuarenta|"
    r"cincuenta|sesenta|setenta|ochenta|noventa|ciento?|vingt|trente|quarante|cinquante|soixante|"
    r"cent|vinte|trinta|quarenta|cinquenta|sessenta|oitenta|cem|cento)(?:[\s-]+(?:and|y|et|e|und))?[\s-]+$"
)


@dataclass(frozen=True)
class AgeCue:
    start: int
    end: int
    age: int

    @property
    def is_minor(self) -> bool:
        return self.age < ADULT_AGE


def _word_alternation(words: list[str], compounds: bool = False) -> str:
    """Number words, spelled plainly: ages are rarely disguised, and this keeps compiling fast."""
    body = "|".join(
        re.escape(w).replace("\\-", "[\\s-]?") for w in sorted(words, key=len, reverse=True)
    )
    right = "" if compounds else r"(?![^\W_])"
    return rf"(?<![^\W_])(?<![^\W_]-)(?:{body}){right}"


def _number_group(lang: str) -> str:
    choices = [_DIGITS]
    if lang == "cjk":
        choices.append(_KANJI_NUMBER)
    elif NUMBER_WORDS[lang]:
        choices.append(_word_alternation(list(NUMBER_WORDS[lang]), compounds=lang in _COMPOUNDING))
    return "(?P<n>" + "|".join(choices) + ")"


def _ordinal_group() -> str:
    return (
        "(?P<o>"
        + r"(?<!\d)\d{1,2}(?:st|nd|rd|th)\b|"
        + _word_alternation(list(ORDINAL_WORDS))
        + ")"
    )


@dataclass(frozen=True)
class _Rule:
    lang: str
    kind: str | int
    pattern: re.Pattern[str]


def _bounded(template: str) -> str:
    """Bound whitespace runs: adjacent unbounded \\s* let a crafted run backtrack quadratically."""
    return template.replace(r"\s*", r"\s{0,3}").replace(r"\s+", r"\s{1,3}")


_RULES = tuple(
    _Rule(
        lang,
        kind,
        re.compile(
            _bounded(template).replace("{n}", _number_group(lang)).replace("{o}", _ordinal_group())
        ),
    )
    for lang, kind, template in AGE_RULES
)
_ENNE = re.compile("|".join(term_pattern(word) for word in _ITALIAN_ENNE))
_WORD_VALUES = {
    lang: {word.replace("-", ""): value for word, value in words.items()}
    for lang, words in {**NUMBER_WORDS, "ordinal": ORDINAL_WORDS}.items()
}


def _kanji_value(text: str) -> int:
    if "十" not in text:
        return _KANJI_DIGITS.index(text) + 1
    tens, _, units = text.partition("十")
    return (_KANJI_DIGITS.index(tens) + 1 if tens else 1) * 10 + (
        _KANJI_DIGITS.index(units) + 1 if units else 0
    )


def _number_value(token: str, lang: str) -> int | None:
    digits = re.match(r"\d+", token)
    if digits:
        return int(digits.group(0))
    if lang == "cjk":
        return _kanji_value(token)
    return _WORD_VALUES[lang].get(re.sub(r"[\s-]", "", token))


def _age_from(rule: _Rule, match: re.Match[str], text: str) -> int | None:
    if isinstance(rule.kind, int):
        return rule.kind
    group = "o" if "o" in match.re.groupindex else "n"
    token = match.group(group)
    if not token[0].isdigit() and _TENS_BEFORE.search(
        text, max(0, match.start(group) - 30), match.start(group)
    ):
        return None
    value = _number_value(
        token, "ordinal" if group == "o" and not token[0].isdigit() else rule.lang
    )
    if value is None:
        return None
    return {"age": value, "under": value - 1, "grade": value + 5, "year": value + 4}[rule.kind]


def find_age_cues(text: str) -> Iterator[AgeCue]:
    """Every stated age in normalized text, minors and adults alike."""
    for rule in _RULES:
        for match in rule.pattern.finditer(text):
            age = _age_from(rule, match, text)
            if age is not None:
                yield AgeCue(match.start(), match.end(), age)
    for match in _ENNE.finditer(text):
        yield AgeCue(match.start(), match.end(), 14)
