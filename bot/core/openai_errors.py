"""What an error from the Responses API means: an SDK exception, an HTTP error answer, an
`error` event inside a stream, or a failed item or response, each mapped to the error kinds the
bot shows and retries by (retryable or not, after how long)."""

from __future__ import annotations

import re
from typing import Any

import openai

from bot.core.errors import ErrorKind, GenerationError, PreviousResponseNotFound, ReferenceNotFound

_EDIT_RE = re.compile(r"\bedit", re.IGNORECASE)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def error_fields(body: object) -> tuple[str, str, str, str]:
    """(code, type, param, message) from an API error body or a failed item's error object."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        return (
            str(inner.get("code") or ""),
            str(inner.get("type") or ""),
            str(inner.get("param") or ""),
            str(inner.get("message") or ""),
        )
    code = getattr(body, "code", None) or ""
    return str(code), str(getattr(body, "type", "") or ""), "", str(getattr(body, "message", "") or "")


# Outcomes of the safety system, never retried: `moderation_blocked` (an HTTP 400 or a failed
# `image_generation_call`) and the `ResponseError.code` values of a response that failed for its
# content (openai.types.responses.ResponseError, SDK 3.57).
SAFETY_CODES = frozenset(
    {"moderation_blocked", "image_content_policy_violation", "invalid_prompt", "bio_policy"}
)


def _categories(body: object) -> str:
    """The public moderation categories of an error, if it names any (`moderation_details`)."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        details = inner.get("moderation_details")
        found = details.get("categories") if isinstance(details, dict) else None
    else:
        found = getattr(getattr(body, "moderation_details", None), "categories", None)
    if not isinstance(found, list):
        return ""
    return ", ".join(str(c) for c in found if c)


def _safety_error(body: object, message: str) -> GenerationError:
    category = _categories(body)
    params = {"category": category} if category else {}
    return GenerationError(ErrorKind.moderation, detail=message, **params)


# A rate limit that no wait can satisfy: one request larger than the per-minute limit
# ("Request too large for … on tokens per min (TPM): Limit 30000, Requested 35364"; vercel/ai
# openai-response-failed-only.1.chunks.txt). Retrying it only fails again.
_TOO_LARGE_RE = re.compile(r"\brequest too large\b", re.IGNORECASE)


def classify_error_body(body: object) -> GenerationError:
    """Classify an error that arrived as data (an `error` event, a failed item or response):
    by its `code`, or by its `type` when the code is null (a recorded `error` event:
    `{"type": "server_error", "code": null}`)."""
    code, type_, _param, message = error_fields(body)
    if code in SAFETY_CODES or type_ == "image_generation_user_error":
        return _safety_error(body, message)
    key = code or type_
    if key == "insufficient_quota" or type_ == "insufficient_quota":
        return GenerationError(ErrorKind.quota, detail=message)
    if key == "rate_limit_exceeded":
        if _TOO_LARGE_RE.search(message):
            return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])
        return GenerationError(ErrorKind.rate_limited, retryable=True, detail=message)
    if key in ("server_error", "internal_error"):
        return GenerationError(ErrorKind.server, retryable=True, detail=message)
    return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])


def classify(exc: BaseException) -> GenerationError | PreviousResponseNotFound:
    """Map an SDK exception to our error kinds."""
    if isinstance(exc, openai.APITimeoutError):
        return GenerationError(ErrorKind.timeout, retryable=True, detail=str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return GenerationError(ErrorKind.connection, retryable=True, detail=str(exc))
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, openai.APIError):  # an `error` event inside the stream
        return classify_error_body(exc.body)
    return GenerationError(ErrorKind.connection, retryable=True, detail=repr(exc))


def _classify_status(exc: openai.APIStatusError) -> GenerationError | PreviousResponseNotFound:
    """Map an HTTP error answer to our error kinds."""
    code, type_, param, message = error_fields(exc.body)
    status = exc.status_code
    if status == 429:
        if code == "insufficient_quota" or type_ == "insufficient_quota":
            return GenerationError(ErrorKind.quota, detail=message)
        if _TOO_LARGE_RE.search(message):  # larger than the limit itself: waiting cannot help
            return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])
        return GenerationError(
            ErrorKind.rate_limited, retryable=True, retry_after=_retry_after(exc), detail=message
        )
    if status in (401, 403):
        return GenerationError(ErrorKind.auth, detail=message)
    if code == "previous_response_not_found" or (
        param == "previous_response_id" and status in (400, 404)
    ):
        return PreviousResponseNotFound(message)
    if code in SAFETY_CODES or type_ == "image_generation_user_error":
        return _safety_error(exc.body, message)
    if status in (400, 404) and param == "input":
        return ReferenceNotFound(message)  # an input item it does not have (or will not take)
    if status == 400 and (
        "action" in param or code == "image_edit_requires_image" or _EDIT_RE.search(message)
    ):
        return GenerationError(ErrorKind.edit_needs_image, detail=message)
    if status in (408, 409) or status >= 500:
        return GenerationError(
            ErrorKind.server, retryable=True, retry_after=_retry_after(exc), detail=message
        )
    return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])


def names_a_reference(exc: openai.APIStatusError, params: dict[str, Any]) -> bool:
    """A 400/404 whose message names one of the items the request refers to by id: that item
    is gone, or is not taken that way (e.g. without its reasoning item). The image must then be
    sent itself."""
    if exc.status_code not in (400, 404):
        return False
    message = error_fields(exc.body)[3] or exc.message
    ids = [item.get("id") for item in params.get("input") or ()
           if isinstance(item, dict) and item.get("type") in _REFERENCE_TYPES]
    return any(isinstance(i, str) and i in message for i in ids)


_REFERENCE_TYPES = ("image_generation_call", "item_reference")


def is_stream_error(exc: BaseException) -> bool:
    """An error the SDK raised for an `error` event inside a stream (not an HTTP answer)."""
    return isinstance(exc, openai.APIError) and not isinstance(
        exc, (openai.APIStatusError, openai.APIConnectionError)
    )
