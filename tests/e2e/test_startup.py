"""Start-up failures as an operator sees them: `python -m bot` as a child process against the
fakes (or a closed port, or a TLS server it cannot trust) prints one line that says what to do,
exits with status 1, shows no traceback and never the token or the key."""

from __future__ import annotations

import datetime
import socket
import ssl
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.e2e.conftest import SECRET_KEY, SECRET_TOKEN
from tests.e2e.test_process import bot_env, clean_environ, run_cli
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX child processes")


async def start_bot(discord_fake: FakeDiscord, openai_fake: FakeOpenAI, tmp_path: Path,
                    **extra: str) -> tuple[int, str, str]:
    """Run `python -m bot` until it exits (it must: every case here is a start-up failure)."""
    env = clean_environ() | bot_env(discord_fake, openai_fake, tmp_path / "bot.db",
                                    LOG_LEVEL="WARNING", **extra)
    return await run_cli(env=env, cwd=tmp_path, timeout=60)


def the_one_line(code: int, out: str, err: str) -> str:
    """Exit status 1 and exactly one line on stderr, with no traceback and no secret."""
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert out == ""
    assert "Traceback" not in err
    assert SECRET_TOKEN not in err and SECRET_KEY not in err
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_discord_refusing_connections_is_one_line(openai_fake, tmp_path):
    port = closed_port()
    fake = FakeDiscord()  # not started: only its settings shape is used
    fake.api_base = f"http://127.0.0.1:{port}/api/v10"
    fake.gateway_url = f"ws://127.0.0.1:{port}/gateway"
    line = the_one_line(*await start_bot(fake, openai_fake, tmp_path))
    assert line.startswith(f"Cannot reach Discord at 127.0.0.1:{port} (")
    assert "DISCORD_API_BASE" in line
    assert openai_fake.requests == []  # it stopped before anything else


async def test_rejected_discord_token_is_one_line(openai_fake, tmp_path):
    async with FakeDiscord(token_accepted=False) as fake:
        line = the_one_line(*await start_bot(fake, openai_fake, tmp_path))
        assert [r.path for r in fake.request_log] == ["/users/@me"]
        assert fake.request_log[0].status == 401
    assert line.startswith("Discord rejected DISCORD_TOKEN (401 Unauthorized): ")
    assert "Reset Token" in line


async def test_unapproved_message_content_intent_is_one_line(openai_fake, tmp_path):
    async with FakeDiscord(message_content_intent_allowed=False) as fake:
        line = the_one_line(*await start_bot(fake, openai_fake, tmp_path))
        [identify] = fake.identify_payloads
        assert identify["intents"] & (1 << 15)
    assert line.startswith("Discord refused the Message Content intent (gateway close 4014): ")
    assert "Privileged Gateway Intents" in line
    assert "MESSAGE_CONTENT_INTENT=false" in line


async def test_rejected_openai_key_is_one_line(discord_fake, openai_fake, tmp_path):
    openai_fake.key_accepted = False
    line = the_one_line(*await start_bot(discord_fake, openai_fake, tmp_path))
    assert line.startswith("OpenAI rejected OPENAI_API_KEY (invalid_api_key): ")
    assert "OPENAI_API_KEY" in line
    assert [r.path for r in openai_fake.requests] == ["/v1/models/gpt-5.5"]
    assert discord_fake.identify_payloads == []  # it never went online
    assert discord_fake.command_syncs == 0


async def test_unknown_model_is_one_line(discord_fake, openai_fake, tmp_path):
    code, out, err = await start_bot(discord_fake, openai_fake, tmp_path,
                                     IMAGE_MODEL="gpt-image-0-nonexistent")
    line = the_one_line(code, out, err)
    assert line == ("IMAGE_MODEL=gpt-image-0-nonexistent does not exist or this key cannot use "
                    "it: set IMAGE_MODEL to a model your OpenAI project can use")
    assert [r.path for r in openai_fake.requests] == [
        "/v1/models/gpt-5.5", "/v1/models/gpt-image-0-nonexistent",
    ]
    assert discord_fake.identify_payloads == []


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a freshly made self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


