"""`encdec-runs`: a table comparing tiny runs, and the static HTML report with curves."""

import base64
import re

import pytest

from conftest import run_cli, tiny_train_args


@pytest.fixture(scope="module")
def two_runs(tiny_corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name, lr in (("lr_low", "1e-3"), ("lr_high", "3e-3")):
        run_cli("train", *tiny_train_args(tiny_corpus, base / name), "trainer.max_steps=4",
                "trainer.log_every_n_steps=1", f"optim.optimizer.lr={lr}")
    return base


def test_table_names_runs_their_differences_steps_time_best_and_test_metrics(two_runs, capsys):
    from encdec.cli.runs import main

    assert main([str(two_runs)]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.strip().splitlines()
    assert re.match(r"run +task +differs +steps +wall time +best \(monitored\) +test/bleu_lc +test/chrf +test/sacrebleu", header)
    assert len(rows) == 2
    for name, lr in (("lr_high", "0.003"), ("lr_low", "0.001")):
        row = next(r for r in rows if r.startswith(name))
        # only the key that differs, not the whole config; 4 steps; a wall time; the best score
        assert re.match(rf"{name} +translation +optim\.optimizer\.lr={lr} +4 +\d+:\d\d +val/sacrebleu [\d.]+ +[\d.]+", row), row


def test_html_report_embeds_learning_curves(two_runs, tmp_path):
    from encdec.cli.runs import main

    out = tmp_path / "report.html"
    assert main([str(two_runs / "lr_low"), str(two_runs / "lr_high"), "--html", str(out)]) == 0
    page = out.read_text()
    assert "<td>optim.optimizer.lr=0.001</td>" in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG")


def test_a_folder_without_runs_is_one_error_line(tmp_path, capsys):
    from encdec.cli.runs import main

    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: no run directories")
