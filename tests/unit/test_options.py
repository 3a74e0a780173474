"""Image options: sizes, the validity of combinations, inheritance, and the tool parameters."""

from __future__ import annotations

import pytest

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.options import ImageOptions, parse_size


def problem_of(excinfo: pytest.ExceptionInfo[UserFacingError]) -> str:
    assert excinfo.value.kind is ErrorKind.invalid_options
    return excinfo.value.params["problem"]


# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize("preset", ["auto", "1024x1024", "1536x1024", "1024x1536"])
def test_parse_size_presets(preset: str) -> None:
    assert parse_size(preset) == preset


def test_parse_size_presets_are_normalised() -> None:
    assert parse_size("  AUTO ") == "auto"
    assert parse_size("1536X1024") == "1536x1024"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2048x1152", "2048x1152"),
        (" 2048 X 1152 ", "2048x1152"),
        ("2048×1152", "2048x1152"),
        ("1024*640", "1024x640"),
        ("3840x2160", "3840x2160"),  # the pixel maximum exactly
        ("3840x1280", "3840x1280"),  # 3:1 exactly
        ("1024x640", "1024x640"),  # the pixel minimum (655,360) exactly
        ("1536x512", "1536x512"),  # 786,432 pixels at 3:1
    ],
)
def test_parse_size_custom_valid(value: str, expected: str) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1000x1000", "size_multiple"),
        ("1024x1000", "size_multiple"),
        ("3840x1264", "size_ratio"),  # a hair beyond 3:1
        ("512x2048", "size_ratio"),  # 1:4
        ("3840x3840", "size_max"),  # ratio fine, too many pixels
        ("4096x2048", "size_max"),  # longest edge over 3840
        ("256x256", "size_min"),
        ("512x512", "size_min"),  # 262,144 pixels
        ("1008x640", "size_min"),  # 645,120: a hair under the minimum
        ("big", "size_format"),
        ("", "size_format"),
        ("1024", "size_format"),
        ("1024x", "size_format"),
        ("-1024x1024", "size_format"),
        ("1024x1024x3", "size_format"),
        ("1e3x1e3", "size_format"),
    ],
)
def test_parse_size_refusals(value: str, problem: str) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        parse_size(value)
    assert problem_of(excinfo) == problem
    if problem != "size_min":
        assert excinfo.value.params["value"] == value


# --------------------------------------------------------------------------- validated


def test_validated_normalises_size_and_keeps_the_rest() -> None:
    options = ImageOptions(
        action="edit", size="2048 x 1152", quality="high", output_format="webp", compression=80
    )
    checked = options.validated()
    assert checked.size == "2048x1152"
    assert checked == ImageOptions(
        action="edit", size="2048x1152", quality="high", output_format="webp", compression=80
    )


def test_validated_accepts_an_empty_set() -> None:
    assert ImageOptions().validated() == ImageOptions()


def test_transparent_jpeg_is_refused() -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(background="transparent", output_format="jpeg").validated()
    assert problem_of(excinfo) == "transparent_jpeg"
    # transparent is fine with png and webp
    ImageOptions(background="transparent", output_format="png").validated()
    ImageOptions(background="transparent", output_format="webp").validated()
    ImageOptions(background="opaque", output_format="jpeg").validated()


@pytest.mark.parametrize("fmt", [None, "png"])
def test_compression_with_png_is_refused(fmt: str | None) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format=fmt, compression=50).validated()
    assert problem_of(excinfo) == "compression_png"


@pytest.mark.parametrize("value", [-1, 101])
def test_compression_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format="jpeg", compression=value).validated()
    assert problem_of(excinfo) == "compression_range"
    assert excinfo.value.params["value"] == value


@pytest.mark.parametrize("value", [0, 100])
def test_compression_bounds_are_accepted(value: int) -> None:
    checked = ImageOptions(output_format="jpeg", compression=value).validated()
    assert checked.compression == value


@pytest.mark.parametrize("value", [-1, 4])
def test_partial_images_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(partial_images=value).validated()
    assert problem_of(excinfo) == "partial_range"