async def test_untrusted_tls_certificate_is_one_line(openai_fake, tmp_path):
    """A TLS endpoint whose certificate the system does not trust (as behind an intercepting
    proxy): the bot refuses it and says so, instead of a traceback."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed_context(tmp_path))
    await site.start()
    port = runner.addresses[0][1]
    try:
        fake = FakeDiscord()  # not started: only its settings shape is used
        fake.api_base = f"https://127.0.0.1:{port}/api/v10"
        fake.gateway_url = f"wss://127.0.0.1:{port}/gateway"
        line = the_one_line(*await start_bot(fake, openai_fake, tmp_path))
    finally:
        await runner.cleanup()
    assert line.startswith(f"Cannot reach Discord at 127.0.0.1:{port}: its TLS certificate was "
                           "not accepted")


async def test_unreachable_openai_only_warns_and_the_bot_serves(discord_fake, openai_fake,
                                                                tmp_path):
    """OpenAI unreachable at start-up is not fatal (it may be a passing outage): the bot comes
    online and logs one warning that says what to check."""
    from tests.e2e.harness import BotProcess

    port = closed_port()
    log_path = tmp_path / "bot.log"
    env = bot_env(discord_fake, openai_fake, tmp_path / "bot.db",
                  OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", LOG_LEVEL="INFO")
    bot = BotProcess(env, log_path=str(log_path))
    await bot.start(discord_fake)
    try:
        assert discord_fake.identify_payloads  # it went online
    finally:
        assert await bot.stop() == 0
    log = log_path.read_text()
    assert (f"OpenAI start-up check: could not reach OpenAI at http://127.0.0.1:{port}/v1/ "
            "(connection failed): check the network, a proxy or OPENAI_BASE_URL") in log
    assert "Traceback" not in log


# ------------------------------------------------------------------ servers' own keys (issue 21)
OLD_SECRET = "the operator's first secret, long enough: 0001"
NEW_SECRET = "the operator's next secret, long enough too: 0002"
SERVER_KEY = "server-own-key-startup-0123456789"  # not a real key format on purpose


async def stored_keys(db_path: Path, sealed: dict[int, str]) -> None:
    """A database whose servers set their own keys (sealed as given)."""
    from bot.store.repositories import Store

    store = await Store.open(db_path)
    try:
        for guild_id, value in sealed.items():
            await store.server_keys.put(guild_id, value)
    finally:
        await store.close()


def sealed_the_old_way(secret: str, api_key: str) -> str:
    """Fernet keyed by a bare SHA-256 of the secret: how keys were sealed before issue 21."""
    import base64
    import hashlib

    from cryptography.fernet import Fernet

    fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))
    return fernet.encrypt(api_key.encode()).decode()


def exit_2_in_one_line(code: int, out: str, err: str) -> str:
    assert code == 2, err
    [line] = err.splitlines()
    assert out == "" and "Traceback" not in err
    assert SECRET_TOKEN not in err and SECRET_KEY not in err and SERVER_KEY not in err
    return line


@pytest.mark.parametrize("secret", [None, NEW_SECRET], ids=["secret-removed", "secret-changed"])
async def test_stored_keys_without_the_secret_that_opens_them_refuse_to_start(
    discord_fake, openai_fake, tmp_path, secret
):
    """Never billed to the operator's key instead, never failing every turn unannounced."""
    await stored_keys(tmp_path / "bot.db", {discord_fake.guild_id: sealed_the_old_way(
        OLD_SECRET, SERVER_KEY)})
    extra = {"KEY_ENCRYPTION_SECRET": secret} if secret else {}
    line = exit_2_in_one_line(*await start_bot(discord_fake, openai_fake, tmp_path, **extra))
    assert "KEY_ENCRYPTION_SECRET" in line
    assert "1 server(s) have their own OpenAI key" in line or "any of the 1 stored" in line
    assert (NEW_SECRET not in line) and (OLD_SECRET not in line)
    assert openai_fake.create_requests() == [] and discord_fake.identify_payloads == []


