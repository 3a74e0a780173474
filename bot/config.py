"""Typed settings for the whole process, read from the environment and `.env`.

`Settings()` is created once in `bot.__main__` and passed down; nothing reads the environment
anywhere else. Secrets are `SecretStr` so they never show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.image_models import DEFAULT_IMAGE_MODEL, MAX_FRAMES
from bot.core.options import Complexity, Moderation, OutputFormat, Quality


def listed(value: object) -> object:
    """A list setting as written in the environment: commas or spaces between the items, or a
    JSON list; anything else is left for pydantic to check."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part for part in text.replace(",", " ").split() if part]
    return value


class Settings(BaseSettings):
    """Every knob of the bot. Environment variables use the upper-case field names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` in .env means "not set", as .env.example reads
    )

    # --- secrets (required) ---
    discord_token: SecretStr = Field(min_length=1)
    openai_api_key: SecretStr = Field(min_length=1)

    # --- endpoints ---
    openai_base_url: str | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None

    # --- models and generation defaults ---
    openai_model: str = "gpt-5.5"
    image_model: str = DEFAULT_IMAGE_MODEL  # always sent: sizes and prices follow its table
    # the image models servers may choose among with /imagine-settings (IMAGE_MODEL is always
    # among them); empty = IMAGE_MODEL only
    image_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_complexity: Complexity = "high"
    max_gif_frames: int = Field(default=MAX_FRAMES, ge=2, le=MAX_FRAMES)
    default_size: str = "auto"
    default_quality: Quality = "auto"
    default_format: OutputFormat = "png"
    default_partial_images: int = Field(default=2, ge=0, le=3)
    default_moderation: Moderation = "auto"
    allow_low_moderation: bool = True
    max_quality: Quality = "high"
    max_size: str | None = None  # e.g. 2048x2048: no image larger (in pixels) than this
    max_input_images: int = Field(default=4, ge=0, le=10)
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_prompt_chars: int = Field(default=4000, ge=1)
    store_responses: bool = True
    background_responses: bool = True
    request_timeout_seconds: float = Field(default=600.0, gt=0)
    queued_deadline_seconds: float = Field(default=120.0, gt=0)

    # --- storage and logging ---
    database_path: Path = Path("data/imagine.db")
    database_url: SecretStr | None = None  # postgresql://…: PostgreSQL instead of the SQLite file
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- Discord ---
    message_content_intent: bool = True
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None  # a fleet process: e.g. 0,1
    dev_guild_id: int | None = None
    progress_edit_interval: float = Field(default=1.5, ge=0.0)
    # an interaction this much later than the quickest recent one when the bot reaches it (by
    # its id's timestamp) gets an immediate private "busy, try again" instead of work that
    # would answer after Discord's 3 s (0 = never shed)
    ack_shed_seconds: float = Field(default=2.0, ge=0.0, lt=3.0)
    # a TrueType/OpenType font for the /history sheet's captions (e.g. Noto Sans CJK for
    # Chinese prompts and names); none = Pillow's built-in font, which has Latin letters only
    sheet_font_path: Path | None = None

    # --- scheduling, retries, shutdown ---
    max_concurrent_generations: int = Field(default=4, ge=1)
    per_user_concurrent: int = Field(default=1, ge=1)
    per_user_queued: int = Field(default=3, ge=0)
    retry_max_attempts: int = Field(default=4, ge=0)
    retry_max_seconds: float = Field(default=120.0, ge=0)
    retry_base_delay: float = Field(default=1.0, ge=0)
    # how long a billed result is retried while Discord answers 5xx/429 or drops connections
    delivery_retry_seconds: float = Field(default=300.0, ge=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    fleet_queue: bool = False  # PostgreSQL only: every process claims turns from one queue
    lease_seconds: float = Field(default=30.0, gt=0)  # a dead process's turns resume after this

    # --- quotas and cost (0 = unlimited); server settings may only lower these ---
    user_daily_images: int = Field(default=0, ge=0)
    guild_daily_spend_usd: float = Field(default=0.0, ge=0)
    guild_monthly_spend_usd: float = Field(default=0.0, ge=0)
    # USD per 1M tokens, keyed by model, over the published prices in bot/core/costs.py;
    # PRICE_TABLE='{"gpt-image-2": {"image_output": 30}, "default": {...}}'
    price_table: dict[str, dict[str, float]] = Field(default_factory=dict)
    instance_daily_spend_usd: float = Field(default=0.0, ge=0)
    instance_monthly_spend_usd: float = Field(default=0.0, ge=0)

    # --- direct messages (off by default: a DM would spend without any server's rules) ---
    allow_dms: bool = False
    dm_allowed_users: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # --- servers' own OpenAI keys (off unless set): the secret that encrypts them at rest ---
    key_encryption_secret: SecretStr | None = None

    # --- privacy and spend (issue 21) ---
    # days the images attached to a request are kept once its turn is over (0: none)
    input_retention_days: float = Field(default=30.0, ge=0)
    # prompts a rebuilt chain carries (besides the parent image): the latest ones
    max_chain_turns: int = Field(default=20, ge=1)
    # image bytes one /history export holds at most (what is left out is listed)
    export_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024 * 1024)

    # --- metrics ---
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # set when BACKGROUND_RESPONSES was asked for without STORE_RESPONSES (and so turned off)
    _background_downgraded: bool = PrivateAttr(default=False)

    @property
    def background_downgraded(self) -> bool:
        """BACKGROUND_RESPONSES=true was set with STORE_RESPONSES=false, so it is off."""
        return self._background_downgraded

    @field_validator("image_model")
    @classmethod
    def _check_image_model(cls, value: str) -> str:
        from bot.core.image_models import retired_line

        line = retired_line(value.strip())
        if line:
            raise ValueError(line)
        return value.strip()

    @field_validator("image_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        """`IMAGE_MODELS=gpt-image-2,gpt-image-2.6-flare` (commas or spaces) or a JSON list."""
        return listed(value)

    @field_validator("image_models")
    @classmethod
    def _check_image_models(cls, value: list[str]) -> list[str]:
        from bot.core.image_models import retired_line

        for line in filter(None, map(retired_line, value)):
            raise ValueError(line)
        return value

    @property
    def allowed_image_models(self) -> tuple[str, ...]:
        """IMAGE_MODEL first, then the other IMAGE_MODELS, without repeats."""
        return tuple(dict.fromkeys([self.image_model, *self.image_models]))

    @field_validator("default_size", "max_size")
    @classmethod
    def _check_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        from bot.core.errors import UserFacingError  # local imports: config stays import-light
        from bot.core.options import parse_size

        if value is None:
            return None
        image_model = info.data.get("image_model")
        try:
            size = parse_size(value, image_model)
        except UserFacingError as error:
            if error.params.get("problem") == "size_preset_only":
                raise ValueError(
                    f"IMAGE_MODEL {image_model} takes only auto, 1024x1024, 1536x1024, 1024x1536"
                ) from None
            raise ValueError(
                "use auto, a preset, or WIDTHxHEIGHT (multiples of 16, ratio 1:3 to 3:1, "
                "655,360 to 3840x2160 pixels)"
            ) from None
        if size == "auto" and info.field_name == "max_size":
            raise ValueError("must be WIDTHxHEIGHT, not auto")
        return size

    @field_validator("key_encryption_secret")
    @classmethod
    def _check_key_secret(cls, value: SecretStr | None) -> SecretStr | None:
        from bot.core.keys import secret_problem

        problem = secret_problem(value.get_secret_value()) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("sheet_font_path")
    @classmethod
    def _check_font(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no font file at {value}")
        return value

    @field_validator("dm_allowed_users", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """`DM_ALLOWED_USERS=123,456` (commas or spaces) as well as a JSON list."""
        return listed(value)

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_shards(cls, value: object) -> object:
        """`SHARD_IDS=0,1` (commas or spaces) as well as a JSON list; empty = every shard."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part for part in text.replace(",", " ").split() if part]
        return value

    @model_validator(mode="after")
    def _check_defaults_for_the_model(self) -> Settings:
        """DEFAULT_QUALITY and DEFAULT_FORMAT must be what IMAGE_MODEL takes (its row in
        bot/core/image_models.py), or every turn would be refused."""
        from bot.core.image_models import spec_of

        spec = spec_of(self.image_model)
        for name, value, allowed in (("DEFAULT_QUALITY", self.default_quality, spec.qualities),
                                     ("DEFAULT_FORMAT", self.default_format, spec.formats)):
            if value not in allowed:
                raise ValueError(f"{name}={value} is not taken by IMAGE_MODEL {self.image_model} "
                                 f"(it takes {', '.join(allowed)})")
        return self

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("SHARD_IDS needs SHARD_COUNT (the fleet's total number of shards)")
            bad = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if bad or len(set(self.shard_ids)) != len(self.shard_ids) or not self.shard_ids:
                raise ValueError(
                    f"SHARD_IDS must be distinct numbers from 0 to {self.shard_count - 1}"
                )
        return self

    @model_validator(mode="after")
    def _check_fleet(self) -> Settings:
        if self.fleet_queue and self.database_url is None:
            raise ValueError("FLEET_QUEUE needs DATABASE_URL (the fleet shares one PostgreSQL)")
        return self

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it unset for SQLite)")
        return value

    @model_validator(mode="after")
    def _check_background(self) -> Settings:
        if self.background_responses and not self.store_responses:
            # Background responses need store=true; quietly fall back to foreground streaming.
            self._background_downgraded = "background_responses" in self.model_fields_set
            self.background_responses = False
        return self
