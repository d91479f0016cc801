"""Captioning attention heatmaps a person can read in TensorBoard: a fixed number of pixels a
word whatever the caption's length, the words as labels, one colour bar, the sample named."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _caption(n: int, grid=(4, 4), seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    weights = rng.random((n, grid[0] * grid[1]))
    return image, [f"word{i}" for i in range(n)], weights / weights.sum(1, keepdims=True)


def test_each_word_gets_a_labelled_tile_of_the_promised_size():
    from encdec_tasks.captioning.attention_maps import attention_figure, render

    image, words, weights = _caption(27)
    fig = attention_figure(image, words, weights, (4, 4), "#3  scene_0042.png", tile=160, max_words=20, columns=5)
    pixels = render(fig)
    tiles = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in tiles] == words[:20], "one tile per word, in order, capped at max_words"
    # 20 words in rows of 5: the image holds 4 x 5 tiles of 160 x 160 pixels
    assert pixels.shape[0] >= 4 * 160 and pixels.shape[1] >= 5 * 160 and pixels.shape[2] == 3
    height = pixels.shape[0]
    for ax in tiles:
        box = ax.get_window_extent()
        assert box.width == pytest.approx(160, abs=1) and box.height == pytest.approx(160, abs=1)
        # the word is drawn in the band above its tile (black letters on white)
        band = pixels[int(height - box.y1) - 28 : int(height - box.y1), int(box.x0) : int(box.x1)]
        assert band.min() < 80, f"no label drawn over {ax.get_title()}"
    texts = [t.get_text() for t in fig.texts]
    assert "#3  scene_0042.png" in texts, "the title names the sample"
    assert "first 20 of 27 words shown" in texts, "a note says the caption was cut"
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "attention weight"]
    assert len(bars) == 1 and len(fig.axes) == 21, "one colour bar for every tile"


def test_the_figure_grows_with_the_caption_instead_of_shrinking_the_words():
    from encdec_tasks.captioning.attention_maps import attention_figure, render

    sizes = {}
    for n in (3, 5, 12):
        image, words, weights = _caption(n)
        fig = attention_figure(image, words, weights, (4, 4), "#1", tile=128, columns=5)
        sizes[n] = render(fig).shape[:2]
        assert not any(t.get_text().startswith("first ") for t in fig.texts), "nothing cut, no note"
    assert sizes[3][1] < sizes[5][1] == sizes[12][1], "wider up to a row of 5 words"
    assert sizes[3][0] == sizes[5][0] < sizes[12][0], "then taller, a row per 5 words"
    assert sizes[12][0] >= 3 * 128


def test_long_words_are_shortened_to_fit_their_tile():
    from encdec_tasks.captioning.attention_maps import attention_figure

    image, _, weights = _caption(2)
    fig = attention_figure(image, ["a", "extraordinarilylongsubwordpiece"], weights, (4, 4), "#1", tile=96)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "a" and titles[1].endswith("\u2026") and len(titles[1]) <= 96 // 9
