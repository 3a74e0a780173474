"""Server settings bounded by the instance's ceilings."""

from __future__ import annotations

import pytest

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.options import ImageOptions
from bot.core.policy import Ceilings, EffectivePolicy, GuildPolicy, pixels

BASE = Ceilings(default_options=ImageOptions(size="auto", output_format="png"))


def policy(server: dict, **ceilings) -> EffectivePolicy:
    return EffectivePolicy(GuildPolicy.from_dict(server),
                           Ceilings(default_options=BASE.default_options, **ceilings))


def test_pixels():
    assert pixels("1536x1024") == 1536 * 1024
    assert pixels("1024X1536") == 1536 * 1024


@pytest.mark.parametrize(
    ("server", "instance", "expected"),
    [(None, None, None), ("1536x1024", None, "1536x1024"), (None, "2048x2048", "2048x2048"),
     ("3840x2160", "2048x2048", "2048x2048"), ("1024x1024", "2048x2048", "1024x1024")],
)
def test_max_size_is_the_tighter_ceiling(server, instance, expected):
    data = {"max_size": server} if server else {}
    assert policy(data, max_size=instance).max_size == expected


def test_clamp_refuses_sizes_over_the_ceiling_but_not_auto():
    p = policy({"max_size": "1536x1024"})
    assert p.clamp(ImageOptions(size="1024x1536")).size == "1024x1536"  # same pixel count
    assert p.clamp(ImageOptions(size="auto")).size == "auto"
    with pytest.raises(UserFacingError) as caught:
        p.clamp(ImageOptions(size="2048x2048"))
    assert caught.value.kind is ErrorKind.invalid_options
    assert caught.value.params == {"problem": "size_server_max", "value": "1536x1024"}


def test_quality_ceiling_is_the_lower_of_server_and_instance():
    assert policy({"max_quality": "high"}, max_quality="medium").max_quality == "medium"
    assert policy({"max_quality": "low"}, max_quality="high").max_quality == "low"
    with pytest.raises(UserFacingError):
        policy({"max_quality": "low"}).clamp(ImageOptions(quality="medium"))


def test_spend_and_image_limits_take_the_tighter_nonzero_value():
    p = policy({"user_daily_images": 10, "daily_spend_usd": 5.0},
               user_daily_images=3, guild_daily_spend_usd=0, guild_monthly_spend_usd=50)
    assert p.user_daily_images() == 3
    assert p.daily_spend() == 5.0
    assert p.monthly_spend() == 50
