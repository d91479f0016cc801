"""A deterministic reading-comprehension set in the spirit of bAbI, written as SQuAD JSON.

Short stories of people moving between places and picking up / dropping objects; questions
of seven types: one_fact ("Where is Mary?"), who ("Who is in the garden?": the answer is a
name, so copying matters), two_facts ("Where is the apple?": who holds it, then where they
are), counting ("How many objects is Mary carrying?"), yes_no ("Is Mary in the garden?"),
lists ("What is Mary carrying?") and, in v2.0 mode, no_answer (a person the story never
mentions). Names: a few common ones plus many built from syllable set A in every split; val
and test also use names from a disjoint syllable set B that never occur in train: their
questions are flagged "unseen" when the answer contains such a name.

Written through the same SQuAD reader as real data, so the generated set runs the real
code path. Same arguments => byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from encdec.atomic_file import write_atomic
from encdec.errors import ConfigError
from encdec_tasks.qa.squad import QAItem, read_squad

COMMON_NAMES = ["Mary", "John", "Sandra", "Daniel", "Fred", "Bill", "Julie", "Emma", "Jeff", "Lily",
                "Greg", "Brian", "Bernhard", "Yann", "Jason", "Antoine", "Sumit", "Winona"]
SYLLABLES_SEEN = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "re", "ko", "li", "ma", "to", "ne", "sa"]
SYLLABLES_UNSEEN = ["zu", "xa", "qe", "yo", "jy", "wu", "fe", "ox", "ug", "iz"]
PLACES = ["kitchen", "garden", "office", "hallway", "bedroom", "bathroom", "cellar", "garage", "library", "attic"]
OBJECTS = ["apple", "football", "milk", "book", "key", "hat", "umbrella", "lamp", "cup", "wallet", "scarf", "violin"]
MOVES = ["went to", "moved to", "journeyed to", "travelled to", "walked to"]
PICKS = ["picked up", "grabbed", "took"]
DROPS = ["dropped", "put down", "left"]
NUMBERS = ["none", "one", "two", "three", "four", "five"]
TYPES = ["one_fact", "who", "two_facts", "counting", "yes_no", "lists", "no_answer"]


def make_names(syllables: list[str], n: int, rng: random.Random, avoid: set[str]) -> list[str]:
    names: list[str] = []
    seen = set(avoid)
    while len(names) < n:
        name = "".join(rng.choice(syllables) for _ in range(rng.choice([2, 2, 3]))).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _story(rng: random.Random, names: list[str]) -> tuple[list[str], list[str], dict, dict, dict]:
    people = rng.sample(names, rng.randint(2, 4))
    where = {p: rng.choice(PLACES) for p in people}
    carrying: dict[str, list[str]] = {p: [] for p in people}
    obj_place: dict[str, str] = {}
    lines = [f"{p} {rng.choice(MOVES)} the {where[p]}." for p in people]
    free = rng.sample(OBJECTS, len(OBJECTS))
    for _ in range(rng.randint(3, 7)):
        p = rng.choice(people)
        r = rng.random()
        if r < 0.45:
            where[p] = rng.choice([x for x in PLACES if x != where[p]])
            lines.append(f"{p} {rng.choice(MOVES)} the {where[p]}.")
        elif r < 0.85 and free and len(carrying[p]) < 3:
            o = free.pop()
            carrying[p].append(o)
            obj_place.pop(o, None)
            lines.append(f"{p} {rng.choice(PICKS)} the {o}.")
        elif carrying[p]:
            o = carrying[p].pop(rng.randrange(len(carrying[p])))
            obj_place[o] = where[p]
            lines.append(f"{p} {rng.choice(DROPS)} the {o}.")
    return people, lines, where, carrying, obj_place


def _questions(rng, people, where, carrying, obj_place, outsiders, unanswerable: float) -> list[tuple[str, str, str]]:
    """(type, question, answer) for one story; answer "" = unanswerable."""
    qs = []
    p = rng.choice(people)
    qs.append(("one_fact", f"Where is {p}?", where[p]))
    alone = [pl for pl in set(where.values()) if sum(w == pl for w in where.values()) == 1]
    if alone:
        pl = rng.choice(sorted(alone))
        qs.append(("who", f"Who is in the {pl}?", next(x for x in people if where[x] == pl)))
    held = [(o, x) for x in people for o in carrying[x]]
    if held:
        o, x = rng.choice(held)
        qs.append(("two_facts", f"Where is the {o}?", where[x]))
    elif obj_place:
        o = rng.choice(sorted(obj_place))
        qs.append(("two_facts", f"Where is the {o}?", obj_place[o]))
    p = rng.choice(people)
    qs.append(("counting", f"How many objects is {p} carrying?", NUMBERS[len(carrying[p])]))
    p = rng.choice(people)
    place = where[p] if rng.random() < 0.5 else rng.choice([x for x in PLACES if x != where[p]])
    qs.append(("yes_no", f"Is {p} in the {place}?", "yes" if place == where[p] else "no"))
    p = rng.choice(people)
    qs.append(("lists", f"What is {p} carrying?", _join_list(carrying[p]) if carrying[p] else "nothing"))
    if rng.random() < unanswerable:
        q = rng.choice(outsiders)
        qs.append(("no_answer", rng.choice([f"Where is {q}?", f"What is {q} carrying?"]), ""))
    return qs


def generate_split(split: str, stories: int, seed: int, version: str = "v2.0", unseen_rate: float = 0.5,
                   unanswerable: float = 0.3) -> dict:
    """One split as a SQuAD JSON document."""
    rng = random.Random(f"{seed}-{split}")
    name_rng = random.Random(seed)  # the same name pools for every split
    seen = COMMON_NAMES + make_names(SYLLABLES_SEEN, 300, name_rng, set(COMMON_NAMES))
    unseen = make_names(SYLLABLES_UNSEEN, 200, name_rng, set(seen))
    with_unanswerable = version == "v2.0"
    paragraphs = []
    for s in range(stories):
        use_unseen = split != "train" and rng.random() < unseen_rate
        pool = unseen if use_unseen else seen
        people, lines, where, carrying, obj_place = _story(rng, pool)
        outsiders = [n for n in rng.sample(pool, 8) if n not in people]
        context = " ".join(lines)
        qas = []
        for k, (qtype, question, answer) in enumerate(
            _questions(rng, people, where, carrying, obj_place, outsiders, unanswerable if with_unanswerable else 0.0)
        ):
            qa = {"id": f"{split}-{s}-{k}", "question": question, "type": qtype,
                  "unseen": bool(use_unseen and answer in people)}
            if answer:
                qa["answers"] = [{"text": answer, "answer_start": context.find(answer)}]
            else:
                qa["answers"], qa["is_impossible"] = [], True
            if with_unanswerable:
                qa.setdefault("is_impossible", False)
            qas.append(qa)
        paragraphs.append({"context": context, "qas": qas})
    return {"version": version, "data": [{"title": f"generated-{split}", "paragraphs": paragraphs}]}


DEFAULT_STORIES = {"train": 3000, "val": 150, "test": 300}


class GeneratedQA:
    """The generated set as SQuAD JSON files under `root/generated_qa/<settings hash>/`,
    written on first use, then read with the SQuAD reader like any other file."""
    kind = "qa_items"

    def __init__(self, root: str, stories: dict[str, int] | None = None, seed: int = 0, version: str = "v2.0",
                 unseen_rate: float = 0.5, unanswerable: float = 0.3):
        if version not in ("v1.1", "v2.0"):
            raise ConfigError(f"data.version must be v1.1 or v2.0, got {version!r}")
        self.stories = {**DEFAULT_STORIES, **(stories or {})}
        self.settings = {"stories": self.stories, "seed": seed, "version": version,
                         "unseen_rate": unseen_rate, "unanswerable": unanswerable}
        digest = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:10]
        self.dir = Path(root).expanduser() / "generated_qa" / digest

    def path(self, split: str) -> Path:
        if split not in self.stories:
            raise ConfigError(f"data.stories has no {split!r} entry (has {sorted(self.stories)})")
        path = self.dir / f"{split}.json"
        if not path.exists():
            s = self.settings
            doc = generate_split(split, self.stories[split], s["seed"], s["version"], s["unseen_rate"], s["unanswerable"])
            self.dir.mkdir(parents=True, exist_ok=True)
            # atomic: runs generating the same split at once do not collide or read a half file
            write_atomic(self.dir / "settings.json", json.dumps(self.settings, indent=1, sort_keys=True))
            write_atomic(path, json.dumps(doc, indent=0))
        return path

    def read(self, split: str) -> list[QAItem]:
        return read_squad(self.path(split))
