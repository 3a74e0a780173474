"""Prices per model and token kind, checked against figures computed by hand from the published
per-million-token prices (the arithmetic is written out; the production formula is not used)."""

from __future__ import annotations

import logging

import pytest

from bot.core.costs import PriceBook, estimate_cost, estimated_image_usage, worst_case_usage
from bot.core.models import Usage
from bot.core.options import ImageOptions

# 1000 mainline tokens in, 200 out; the image tool read 50 prompt tokens and one 272-token image
# and wrote a medium 1024x1024 image (1056 tokens) with two partial images (2 x 100 tokens).
USAGE = Usage(text_input=1000, text_output=200, tool_text_input=50, image_input=272,
              image_output=1056 + 2 * 100)


def test_mainline_tokens_by_the_mainline_model_and_image_tokens_by_the_image_model():
    book = PriceBook({}, mainline="gpt-5.5", image_model="gpt-image-2")
    # gpt-5.5: $5 in, $30 out; gpt-image-2: text in $5, image in $8, image out $30 (per 1M)
    expected = (1000 * 5.00 / 1e6 + 200 * 30.00 / 1e6
                + 50 * 5.00 / 1e6 + 272 * 8.00 / 1e6 + 1256 * 30.00 / 1e6)
    assert book.cost(USAGE) == pytest.approx(expected)
    assert expected == pytest.approx(0.051106)  # 0.005 + 0.006 + 0.00025 + 0.002176 + 0.03768


def test_another_pair_of_models_and_a_dated_snapshot():
    book = PriceBook({}, mainline="gpt-5-2025-08-07", image_model="gpt-image-1")
    # gpt-5: $1.25 in, $10 out; gpt-image-1: text in $5, image in $10, image out $40
    expected = (1000 * 1.25 / 1e6 + 200 * 10.00 / 1e6
                + 50 * 5.00 / 1e6 + 272 * 10.00 / 1e6 + 1256 * 40.00 / 1e6)
    assert book.cost(USAGE) == pytest.approx(expected)


def test_image_model_defaults_to_the_apis_default():
    book = PriceBook({}, mainline="gpt-5.5")
    only_image = Usage(image_output=1000)
    assert book.cost(only_image) == pytest.approx(1000 * 30.00 / 1e6)  # gpt-image-2's $30


def test_price_table_overrides_by_model_and_kind():
    book = PriceBook({"gpt-image-2": {"image_output": 50.0}}, mainline="gpt-5.5",
                     image_model="gpt-image-2")
    expected = (1000 * 5.00 / 1e6 + 200 * 30.00 / 1e6
                + 50 * 5.00 / 1e6 + 272 * 8.00 / 1e6 + 1256 * 50.00 / 1e6)
    assert book.cost(USAGE) == pytest.approx(expected)


def test_unknown_model_warns_once_and_is_priced_conservatively(caplog):
    book = PriceBook({}, mainline="gpt-9-unheard-of", image_model="gpt-image-2")
    with caplog.at_level(logging.WARNING):
        first = book.cost(USAGE)
        book.cost(USAGE)
    # the conservative default: $10 in, $50 out for the mainline model
    expected = (1000 * 10.00 / 1e6 + 200 * 50.00 / 1e6
                + 50 * 5.00 / 1e6 + 272 * 8.00 / 1e6 + 1256 * 30.00 / 1e6)
    assert first == pytest.approx(expected)
    warnings = [r for r in caplog.records if "gpt-9-unheard-of" in r.getMessage()]
    assert len(warnings) == 1


def test_describe_style_mainline_only_cost():
    usage = Usage(text_input=3000, text_output=150)
    assert estimate_cost(usage, "gpt-5.5", {}) == pytest.approx(
        3000 * 5.00 / 1e6 + 150 * 30.00 / 1e6)


def test_worst_case_reservation():
    options = ImageOptions(quality="high", size="1536x1024", partial_images=3)
    usage = worst_case_usage(options, prompt_chars=100, input_images=2)
    # high at 1536x1024 = 4160 x 1.5 = 6240 image tokens, + 3 partial images x 100
    assert usage.image_output == 6240 + 300
    assert usage.image_input == 2 * 6240  # two input images at high fidelity
    assert usage.text_input == 4000 + 100 + 2 * 1600  # context + prompt + images as vision input
    assert usage.text_output == 2000 and usage.tool_text_input == 4000 + 100
    book = PriceBook({}, mainline="gpt-5.5", image_model="gpt-image-2")
    expected = (7300 * 5.00 / 1e6 + 2000 * 30.00 / 1e6
                + 4100 * 5.00 / 1e6 + 12480 * 8.00 / 1e6 + 6540 * 30.00 / 1e6)
    assert book.reservation(options, prompt_chars=100, input_images=2) == pytest.approx(expected)


def test_auto_quality_and_size_reserve_the_largest():
    usage = worst_case_usage(ImageOptions(quality="auto", size="auto", partial_images=0),
                             prompt_chars=0, input_images=0)
    assert usage.image_output == 6240  # high quality at 1536x1024


def test_an_unreported_image_is_counted_by_the_published_per_image_table():
    # two images of one response: high 1024x1024 (4160 output tokens) and low 1536x1024 (272 x
    # 1.5 = 408), one partial image each (+100), each reading one input image at high
    # fidelity (4160 at 1024x1024, 6240 at 1536x1024), from a 40-character prompt (10 tokens)
    usage = estimated_image_usage("gpt-image-2-2026-04-01", [("1024x1024", "high"),
                                                             ("1536x1024", "low")],
                                  partial_images=1, input_images=1, prompt_chars=40)
    assert usage == Usage(tool_text_input=20, image_input=4160 + 6240,
                          image_output=4160 + 100 + 408 + 100, estimated=True)
    # unknown size and quality: the largest preset at high quality (never under-counted)
    assert estimated_image_usage(None, [(None, None)]).image_output == 6240
    # about $0.13 for one high-quality square image at gpt-image-2's $30 per 1M output tokens
    book = PriceBook({}, mainline="gpt-5.5", image_model="gpt-image-2")
    assert book.cost(estimated_image_usage(None, [("1024x1024", "high")])) == pytest.approx(
        4160 * 30.00 / 1e6)


def test_an_estimated_usage_survives_the_store_round_trip():
    usage = Usage(image_output=272, estimated=True)
    assert Usage.from_dict(usage.to_dict()) == usage
    assert "estimated" not in Usage(image_output=272).to_dict()


def test_an_unreported_gif_counts_all_its_frames():
    # nine 512x512 frames drawn on one sheet: 9 x 262,144 pixels = 2.25 x 1024x1024, low quality
    # 272 x 2.25 = 612 tokens; `auto` size: the whole sheet, 8,294,400 pixels -> 272 x 7.91 = 2152
    assert estimated_image_usage(None, [("512x512", "low")], frames=9).image_output == 612
    assert estimated_image_usage(None, [(None, "low")], frames=9).image_output == 2152
