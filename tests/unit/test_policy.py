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


def test_channel_rules_round_trip_and_apply_only_in_their_channel():
    stored = {"max_quality": "high", "channel_rules": {"5": {"max_quality": "low", "previews": False},
                                                       "6": {}}}
    server = GuildPolicy.from_dict(stored)
    assert server.to_dict()["channel_rules"] == {"5": {"max_quality": "low", "previews": False}}
    here = EffectivePolicy(server, BASE, server.rules_for(5))
    elsewhere = EffectivePolicy(server, BASE, server.rules_for(6))
    assert (here.max_quality, elsewhere.max_quality) == ("low", "high")
    assert here.clamp(ImageOptions(quality="low", partial_images=3)).partial_images == 0
    assert elsewhere.clamp(ImageOptions(quality="low", partial_images=3)).partial_images == 3
    with pytest.raises(UserFacingError) as caught:
        here.clamp(ImageOptions(quality="medium"))
    assert caught.value.params == {"problem": "quality_channel_max", "value": "low"}


def test_a_channel_may_raise_the_servers_maximum_but_never_the_instances():
    server = GuildPolicy.from_dict({"max_size": "1024x1024", "default_quality": "high",
                                    "channel_rules": {"5": {"max_size": "3840x2160"}}})
    ceilings = Ceilings(default_options=BASE.default_options, max_size="2048x2048",
                        max_quality="medium")
    here = EffectivePolicy(server, ceilings, server.rules_for(5))
    assert here.max_size == "2048x2048" and here.max_quality == "medium"
    assert EffectivePolicy(server, ceilings, server.rules_for(6)).max_size == "1024x1024"


def test_channel_generation_rule_and_the_servers_channel_list():
    from bot.core.policy import Actor

    server = GuildPolicy.from_dict({"allowed_channels": [5],
                                    "channel_rules": {"5": {"imagine": False},
                                                      "6": {"imagine": True}}})
    member, mod = Actor(1, 9, 5), Actor(2, 9, 5, is_moderator=True)
    with pytest.raises(UserFacingError) as caught:
        EffectivePolicy(server, BASE, server.rules_for(5)).check_access(member)
    assert caught.value.params == {"reason": "channel_off"}
    EffectivePolicy(server, BASE, server.rules_for(5)).check_access(mod)
    EffectivePolicy(server, BASE, server.rules_for(6)).check_access(Actor(1, 9, 6))
    with pytest.raises(UserFacingError):
        EffectivePolicy(server, BASE, server.rules_for(7)).check_access(Actor(1, 9, 7))


def test_a_timed_block_holds_until_its_end_and_survives_storage():
    policy = GuildPolicy.from_dict(
        GuildPolicy(blocked_until={"7": 1000.0}, blocked_users=(8,)).to_dict())
    assert policy.is_blocked(7, now=999.0) and not policy.is_blocked(7, now=1000.0)
    assert policy.is_blocked(8, now=10**10) and not policy.is_blocked(9, now=0)
    assert "blocked_until" not in GuildPolicy().to_dict()


def test_a_server_on_a_presets_only_model_gets_the_nearest_preset_as_its_default() -> None:
    """DEFAULT_SIZE=1536x864 suits IMAGE_MODEL gpt-image-2; a server that chose a 2.6 model
    (presets only, SDK `size`) gets the preset of the nearest proportions, not a refusal."""
    ceilings = Ceilings(default_options=ImageOptions(size="1536x864"),
                        allowed_models=("gpt-image-2.6-flare",))
    chosen = EffectivePolicy(GuildPolicy(image_model="gpt-image-2.6-flare"), ceilings)
    assert chosen.defaults().size == "1536x1024" and chosen.defaults().model == "gpt-image-2.6-flare"
    assert chosen.clamp(chosen.defaults()).size == "1536x1024"
    not_allowed = EffectivePolicy(GuildPolicy(image_model="gpt-image-2.5-flare"), ceilings)
    assert not_allowed.image_model == "gpt-image-2"  # no longer allowed: IMAGE_MODEL
    assert not_allowed.defaults().size == "1536x864"
