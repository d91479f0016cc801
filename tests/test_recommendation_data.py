"""Recommendation data: readers of every supported format and the leave-one-out protocol."""

import pytest

from encdec.errors import DataError
from encdec_tasks.recommendation.data import (
    AtomicFiles,
    Interactions,
    InteractionsCSV,
    MovieLens,
    MovieLensFiles,
    read_atomic_inter,
)
from encdec_tasks.recommendation.fixtures import markov_sequences, write_atomic
from encdec_tasks.recommendation.protocol import (
    chronological_sequences,
    filter_min_counts,
    leave_one_out,
    training_windows,
)


def test_atomic_files_read_typed_headers_titles_and_genres(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "shop.inter").write_text(
        "item_id:token\trating:float\tuser_id:token\ttimestamp:float\n"
        "10\t4\tu1\t300\n11\t5\tu1\t100\n10\t3\tu2\t200\n"
    )
    (folder / "shop.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Comedy\n11\tHeat\t1995\tCrime\n"
    )
    log = AtomicFiles(str(tmp_path), "shop").read()
    assert (log.users, log.items, log.times) == (["u1", "u1", "u2"], ["10", "11", "10"], [300.0, 100.0, 200.0])
    assert log.titles == {"10": "Toy Story (1995)", "11": "Heat (1995)"}
    assert log.genres["10"] == "Animation, Comedy"


