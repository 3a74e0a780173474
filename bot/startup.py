"""Start-up failures an operator can fix, each explained in one line that says what to do.

`python -m bot` prints `explain(exc)` on stderr and exits with status 1 instead of a traceback.
The lines never contain a secret: they are built from fixed text, host names and error codes.
"""

from __future__ import annotations

import aiohttp
import discord

PORTAL = "the Developer Portal (discord.com/developers/applications)"
TOKEN_FIX = (
    f"copy the bot token again from {PORTAL} -> your app -> Bot -> Reset Token, "
    "and set DISCORD_TOKEN"
)
INTENT_FIX = (
    f"enable Message Content Intent in {PORTAL} -> your app -> Bot -> Privileged Gateway "
    "Intents, or set MESSAGE_CONTENT_INTENT=false (users then refine with /refine, "
    "@mentions or replies)"
)
REACH_FIX = "check the network, a firewall or proxy, and DISCORD_API_BASE / DISCORD_GATEWAY_URL"


class StartupError(Exception):
    """A start-up check failed; `str(error)` is the whole explanation, fix included."""

    exit_status = 1


class SettingsRefused(StartupError):
    """The settings cannot work with what is stored (e.g. server keys without their secret):
    a configuration error, exit status 2 like an invalid setting."""

    exit_status = 2


def _where(exc: aiohttp.ClientConnectorError) -> str:
    return f"{exc.host}:{exc.port}" if exc.port else exc.host


def _connection_line(exc: aiohttp.ClientConnectorError) -> str:
    where = _where(exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"Cannot reach Discord: the name {exc.host} does not resolve (DNS): {REACH_FIX}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (
            f"Cannot reach Discord at {where}: its TLS certificate was not accepted "
            f"({exc.certificate_error.__class__.__name__}): check the system clock and CA "
            "certificates, or a proxy that intercepts TLS"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return (
            f"Cannot reach Discord at {where}: the TLS handshake failed: check a proxy that "
            "intercepts TLS, or that DISCORD_API_BASE uses https only where TLS is served"
        )
    reason = exc.os_error.strerror or exc.os_error.__class__.__name__
    return f"Cannot reach Discord at {where} ({reason}): {REACH_FIX}"


def explain(exc: BaseException) -> str | None:
    """The one-line explanation of a known start-up failure, or None for anything else."""
    if isinstance(exc, StartupError):
        return str(exc)
    from bot.store.database import DatabaseError

    if isinstance(exc, DatabaseError):  # its text names the file or server (never a password)
        return f"The database cannot be used: {exc}"
    if isinstance(exc, discord.LoginFailure):
        return f"Discord rejected DISCORD_TOKEN (401 Unauthorized): {TOKEN_FIX}"
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return f"Discord refused the Message Content intent (gateway close 4014): {INTENT_FIX}"
    if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
        return f"Discord's gateway rejected DISCORD_TOKEN (close 4004): {TOKEN_FIX}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connection_line(exc)
    if isinstance(exc, discord.GatewayNotFound):
        return f"Discord did not say where its gateway is: {REACH_FIX}"
    if isinstance(exc, discord.DiscordServerError):
        return (f"Discord answered {exc.status} while the bot logged in: Discord may be down "
                "(discordstatus.com); try again later")
    return None