@pytest.mark.parametrize("value", [0, 3])
def test_partial_images_bounds_are_accepted(value: int) -> None:
    assert ImageOptions(partial_images=value).validated().partial_images == value


def test_quality_ceiling() -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(quality="high").validated(max_quality="medium")
    assert problem_of(excinfo) == "quality_max"
    assert excinfo.value.params["value"] == "medium"
    with pytest.raises(UserFacingError):
        ImageOptions(quality="medium").validated(max_quality="low")
    # at or below the ceiling, and "auto", pass
    ImageOptions(quality="medium").validated(max_quality="medium")
    ImageOptions(quality="low").validated(max_quality="medium")
    ImageOptions(quality="auto").validated(max_quality="low")


def test_low_moderation_can_be_refused() -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(moderation="low").validated(allow_low_moderation=False)
    assert problem_of(excinfo) == "moderation_low"
    assert ImageOptions(moderation="low").validated().moderation == "low"
    ImageOptions(moderation="auto").validated(allow_low_moderation=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "paint"),
        ("quality", "ultra"),
        ("output_format", "bmp"),
        ("background", "clear"),
        ("moderation", "off"),
    ],
)
def test_unknown_choices_are_refused(field: str, value: str) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(**{field: value}).validated()
    assert problem_of(excinfo) == "choice"
    assert excinfo.value.params["option"] == field
    assert excinfo.value.params["value"] == value


def test_invalid_size_inside_options_is_refused() -> None:
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(size="1000x1000").validated()
    assert problem_of(excinfo) == "size_multiple"


# --------------------------------------------------------------------------- inheritance


def test_merged_over_prefers_own_choices_and_inherits_the_rest() -> None:
    base = ImageOptions(
        size="1024x1024", quality="low", output_format="png", moderation="auto", partial_images=2
    )
    mine = ImageOptions(size="1536x1024", output_format="webp", compression=70, partial_images=0)
    merged = mine.merged_over(base)
    assert merged == ImageOptions(
        size="1536x1024",
        quality="low",
        output_format="webp",
        compression=70,
        moderation="auto",
        partial_images=0,  # 0 is a choice, not "unset"
    )
    # nothing chosen: the base comes through unchanged
    assert ImageOptions().merged_over(base) == base
    # the inputs are untouched (frozen dataclasses)
    assert mine.quality is None and base.size == "1024x1024"


def test_sticky_drops_only_the_action() -> None:
    options = ImageOptions(action="edit", size="1024x1536", quality="high")
    assert options.sticky() == ImageOptions(size="1024x1536", quality="high")
    assert options.action == "edit"


def test_chosen_and_from_dict_round_trip() -> None:
    options = ImageOptions(size="1024x1024", compression=0, partial_images=0)
    assert options.chosen() == {"size": "1024x1024", "compression": 0, "partial_images": 0}
    assert ImageOptions.from_dict(options.chosen()) == options
    assert ImageOptions.from_dict({"size": "auto", "unknown": 1}) == ImageOptions(size="auto")
    assert ImageOptions.from_dict(None) == ImageOptions()


# --------------------------------------------------------------------------- tool params


def test_tool_params_maps_every_field() -> None:
    options = ImageOptions(
        action="edit",
        size="1536x1024",
        quality="high",
        background="opaque",
        output_format="jpeg",
        compression=0,
        moderation="low",
        partial_images=0,
    )
    assert options.tool_params() == {
        "action": "edit",
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "jpeg",
        "output_compression": 0,
        "moderation": "low",
        "partial_images": 0,
    }


def test_tool_params_leaves_unset_fields_to_the_api() -> None:
    assert ImageOptions().tool_params() == {}
    assert ImageOptions(size="auto", partial_images=2).tool_params() == {
        "size": "auto",
        "partial_images": 2,
    }
    assert "compression" not in ImageOptions(compression=5).tool_params()