def test_atomic_reader_errors_name_the_file_line_and_key(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem:token\ttimestamp:float\nu\ti\t1\n")
    with pytest.raises(DataError, match=r"x.inter: no field 'item_id'.*data.item_field"):
        read_atomic_inter(path)
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\nu\ti\n")
    with pytest.raises(DataError, match=r"x.inter, line 3: expected 3"):
        read_atomic_inter(path)
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\nu\ti\tyesterday\n")
    with pytest.raises(DataError, match=r"line 2: timestamp 'yesterday'"):
        read_atomic_inter(path)
    path.write_text("user_id\titem_id\ttimestamp\n")
    with pytest.raises(DataError, match=r"line 1: header field 'user_id' is not `name:type`"):
        read_atomic_inter(path)


def test_raw_movielens_100k_and_1m_formats(tmp_path):
    ml100k = tmp_path / "a"
    ml100k.mkdir()
    (ml100k / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags = ["0"] * 19
    flags[3], flags[5] = "1", "1"  # Animation, Comedy
    (ml100k / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags) + "\n").encode("latin-1")
        + "302|L.A. Confidential (1997)|01-Jan-1997||http://y|".encode("latin-1") + "|".join(["0"] * 19).encode() + b"\n"
    )
    log = MovieLensFiles(str(ml100k)).read()
    assert log.users == ["196", "186"] and log.items == ["242", "302"] and log.times == [881250949.0, 891717742.0]
    assert log.titles["242"] == "Kolya (1996)" and log.genres["242"] == "Animation, Comedy"

    ml1m = tmp_path / "b"
    ml1m.mkdir()
    (ml1m / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    (ml1m / "movies.dat").write_bytes("1193::Amélie (2001)::Comedy|Romance\n".encode("latin-1"))
    log = MovieLensFiles(str(ml1m)).read()
    assert log.items == ["1193", "661"] and log.times == [978300760.0, 978302109.0]
    assert log.titles["1193"] == "Amélie (2001)" and log.genres["1193"] == "Comedy, Romance"

    with pytest.raises(DataError, match="neither u.data"):
        MovieLensFiles(str(tmp_path)).read()


def test_csv_reader_and_its_errors(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("timestamp,user,item\n5,a,x\n\n3,a,y\n")
    items = tmp_path / "items.csv"
    items.write_text("item,title\nx,Ex\ny,Why\n")
    log = InteractionsCSV(str(path), items_path=str(items)).read()
    assert (log.users, log.items, log.times) == (["a", "a"], ["x", "y"], [5.0, 3.0])
    assert log.titles == {"x": "Ex", "y": "Why"}
    with pytest.raises(DataError, match=r"log.csv, line 1: no column 'user_id'.*data.user_column"):
        InteractionsCSV(str(path), user_column="user_id").read()
    path.write_text("user,item,timestamp\na,x\n")
    with pytest.raises(DataError, match=r"line 2: 2 columns"):
        InteractionsCSV(str(path)).read()


def test_movielens_source_reads_a_local_copy_before_downloading(tmp_path):
    write_atomic(tmp_path, dataset="ml-100k", sequences={"u": ["i1", "i2", "i3"]})
    log = MovieLens(str(tmp_path), str(tmp_path / "cache"), download=False).read()
    assert log.items == ["i1", "i2", "i3"]
    with pytest.raises(DataError, match="ml-1m not found.*data.download=true"):
        MovieLens(str(tmp_path), str(tmp_path / "cache"), name="ml-1m", download=False).read()


def test_sequences_are_chronological_and_ties_keep_file_order():
    log = Interactions()
    for user, item, time in [("u", "c", 3), ("v", "x", 1), ("u", "a", 1), ("u", "b", 1), ("u", "d", 2)]:
        log.add(user, item, time)
    assert chronological_sequences(log) == {"u": ["a", "b", "d", "c"], "v": ["x"]}


def test_min_count_filters_repeat_until_both_hold():
    log = Interactions()
    # item z occurs once; dropping it leaves user w with one interaction, under the minimum
    for user, item in [("u", "x"), ("u", "y"), ("v", "x"), ("v", "y"), ("w", "z"), ("w", "x")]:
        log.add(user, item, 0.0)
    kept = filter_min_counts(log, min_user_count=2, min_item_count=2)
    assert list(zip(kept.users, kept.items)) == [("u", "x"), ("u", "y"), ("v", "x"), ("v", "y")]


def test_leave_one_out_split_and_every_prefix_training_cases():
    splits = leave_one_out({"u": list("abcdef"), "short": ["p", "q"]}, max_history=3)
    assert [(c.history, c.targets) for c in splits["test"]] == [(("c", "d", "e"), ("f",))]
    assert [(c.history, c.targets) for c in splits["val"]] == [(("b", "c", "d"), ("e",))]
    train = [(c.user, c.history, c.targets) for c in splits["train"]]
    assert train == [
        ("u", ("a",), ("b",)), ("u", ("a", "b"), ("c",)), ("u", ("a", "b", "c"), ("d",)),
        ("short", ("p",), ("q",)),  # under 3 items: training only
    ]
    multi = leave_one_out({"u": list("abcdef")}, max_history=3, target_len=2)
    # multi-step targets never reach into the validation / test items
    assert [c.targets for c in multi["train"]] == [("b", "c"), ("c", "d"), ("d",)]
    assert multi["test"][0].targets == ("f",)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_training_windows_cover_every_training_target_once(stride):
    sequences = markov_sequences(num_users=12, length=(3, 14), seed=3)
    max_history = 4
    cases = leave_one_out(sequences, max_history)["train"]
    seen = []
    for w in training_windows(sequences, max_history, stride):
        assert 1 <= len(w.items) <= max_history and len(w.targets) == len(w.items)
        seq = sequences[w.user]
        for p, targets in enumerate(w.targets):
            if targets:
                history = w.items[: p + 1]
                full = next(c.history for c in cases if c.user == w.user and c.targets == targets
                            and c.history[-len(history):] == history)
                assert len(history) >= min(len(full), max_history - stride + 1)
                seen.append((w.user, history[-1], targets, len(full)))
    assert len(seen) == len(cases)
    if stride == 1:  # windows of stride 1 give exactly the every-prefix histories
        got = sorted((w.user, w.items[: p + 1], t) for w in training_windows(sequences, max_history, 1)
                     for p, t in enumerate(w.targets) if t)
        assert got == sorted((c.user, c.history, c.targets) for c in cases)
    with pytest.raises(ValueError, match="train_stride"):
        training_windows(sequences, max_history, max_history + 1)
