"""Domain errors. Each carries an i18n message key and parameters, never a raw API payload.

The Discord layer turns any `UserFacingError` into a short message in one place; anything else is
a bug and is logged by the global error handler.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.usage import Usage


class ErrorKind(StrEnum):
    """Why a turn failed or a request was refused; the value is the i18n message key."""

    # refused before any API call
    invalid_options = "error.invalid_options"
    empty_prompt = "error.empty_prompt"
    prompt_too_long = "error.prompt_too_long"
    edit_needs_image = "error.edit_needs_image"
    bad_attachment = "error.bad_attachment"
    too_many_images = "error.too_many_images"
    queue_full = "error.queue_full"
    not_allowed = "error.not_allowed"
    limit_reached = "error.limit_reached"
    unknown_conversation = "error.unknown_conversation"
    shutting_down = "error.shutting_down"
    no_thread_here = "error.no_thread_here"
    own_key_failed = "error.own_key_failed"
    remix_source_gone = "error.remix_source_gone"
    # from the API
    invalid_request = "error.invalid_request"
    auth = "error.auth"
    rate_limited = "error.rate_limited"
    quota = "error.quota"
    server = "error.server"
    timeout = "error.timeout"
    connection = "error.connection"
    moderation = "error.moderation"
    refused = "error.refused"
    no_output = "error.no_output"
    cancelled = "error.cancelled"
    # from Discord
    upload_failed = "error.upload_failed"
    missing_permissions = "error.missing_permissions"
    thread_locked = "error.thread_locked"


class UserFacingError(Exception):
    """An error whose message is meant for the user who asked."""

    def __init__(self, kind: ErrorKind, /, **params: Any) -> None:
        self.kind = kind
        self.params = params
        super().__init__(f"{kind.name}: {params}" if params else kind.name)


class GenerationError(UserFacingError):
    """A failed call to the image API, already classified.

    `retryable` says whether the same request may be sent again (429, 5xx, connection errors);
    `retry_after` is the server's hint in seconds, if it gave one.
    """

    def __init__(
        self,
        kind: ErrorKind,
        /,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        detail: str = "",
        **params: Any,
    ) -> None:
        super().__init__(kind, **params)
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        # what the API billed for this generation although it ended without a result (failed,
        # incomplete or refused responses, earlier attempts): set by the image client
        self.billed: Usage | None = None


class ReferenceNotFound(GenerationError):
    """The API refused an `image_generation_call` reference in `input` (400, param `input`): the
    item is gone, or a bare reference is not accepted. The image must be sent as bytes."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorKind.invalid_request, detail=detail, reason=detail[:200])


class ResponseOver(GenerationError):
    """A response picked up again (after a restart) ended without a result for a passing reason
    (it failed with `server_error`, or stalled and was cancelled first): a new request for the
    same turn is safe, nothing is billed twice."""

    def __init__(self, error: GenerationError) -> None:
        super().__init__(error.kind, retryable=True, retry_after=error.retry_after,
                         detail=error.detail, **error.params)
        self.billed = error.billed


class PreviousResponseNotFound(Exception):
    """The API no longer knows the parent response: the chain must be rebuilt from our store."""


class DeliveryError(Exception):
    """Discord would not show a turn: the thread or message is gone, or a permission is missing.

    `orphaned` means there is nowhere left to show the turn (deleted thread or message);
    `transient` that the same call may succeed in a moment (5xx, 429, a dropped connection).
    """

    def __init__(
        self, kind: ErrorKind, *, orphaned: bool = False, transient: bool = False,
        detail: str = "", **params: Any
    ) -> None:
        super().__init__(f"{kind.name}: {detail}")
        self.kind = kind
        self.orphaned = orphaned
        self.transient = transient
        self.detail = detail
        self.params = params  # for the user's message, e.g. the missing permission

    def user_error(self) -> UserFacingError:
        return UserFacingError(self.kind, **self.params)