@pytest.mark.parametrize(
    "model", ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-1.5-2025-12-16"]
)
def test_preset_only_models_get_presets(model: str) -> None:
    for preset in ("auto", "1024x1024", "1536x1024", "1024x1536", "1536X1024"):
        assert parse_size(preset, model) == preset.lower()
    with pytest.raises(UserFacingError) as excinfo:
        parse_size("1536x864", model)
    assert problem_of(excinfo) == "size_preset_only"
    assert excinfo.value.params["model"] == model


@pytest.mark.parametrize("model", [None, "gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-flare"])
def test_models_with_custom_sizes(model: str | None) -> None:
    assert parse_size("1536x864", model) == "1536x864"
    assert parse_size("3840x2160", model) == "3840x2160"


def test_validated_checks_sizes_for_the_image_model() -> None:
    options = ImageOptions(size="2048x1152")
    assert options.validated().size == "2048x1152"
    with pytest.raises(UserFacingError) as excinfo:
        options.validated(image_model="gpt-image-1.5")
    assert problem_of(excinfo) == "size_preset_only"


def test_settings_refuse_a_default_size_the_image_model_does_not_take() -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    with pytest.raises(ValidationError, match="takes only auto"):
        Settings(discord_token="t", openai_api_key="k", image_model="gpt-image-1.5",
                 default_size="1536x864", _env_file=None)
    ok = Settings(discord_token="t", openai_api_key="k", image_model="gpt-image-2",
                  default_size="1536x864", _env_file=None)
    assert ok.default_size == "1536x864"


# ------------------------------------------------------------------ sizes people say
@pytest.mark.parametrize(("said", "custom", "presets_only"), [
    ("square", "1024x1024", "1024x1024"),
    ("landscape", "1536x1024", "1536x1024"),
    ("Portrait", "1024x1536", "1024x1536"),
    ("16:9", "1536x864", "1536x1024"),
    ("9:16", "864x1536", "1024x1536"),
    ("3:2", "1536x1024", "1536x1024"),
    ("21:9", "1536x656", "1536x1024"),
    ("横向", "1536x1024", "1536x1024"),
])
def test_shapes_and_ratios_map_to_the_nearest_size_the_model_takes(said, custom, presets_only):
    from bot.core.options import parse_size

    assert parse_size(said, "gpt-image-2") == custom
    assert parse_size(said, "gpt-image-1") == presets_only


@pytest.mark.parametrize(("typed", "nearest"), [
    ("1920x1080", "1920x1088"),   # edges to steps of 16
    ("100x100", "816x816"),       # up to the pixel minimum (655,360)
    ("5000x5000", "2880x2880"),   # down to the pixel maximum (8,294,400)
    ("4000x1000", "3456x1152"),   # ratio 4:1 brought to 3:1
])
def test_autocomplete_suggests_the_nearest_valid_size(typed, nearest):
    from bot.core.options import parse_size, suggest_size

    assert suggest_size(typed, "gpt-image-2") == nearest
    assert parse_size(nearest, "gpt-image-2") == nearest  # and it is valid
    assert suggest_size(typed, "gpt-image-1") in ("1024x1024", "1536x1024", "1024x1536")


def test_a_ratio_is_kept_as_said_until_validated():
    from bot.core.options import ImageOptions, checked_size

    assert checked_size(" 16:9 ") == "16:9"
    assert checked_size("1536X864") == "1536x864"
    options = ImageOptions(size=checked_size("16:9"))
    assert options.validated(image_model="gpt-image-1").size == "1536x1024"
    assert options.validated(image_model="gpt-image-2").size == "1536x864"


@pytest.mark.parametrize(("like", "model", "ceiling", "largest"), [
    ("1536x1024", None, "2048x2048", "2496x1664"),  # 3:2 within 4,194,304 pixels
    ("1024x1024", None, None, "2880x2880"),          # square at the pixel maximum
    ("1536x864", None, None, "3840x2160"),           # 16:9 at the edge maximum
    (None, None, "1024x1024", "1024x1024"),          # unknown proportions: square
    ("1024x1536", "gpt-image-1", None, "1024x1536"), # presets only: the preset of its shape
])
def test_the_largest_size_with_the_same_proportions(like, model, ceiling, largest):
    from bot.core.options import largest_size

    assert largest_size(like, model, ceiling) == largest


