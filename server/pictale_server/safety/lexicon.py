"""The text gate's word lists: data only, one entry per term, no prose.

Entries are plain words or phrases, matched whole-word after normalization (normalize.py)
with the disguises patterns.py tolerates; a trailing "*" makes an entry a stem. Accents may be
written or not: they are folded away on both sides (ñ excepted). Languages: English, Spanish,
French, German, Portuguese, Italian, Russian, Japanese, Chinese (simplified and traditional).

- MINOR_TERMS: words that on their own place a person under 18 (underage, preteen, schoolgirl,
  niña, 幼女...). They count anywhere in a request.
- NEAR_MINOR_TERMS: words that usually, not always, mean a child ("kid", "child", "Kinder").
  They count only close to a sexual cue (docs/safety.md, "Text rules").
- SEXUAL_TERMS: words that make a text sexual.
- MINOR_SEXUAL_TERMS: words that are both at once.
- EXEMPT_PHRASES: fixed expressions whose words are not cues ("naked eye", "minor detail").
Stated ages, school grades and "under 18" are structural and live in age_cues.py.
"""

from __future__ import annotations

# Word lists read best packed, so the formatter leaves this module alone.
# fmt: off
MINOR_TERMS: dict[str, tuple[str, ...]] = {
    "en": (
        "underage", "under-age", "underaged", "minors",
        "preteen", "preteens", "pre-teen", "pre-teens", "tween", "tweens", "teen", "teens",
        "teenage", "teenager", "teenagers", "adolescent", "adolescents", "pubescent",
        "prepubescent", "pre-pubescent", "little girl", "little girls",
        "little boy", "little boys", "young girl", "young girls", "young boy", "young boys",
        "schoolgirl", "schoolgirls", "schoolboy", "schoolboys", "toddler", "toddlers", "infant",
        "infants", "newborn", "newborns", "kindergartner", "kindergartener", "preschooler",
        "preschoolers", "loli", "lolis", "lolita", "shota", "shotas", "jailbait", "not yet legal",
        "below the age of consent", "under the age of consent",
    ),
    "es": (
        "menor de edad", "menores de edad", "niña", "niñas", "niño",
        "niños", "niñita", "niñito", "adolescente", "adolescentes", "preadolescente",
        "preadolescentes", "colegiala", "colegialas", "púber", "impúber", "prepúber",
        "estudiante de primaria", "estudiante de secundaria", "alumna de primaria",
        "alumna de secundaria", "alumno de primaria",
    ),
    "fr": (
        "mineure", "mineures", "mineur de moins", "enfant mineur", "fillette", "fillettes",
        "petite fille", "petites filles", "petit garçon", "petits garçons",
        "adolescente", "adolescentes", "adolescent", "préado", "préadolescente", "collégienne",
        "collégiennes", "collégien", "collégiens", "lycéenne", "lycéennes", "écolière",
        "écolières", "écolier", "pubère", "prépubère", "impubère", "au collège",
    ),
    "de": (
        "minderjährig*", "kleines mädchen", "kleine mädchen", "kleinen mädchen", "kleiner junge",
        "kleinen jungen", "schulmädchen", "schülerin", "schülerinnen", "grundschüler*",
        "teenager", "teenagerin", "jugendliche", "jugendlicher", "jugendlichen", "kleinkind*",
        "säugling*", "gymnasiastin", "vorpubertär*",
    ),
    "pt": (
        "menor de idade", "menores de idade", "criança", "crianças", "menininha", "menininhas",
        "menininho", "garotinha", "garotinhas", "garotinho", "novinha", "novinhas", "adolescente",
        "pré-adolescente", "colegial", "colegiais", "aluna do ensino fundamental",
        "aluno do ensino fundamental", "estudante do ensino fundamental",
    ),
    "it": (
        "minorenne", "minorenni", "bambina", "bambine", "bambino", "bambini", "ragazzina",
        "ragazzine", "ragazzino", "ragazzini", "adolescente", "adolescenti", "preadolescente",
        "scolaretta", "scolarette", "scolaretto", "liceale", "liceali", "studentessa delle medie",
        "alunna delle elementari", "alunno delle elementari",
    ),
    "ru": (
        "несовершеннолетн*", "малолетк*", "малолетн*", "ребенок", "ребенка", "ребенку", "ребенком",
        "школьниц*", "школьник*", "подрост*", "младенец", "младенца",
    ),
    "ja": (
        "未成年", "子供", "子ども", "こども", "児童", "幼女", "幼児", "少女", "少年", "小学生",
        "中学生", "女子高生", "男子高生", "高校生", "女子中学生", "園児", "ロリ", "ロリータ", "ショタ",
    ),
    "zh": (
        "未成年", "儿童", "兒童", "幼女", "幼童", "少女", "女童", "男童", "小学生",
        "小學生", "初中生", "中学生", "中學生", "高中生", "萝莉", "蘿莉", "正太",
    ),
}

