"""The next-item recommendation adapter: a user's item history in, ranked items out.

Items are the vocabulary (ids 0-2 are pad, BOS and EOS). A training example is one prefix of
a user's sequence and the item(s) after it; `decoding=rank` scores every item in one
decoding step and returns the top k; beam search returns n-best lists or future sequences.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from encdec.data.vocabulary import Vocabulary, load_or_build
from encdec.errors import ConfigError, DataError
from encdec.task import Example, MetricReport, SampleTable, TaskAdapter
from encdec.types import Batch
from encdec_tasks.recommendation.metrics import ndcg, rank_of, ranking_metrics, sample_negatives, sampled_rank
from encdec_tasks.recommendation.protocol import (
    Case,
    chronological_sequences,
    filter_min_counts,
    leave_one_out,
    training_windows,
)

log = logging.getLogger(__name__)

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIALS = 3
ITEM_SPECIALS = ("<pad>", "<s>", "</s>")  # no unknown item: items the run never saw are dropped
VOCAB_FILE = "items.json"  # titles and genres (and the items, in runs written before tokenizer.json)


class ItemList(list):
    """Raw item ids, best first; prints as titles. References also carry the history, so
    metrics can tell whether ranked lists contain already-seen items."""

    def __init__(self, items=(), titles: Sequence[str] | None = None, history: Sequence[str] = ()):
        super().__init__(items)
        self.titles = list(titles) if titles is not None else None
        self.history = tuple(history)

    def __str__(self) -> str:
        if not self.titles:
            return " | ".join(self)
        return " | ".join(f"{t} [{i}]" if t else i for i, t in zip(self, self.titles))


class RecommendationTask(TaskAdapter):
    data_kind = "interactions"
    source_kind = "items"
    monitor = "val/ndcg@10"
    monitor_mode = "max"

    def __init__(
        self,
        data: Any,
        max_history: int = 50,
        target_len: int = 1,
        train_stride: int | None = None,
        min_user_count: int = 0,
        min_item_count: int = 0,
        ks: Sequence[int] = (5, 10, 20),
        sampled_negatives: int = 0,
        sampled_seed: int = 0,
        reward_k: int = 10,
    ):
        if not ks or min(ks) < 1:
            raise ConfigError(f"task.adapter.ks must be a non-empty list of K >= 1, got {ks}")
        if sampled_negatives < 0:
            raise ConfigError(f"task.adapter.sampled_negatives must be >= 0 (0 = off), got {sampled_negatives}")
        self.data = data
        self.max_history, self.target_len, self.train_stride = max_history, target_len, train_stride
        self.min_user_count, self.min_item_count = min_user_count, min_item_count
        self.ks = sorted(int(k) for k in ks)
        self.sampled_negatives, self.sampled_seed, self.reward_k = sampled_negatives, sampled_seed, reward_k
        self.items: list[str] = []  # index - NUM_SPECIALS -> raw item id
        self.index: dict[str, int] = {}
        self.titles: dict[str, str] = {}
        self.genres: dict[str, str] = {}
        self._sequences: dict[str, list[str]] | None = None
        self._splits: dict[str, list[Case]] | None = None
        self._cache: dict[str, list[Example]] = {}

    # -- data and vocabulary --------------------------------------------------------------
    def _read_sequences(self) -> dict[str, list[str]]:
        if self._sequences is None:
            log_ = filter_min_counts(self.data.read(), self.min_user_count, self.min_item_count)
            if len(log_) == 0:
                raise DataError(
                    "no interactions left: check the data files and task.adapter.min_user_count / min_item_count"
                )
            self._sequences = chronological_sequences(log_)
            self.titles = self.titles or dict(log_.titles)
            self.genres = self.genres or dict(log_.genres)
        return self._sequences

    def setup(self, run_dir: Path, stage: str) -> None:
        """The items are a closed word-level vocabulary (tokenizer.json), ids from 3 on."""
        meta = Path(run_dir) / VOCAB_FILE
        if meta.exists() and not (Path(run_dir) / "tokenizer.json").exists():  # a run from before tokenizer.json
            self.vocab = Vocabulary.closed(json.loads(meta.read_text(encoding="utf-8"))["items"], ITEM_SPECIALS)
        else:
            self.vocab = load_or_build(run_dir, "tokenizer.json", stage, lambda: Vocabulary.closed(
                dict.fromkeys(item for seq in self._read_sequences().values() for item in seq), ITEM_SPECIALS))
        pieces = sorted(self.vocab.tok.get_vocab().items(), key=lambda kv: kv[1])
        self.items = [piece for piece, _ in pieces[NUM_SPECIALS:]]
        self.index = {item: i + NUM_SPECIALS for i, item in enumerate(self.items)}
        if meta.exists():
            saved = json.loads(meta.read_text(encoding="utf-8"))
            self.titles, self.genres = saved["titles"], saved["genres"]
        elif stage == "fit":
            sequences = self._read_sequences()
            self.titles = {i: self.titles[i] for i in self.items if i in self.titles}
            self.genres = {i: self.genres[i] for i in self.items if i in self.genres}
            meta.write_text(json.dumps({"titles": self.titles, "genres": self.genres}) + "\n")
            log.info("%d users, %d items, %d interactions", len(sequences), len(self.items),
                     sum(map(len, sequences.values())))

    def vocabularies(self) -> dict[str, Vocabulary]:
        return {"source": self.vocab, "target": self.vocab}

    def decoder_kwargs(self) -> dict[str, Any]:
        return {**super().decoder_kwargs(), "bos_id": BOS}

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    # -- examples and batches -------------------------------------------------------------
    def _example(self, user: str, history: Sequence[str], targets: Sequence[str] | None) -> Example:
        return {
            "src": torch.tensor([self.index[i] for i in history], dtype=torch.long),
            "tgt": None if targets is None else torch.tensor([self.index[i] for i in targets], dtype=torch.long),
            "user": user,
        }

    def examples(self, split: str) -> Sequence[Example]:
        if split not in self._cache:
            if split not in ("train", "val", "test"):
                raise ConfigError(f"split={split!r}: recommendation has train, val and test")
            if self._splits is None:
                sequences = self._read_sequences()
                unknown = {i for seq in sequences.values() for i in seq if i not in self.index}
                if unknown:  # data changed since training: those items cannot be scored
                    log.warning("%d items are not in the run's item vocabulary; dropped", len(unknown))
                    sequences = {u: [i for i in s if i in self.index] for u, s in sequences.items()}
                self._sequences = sequences
                self._splits = leave_one_out(sequences, self.max_history, self.target_len)
            if split == "train" and self.train_stride:
                self._cache[split] = [
                    self._window(w) for w in training_windows(self._sequences, self.max_history, self.train_stride, self.target_len)
                ]
            else:
                self._cache[split] = [
                    self._example(c.user, c.history, c.targets) for c in self._splits[split] if c.history
                ]
        return self._cache[split]

    def _window(self, window) -> Example:
        """A window and, in `rows` [L, target_len], each position's next item(s), padded (all
        padding: context only); collate turns it into one row per trained position."""
        rows = torch.full((len(window.items), self.target_len), PAD, dtype=torch.long)
        for p, targets in enumerate(window.targets):
            rows[p, : len(targets)] = torch.tensor([self.index[i] for i in targets], dtype=torch.long)
        return {"src": torch.tensor([self.index[i] for i in window.items], dtype=torch.long), "rows": rows,
                "user": window.user}

    @staticmethod
    def _window_positions(windows: list[Example]) -> list[Example]:
        """Each trained position of each window as its own example: the window up to that
        position, and the item(s) after it. A causal encoder's state at a position reads only
        the items up to it, so these rows train exactly what one pass over the window would,
        one target row per source row (each prefix is encoded on its own)."""
        return [
            {"src": w["src"][: p + 1], "tgt": row[row != PAD], "user": w["user"]}
            for w in windows
            for p, row in enumerate(w["rows"])
            if row[0] != PAD  # a position without a target is context only
        ]

    def length(self, example: Example) -> int:
        tgt = example.get("tgt")
        return max(len(example["src"]), 1, 0 if tgt is None else len(tgt) + 1)

    def collate(self, examples: list[Example]) -> Batch:
        if "rows" in examples[0]:
            examples = self._window_positions(examples)
        src = pad_sequence([e["src"] for e in examples], batch_first=True, padding_value=PAD)
        lengths = torch.tensor([len(e["src"]) for e in examples])
        src_mask = torch.arange(src.size(1))[None, :] < lengths[:, None]
        meta = {"user": [e["user"] for e in examples], "examples": examples}
        if examples[0]["tgt"] is None:
            return Batch(src=src, src_mask=src_mask, meta=meta)
        bos, eos = torch.tensor([BOS]), torch.tensor([EOS])
        tgt_in = pad_sequence([torch.cat([bos, e["tgt"]]) for e in examples], batch_first=True, padding_value=PAD)
        tgt_out = pad_sequence([torch.cat([e["tgt"], eos]) for e in examples], batch_first=True, padding_value=PAD)
        return Batch(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, meta=meta)

    # -- predict inputs -------------------------------------------------------------------
    def _resolve(self, token: str, line: int) -> str:
        """An item id, or a title (exact, case-insensitive; else a unique substring)."""
        token = token.strip()
        if token in self.index:
            return token
        low = token.lower()
        exact = [i for i, t in self.titles.items() if t.lower() == low]
        if len(exact) == 1:
            return exact[0]
        partial = exact or [i for i, t in self.titles.items() if low in t.lower()]
        if len(partial) == 1:
            return partial[0]
        if not partial:
            raise DataError(f"input line {line}: {token!r} is neither an item id nor an item title")
        shown = "; ".join(f"{self.titles[i]} [{i}]" for i in partial[:5])
        raise DataError(f"input line {line}: {token!r} matches {len(partial)} titles ({shown}...): give the id")

    def parse_inputs(self, lines: list[str]) -> list[Example]:
        """Per line either `user:<id>` (that user's whole known history) or an item history,
        oldest first: ids or titles separated by `|` (or ids separated by spaces/commas)."""
        examples = []
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line:
                raise DataError(f"input line {number} is empty: give user:<id> or an item history")
            if line.lower().startswith("user:"):
                user = line.split(":", 1)[1].strip()
                sequences = self._read_sequences()
                if user not in sequences:
                    raise DataError(f"input line {number}: no user {user!r} in the data")
                history = [i for i in sequences[user] if i in self.index]
            elif "|" in line:
                history = [self._resolve(t, number) for t in line.split("|") if t.strip()]
            else:
                tokens = line.replace(",", " ").split()
                history = tokens if all(t in self.index for t in tokens) else [self._resolve(line, number)]
            if not history:
                raise DataError(f"input line {number}: the history has no known item")
            example = self._example(line, history[-self.max_history :], None)
            # a given history that is cut is reported by predict (a user:<id> history is cut by design)
            if len(history) > self.max_history and not line.lower().startswith("user:"):
                example["truncated"] = f"task.adapter.max_history={self.max_history} items"
            examples.append(example)
        return examples

    # -- outputs and metrics --------------------------------------------------------------
    def _item_list(self, ids: Sequence[str], history: Sequence[str] = ()) -> ItemList:
        titles = [self.titles.get(i, "") for i in ids] if self.titles else None
        return ItemList(ids, titles, history)

    def decode(self, tokens: Tensor) -> list[ItemList]:
        outputs = []
        for row in tokens.tolist():
            ids = []
            for t in row:
                if t == EOS:
                    break
                if t >= NUM_SPECIALS:
                    ids.append(self.items[t - NUM_SPECIALS])
            outputs.append(self._item_list(ids))
        return outputs

    def _raw(self, ids: Tensor) -> list[str]:
        return [self.items[t - NUM_SPECIALS] for t in ids.tolist() if t >= NUM_SPECIALS]

    def references(self, batch: Batch) -> list[ItemList]:
        return [
            self._item_list(self._raw(e["tgt"]), history=self._raw(e["src"])) for e in batch.meta["examples"]
        ]

    def metrics(self, outputs: list[Sequence[str]], references: list[ItemList], split: str) -> MetricReport:
        ranks = [rank_of(ref[0], out) for out, ref in zip(outputs, references)]
        values = ranking_metrics(ranks, self.ks)
        with_history = sum(bool(set(out) & set(getattr(ref, "history", ()))) for out, ref in zip(outputs, references))
        shortest = min((len(o) for o in outputs), default=0)
        seen = (
            f"history items excluded (none of the {len(outputs)} ranked lists contains one)"
            if with_history == 0
            else f"history items not excluded ({with_history} of {len(outputs)} ranked lists contain one)"
        )
        base = (
            f"{split} split, leave-one-out by time (last item test, second to last validation), "
            f"{len(outputs)} users, history <= {self.max_history} items, {seen}"
        )
        protocol = {}
        for name in values:
            k = int(name.split("@")[1])
            mode = f"full ranking over all {len(self.items)} items"
            if shortest < k:
                mode += f" (WARNING: ranked lists as short as {shortest} < K; use decoding=rank with k >= {k})"
            protocol[name] = f"{base}, {mode}, K={k}"
        if self.sampled_negatives:
            sampled = self._sampled_metrics(outputs, references)
            for name, value in sampled.items():
                values[name] = value
                k = int(name.split("@")[1])
                protocol[name] = (
                    f"{base}, sampled ranking: target vs {self.sampled_negatives} uniform negatives the user "
                    f"never interacted with in its history (seed {self.sampled_seed}), K={k}"
                )
        return MetricReport(values, protocol)

    def _sampled_metrics(self, outputs, references) -> dict[str, float]:
        rng = random.Random(self.sampled_seed)
        ranks = []
        for out, ref in zip(outputs, references):
            exclude = set(getattr(ref, "history", ())) | {ref[0]}
            negatives = sample_negatives(self.items, exclude, self.sampled_negatives, rng)
            rank = sampled_rank(ref[0], out, negatives)
            if rank is None:
                raise ConfigError(
                    "task.adapter.sampled_negatives needs every item ranked: use decoding=rank "
                    "decoding.k=null (and decoding.exclude_source=false)"
                )
            ranks.append(rank)
        suffix = f"_sampled{self.sampled_negatives}"
        return {name.replace("@", suffix + "@"): v for name, v in ranking_metrics(ranks, self.ks).items()}

    def samples(self, batch: Batch, outputs: list[Sequence[str]], limit: int) -> SampleTable:
        refs = self.references(batch)
        title = lambda i: self.titles.get(i) or i  # noqa: E731
        rows = []
        for user, out, ref in list(zip(batch.meta["user"], outputs, refs))[:limit]:
            rank = rank_of(ref[0], out)
            # numbered, so a rank is read off the list; the true next item in bold
            top = [f"{k}. **{title(i)}**" if i == ref[0] else f"{k}. {title(i)}" for k, i in enumerate(list(out)[:10], 1)]
            rows.append([
                user,
                " → ".join(title(i) for i in ref.history[-5:]),
                title(ref[0]),
                "; ".join(top),
                rank if rank is not None else "-",
            ])
        return SampleTable(["user", "last 5 of history", "next item", "top 10 (next item in bold)", "rank"], rows)

    def reward(self, sources: list[Any], outputs: list[Sequence[str]], references: list[Sequence[str]]) -> list[float]:
        """NDCG@reward_k of the true next item in each output list (1 = ranked first)."""
        return [float(ndcg(rank_of(ref[0], out), self.reward_k)) for out, ref in zip(outputs, references)]