def test_each_image_model_takes_what_its_row_says() -> None:
    """bot/core/image_models.py, read from SDK 3.63 `ImageGeneration`: xhigh on 2.5 only, GIF
    and complexity on 2.6 only, transparent needs png/webp."""
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(quality="xhigh").validated(image_model="gpt-image-2")
    assert problem_of(excinfo) == "model_quality"
    assert ImageOptions(quality="max").validated(
        image_model="gpt-image-2.5-flare", max_quality="max").quality == "max"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format="gif").validated(image_model="gpt-image-2.5-sunburst")
    assert problem_of(excinfo) == "model_format"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(complexity="high").validated(image_model="gpt-image-2")
    assert problem_of(excinfo) == "model_complexity"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(complexity="high").validated(image_model="gpt-image-2.6-flare",
                                                  max_complexity="medium")
    assert problem_of(excinfo) == "complexity_max"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format="gif", background="transparent").validated(
            image_model="gpt-image-2.6-flare")
    assert problem_of(excinfo) == "transparent_jpeg"
    # the turn's own model wins over the configured one
    assert ImageOptions(model="gpt-image-2.6-flare", complexity="low").validated(
        image_model="gpt-image-2").complexity == "low"


def test_gif_frames_fit_one_sheet_and_take_no_previews() -> None:
    """9 frames of 1024x1024 exceed the 8,294,400-pixel sheet: the frame shrinks to 960x960
    (9 x 960 x 960 = 8,294,400); previews are dropped (the API refuses them with GIF)."""
    gif = ImageOptions(output_format="gif", size="1024x1024", partial_images=2).validated(
        image_model="gpt-image-2.6-sunburst")
    assert (gif.size, gif.frame_count, gif.partial_images) == ("960x960", 9, 0)
    sixteen = ImageOptions(output_format="gif", size="1024x1024", frame_count=16).validated(
        image_model="gpt-image-2.6-sunburst")
    assert sixteen.size == "720x720"  # 16 x 720 x 720 = 8,294,400
    for frames in (1, 17):
        with pytest.raises(UserFacingError) as excinfo:
            ImageOptions(output_format="gif", frame_count=frames).validated(
                image_model="gpt-image-2.6-sunburst")
        assert problem_of(excinfo) == "frames_range"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format="gif", frame_count=12).validated(
            image_model="gpt-image-2.6-sunburst", max_frames=8)
    assert problem_of(excinfo) == "frames_range"
    with pytest.raises(UserFacingError) as excinfo:
        ImageOptions(output_format="gif", compression=50).validated(
            image_model="gpt-image-2.6-sunburst")
    assert problem_of(excinfo) == "compression_png"


def test_a_retired_image_model_stops_start_up_in_one_line() -> None:
    from pydantic import ValidationError

    from bot.__main__ import config_error
    from bot.config import Settings

    with pytest.raises(ValidationError) as excinfo:
        Settings(discord_token="t", openai_api_key="k", image_model="gpt-image-1")
    line = config_error(excinfo.value)
    assert "\n" not in line
    assert "IMAGE_MODEL: gpt-image-1 was shut down on 2026-10-23" in line
    assert Settings(discord_token="t", openai_api_key="k").image_model == "gpt-image-2"


def test_default_quality_and_format_must_suit_the_image_model() -> None:
    from pydantic import ValidationError

    from bot.__main__ import config_error
    from bot.config import Settings

    with pytest.raises(ValidationError) as excinfo:
        Settings(discord_token="t", openai_api_key="k", default_format="gif")
    assert "DEFAULT_FORMAT=gif is not taken by IMAGE_MODEL gpt-image-2" in config_error(
        excinfo.value)
    ok = Settings(discord_token="t", openai_api_key="k", image_model="gpt-image-2.6-flare",
                  default_format="gif")
    assert ok.default_format == "gif"