NEAR_MINOR_TERMS: dict[str, tuple[str, ...]] = {
    "en": ("child", "children", "kid", "kids", "kiddo", "kiddie", "kiddies", "minor", "a minor", "the minor", "girlchild",
           "childlike", "child-like"),
    "es": ("una menor", "un menor", "nena", "chiquilla", "crío", "cría", "infantil"),
    "fr": ("enfant", "enfants", "gamin", "gamine", "gamines", "gosse", "gosses"),
    "de": (
        "ein kind", "das kind", "dem kind", "einem kind", "kleines kind", "die kinder",
        "den kindern", "kindes", "mädchen", "kindlich*",
    ),
    "pt": ("menino", "meninos", "bebê"),
    "it": ("bimba", "bimbi", "alle medie", "alle elementari"),
    "ru": ("девочк*", "мальчик*", "дети", "детей", "детям", "детьми", "детск*", "малыш*"),
    "ja": ("女の子", "男の子"),
    "zh": ("小孩", "孩子", "女孩", "男孩", "小女孩", "小男孩"),
}

SEXUAL_TERMS: dict[str, tuple[str, ...]] = {
    "en": (
        "sex", "sexy", "sexual", "sexually", "sexualize*", "sexualise*", "intercourse", "nsfw",
        "porn", "porno", "pornographic", "pornography", "erotic", "erotica", "eroticism",
        "explicit scene", "explicit scenes", "explicit content", "explicit material",
        "explicit encounter", "nude", "nudes", "nudity", "naked", "undress", "undresses",
        "undressed", "undressing", "topless", "striptease", "stripper", "lewd", "smut", "smutty",
        "hentai", "fetish*", "kinky", "bdsm", "bondage", "orgasm*", "aroused", "arousal",
        "arousing", "horny", "lustful", "seduce", "seduces", "seduced", "seducing",
        "seduction", "seductive", "sensual", "molest*", "rape", "raped", "raping", "grope",
        "groped", "groping", "fondle*", "masturbat*", "ejaculat*", "genital*", "penis", "vagina",
        "vulva", "clitoris", "erection", "nipples", "make love", "makes love", "made love",
        "making love", "have sex", "blowjob", "handjob", "fuck", "fucks", "fucked", "fucking",
        "cum", "boobs", "panties", "lingerie", "foreplay", "incest", "threesome", "orgy",
        "deflower*", "virginity", "sexting", "pedophil*", "paedophil*", "intimate scene",
    ),
    "es": (
        "sexo", "sexual", "sexuales", "erótico", "erótica", "eróticas", "pornografía", "porno",
        "desnudo", "desnuda", "desnudos", "desnudas", "desnudar*", "follar", "folla", "follando",
        "violar", "violación", "violada", "masturba*", "orgasmo", "cachonda", "cachondo",
        "genitales", "hacer el amor", "hacen el amor", "hicieron el amor", "lencería",
        "manosea*", "seducir", "seduce", "lujuria", "escena explícita", "contenido explícito",
    ),
    "fr": (
        "sexe", "sexuel", "sexuelle", "sexuels", "sexuelles", "érotique", "érotiques",
        "pornographie", "pornographique", "nue", "nues", "toute nue", "tout nu", "nudité",
        "déshabill*", "baise", "baisent", "viol", "violer", "violée", "orgasme", "faire l'amour",
        "font l'amour", "fait l'amour", "sensuelle", "attouchement*", "pédophile*",
    ),
    "de": (
        "sexuell*", "geschlechtsverkehr", "erotisch*", "erotik", "pornografie", "pornographie",
        "pornografisch*", "nackt", "nackte", "nackten", "nackter", "nacktheit", "vergewaltig*",
        "masturbier*", "orgasmus", "genitalien", "miteinander schlafen", "bumsen", "ficken",
        "fickt", "gefickt", "unzucht", "lüstern*", "intimverkehr",
    ),
    "pt": (
        "sexo", "sexual", "sexuais", "erótico", "erótica", "pornografia", "pornô", "nua", "nuas", "despir",
        "transar", "transando", "foder", "fodendo", "estupro",
        "estuprar", "estuprada", "masturbação", "orgasmo", "tesão", "genitais", "fazer amor",
        "fizeram amor",
    ),
    "it": (
        "sesso", "sessuale", "sessuali", "erotico", "erotica", "erotiche", "pornografia", "nuda",
        "nudi", "spogliarsi", "spogliata", "spogliato", "scopare", "scopata", "stupro",
        "stuprare", "violentare", "violentata", "masturba*", "orgasmo", "genitali",
        "fare l'amore", "fanno l'amore",
    ),
    "ru": (
        "секс*", "сексуальн*", "эротик*", "эротич*", "порн*", "обнаженн*", "голая", "голые",
        "голый", "голышом", "раздет*", "раздева*", "изнасилов*", "мастурб*", "оргазм*",
        "интимн*", "половой акт", "полового акта", "половые органы", "половых органов",
        "трахат*", "трахнул*", "трахнуть", "трахал*", "заняться любовью", "занимались любовью",
        "педофил*",
    ),
    "ja": (
        "セックス", "エッチ", "エロ", "性的", "性行為", "性交", "全裸", "裸体", "ヌード", "卑猥",
        "わいせつ", "猥褻", "ポルノ", "淫ら", "淫乱", "犯す", "犯され", "強姦", "レイプ", "自慰",
        "オナニー", "成人向け",
    ),
    "zh": (
        "性爱", "性愛", "色情", "裸体", "裸體", "做爱", "做愛", "性交", "性行为", "性行為", "情色",
        "淫秽", "淫穢", "强奸", "強姦", "自慰", "性侵",
    ),
}

MINOR_SEXUAL_TERMS: dict[str, tuple[str, ...]] = {
    "en": ("lolicon", "shotacon", "child porn", "kiddie porn"),
    "es": ("pornografía infantil",),
    "fr": ("pédopornographi*",),
    "de": ("kinderporn*", "kinderschänder*"),
    "pt": ("pornografia infantil",),
    "it": ("pedopornografi*",),
    "ru": ("детское порно", "детская порнография"),
    "ja": ("ロリコン", "ショタコン", "児童ポルノ"),
    "zh": ("恋童", "戀童", "儿童色情", "兒童色情"),
}

EXEMPT_PHRASES: tuple[str, ...] = (
    "naked eye", "naked truth", "naked flame", "kid gloves", "kidding", "cum laude",
    "minor detail", "minor details", "minor character", "minor characters", "minor role",
    "minor key", "minor injury", "minor injuries", "minor league", "minor issue",
    "minor change", "minor changes", "minor chord", "minor planet", "minor god", "minor gods",
    "sex of the baby", "child of the night", "children of the night", "childlike wonder",
    "childlike sense of", "childlike joy", "childlike glee", "childlike delight",
    "childlike curiosity", "childlike enthusiasm",
)
# fmt: on