async def test_a_short_secret_is_a_configuration_error(discord_fake, openai_fake, tmp_path):
    line = exit_2_in_one_line(*await start_bot(discord_fake, openai_fake, tmp_path,
                                               KEY_ENCRYPTION_SECRET="too-short-secret"))
    assert line.startswith("Configuration error: KEY_ENCRYPTION_SECRET: must be a Fernet key")
    assert "too-short-secret" not in line


async def test_rotate_key_secret_reseals_every_key_for_the_new_secret(
    discord_fake, openai_fake, tmp_path
):
    """`python -m bot rotate-key-secret` (old secret in OLD_KEY_ENCRYPTION_SECRET, new in
    KEY_ENCRYPTION_SECRET) moves a key sealed the old way to the new secret: the old secret then
    opens nothing, the new one does."""
    from bot.core.keys import KeyBox
    from bot.store.repositories import Store

    db = tmp_path / "bot.db"
    await stored_keys(db, {discord_fake.guild_id: sealed_the_old_way(OLD_SECRET, SERVER_KEY)})
    env = clean_environ() | bot_env(discord_fake, openai_fake, db, LOG_LEVEL="WARNING",
                                    KEY_ENCRYPTION_SECRET=NEW_SECRET,
                                    OLD_KEY_ENCRYPTION_SECRET=OLD_SECRET)
    code, out, err = await run_cli("rotate-key-secret", env=env, cwd=tmp_path)
    assert (code, out.strip(), err) == (0, "Re-sealed 1 server key(s) with KEY_ENCRYPTION_SECRET", "")
    store = await Store.open(db)
    try:
        [(guild_id, key)] = (await store.server_keys.all()).items()
    finally:
        await store.close()
    assert guild_id == discord_fake.guild_id and not key.failed
    assert KeyBox(NEW_SECRET).unseal(key.encrypted) == (SERVER_KEY, False)
    assert KeyBox(OLD_SECRET).open(key.encrypted) is None
    # the old secret no longer starts the bot: the rotation really moved the key
    line = exit_2_in_one_line(*await start_bot(discord_fake, openai_fake, tmp_path,
                                               KEY_ENCRYPTION_SECRET=OLD_SECRET))
    assert "does not open any of the 1 stored server key(s)" in line


async def test_a_retired_image_model_is_refused_in_one_line(discord_fake, openai_fake, tmp_path):
    """SDK 3.63 `ImageGeneration.model`: gpt-image-1 was shut down on 2026-10-23. The bot says
    so before any request (a configuration error: exit status 2)."""
    code, out, err = await start_bot(discord_fake, openai_fake, tmp_path,
                                     IMAGE_MODEL="gpt-image-1")
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.strip() == (
        "Configuration error: IMAGE_MODEL: gpt-image-1 was shut down on 2026-10-23 (the openai "
        "SDK says so): use gpt-image-2, gpt-image-2.5-sunburst or gpt-image-2.5-flare (set it in "
        ".env or the environment)")
    assert openai_fake.requests == [] and discord_fake.identify_payloads == []


async def test_a_restricted_key_without_the_models_scope_only_warns_and_the_bot_serves(
    discord_fake, openai_fake, tmp_path
):
    """A restricted key lacking the Models read scope gets 401 "Missing scopes" on the models
    check (API-NOTES, "Second pass"), yet it can generate: the bot warns and comes online."""
    from tests.e2e.harness import BotProcess

    openai_fake.keys_without_models_scope.add(SECRET_KEY)
    log_path = tmp_path / "bot.log"
    env = bot_env(discord_fake, openai_fake, tmp_path / "bot.db", LOG_LEVEL="INFO")
    bot = BotProcess(env, log_path=str(log_path))
    await bot.start(discord_fake)
    try:
        assert discord_fake.identify_payloads  # it went online
    finally:
        assert await bot.stop() == 0
    log = log_path.read_text()
    assert ("OpenAI start-up check: could not check OPENAI_MODEL=gpt-5.5: this restricted key "
            "lacks the Models read scope (HTTP 401 Missing scopes)") in log
    assert "Traceback" not in log and SECRET_KEY not in log
