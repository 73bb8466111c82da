"""vidtrans.secrets: lookup order, the 0600 token file, masking in text and logs."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import types

import pytest

from vidtrans import secrets
from vidtrans.errors import AuthenticationError, ConfigurationError

KEY = "sk-test-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for n in secrets.KNOWN_SECRET_NAMES:
        monkeypatch.delenv(n, raising=False)
    monkeypatch.setenv("VIDTRANS_SECRETS_FILE", str(tmp_path / "secrets.json"))
    # no real keyring or Colab on the test machine, whatever is installed
    monkeypatch.setitem(sys.modules, "keyring", None)
    monkeypatch.setitem(sys.modules, "google.colab", None)


def write_file(path, data, mode=0o600):
    path.write_text(json.dumps(data))
    os.chmod(path, mode)


def test_environment_first_then_alias(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-alias")
    assert secrets.get_secret("GEMINI_API_KEY", aliases=("GOOGLE_API_KEY",)) == "from-google-alias"
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    assert secrets.get_secret("GEMINI_API_KEY", aliases=("GOOGLE_API_KEY",)) == "from-gemini"


def test_missing_required_names_the_variable_not_a_value(monkeypatch):
    with pytest.raises(secrets.MissingSecretError) as e:
        secrets.get_secret("ASSEMBLYAI_API_KEY", purpose="the AssemblyAI engine")
    assert isinstance(e.value, AuthenticationError)
    msg = str(e.value)
    assert "ASSEMBLYAI_API_KEY" in msg and "AssemblyAI engine" in msg and "chmod" not in msg
    assert secrets.get_secret("ASSEMBLYAI_API_KEY", required=False) is None


def test_colab_userdata_then_keyring(monkeypatch):
    colab = types.ModuleType("google.colab")
    userdata = types.ModuleType("google.colab.userdata")

    class SecretNotFoundError(Exception):
        pass

    store = {"ASSEMBLYAI_API_KEY": "from-colab"}

    def get(name):
        if name not in store:
            raise SecretNotFoundError(name)
        return store[name]

    userdata.get = get
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    assert secrets.find_secret("ASSEMBLYAI_API_KEY") == ("from-colab", "Colab secret ASSEMBLYAI_API_KEY")

    kr = types.ModuleType("keyring")
    kr.get_password = lambda service, name: "from-keyring" if (service, name) == ("vidtrans", "GEMINI_API_KEY") else None
    monkeypatch.setitem(sys.modules, "keyring", kr)
    assert secrets.get_secret("GEMINI_API_KEY") == "from-keyring"
    # the environment still wins over both
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "from-env")
    assert secrets.get_secret("ASSEMBLYAI_API_KEY") == "from-env"


def test_private_token_file_is_read(tmp_path):
    write_file(tmp_path / "secrets.json", {"ASSEMBLYAI_API_KEY": KEY})
    assert secrets.get_secret("ASSEMBLYAI_API_KEY") == KEY
    assert secrets.has_secret("ASSEMBLYAI_API_KEY")


def test_world_readable_token_file_is_refused(tmp_path):
    write_file(tmp_path / "secrets.json", {"ASSEMBLYAI_API_KEY": KEY}, mode=0o644)
    with pytest.raises(secrets.InsecureSecretsFileError) as e:
        secrets.get_secret("ASSEMBLYAI_API_KEY")
    assert "0644" in str(e.value) and "chmod 600" in str(e.value) and KEY not in str(e.value)
    assert not secrets.has_secret("ASSEMBLYAI_API_KEY")


def test_broken_token_file_error_does_not_echo_content(tmp_path):
    p = tmp_path / "secrets.json"
    p.write_text('{"ASSEMBLYAI_API_KEY": "' + KEY)  # truncated JSON
    os.chmod(p, 0o600)
    with pytest.raises(ConfigurationError) as e:
        secrets.get_secret("ASSEMBLYAI_API_KEY")
    assert KEY not in str(e.value) and str(p) in str(e.value)


def test_store_secret_writes_0600_and_keeps_others(tmp_path):
    p = tmp_path / "secrets.json"
    write_file(p, {"OTHER": "x"})
    secrets.store_secret("YOUTUBE_TOKEN", '{"refresh_token": "r"}')
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert secrets.read_secrets_file() == {"OTHER": "x", "YOUTUBE_TOKEN": '{"refresh_token": "r"}'}


def test_redact_masks_environment_and_given_values(monkeypatch):
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    text = f"POST /v2/upload authorization={KEY} other=token-from-keyring-123"
    out = secrets.redact(text, ["token-from-keyring-123"])
    assert KEY not in out and "token-from-keyring-123" not in out and out.count("***") == 2
    assert secrets.redact("nothing secret here") == "nothing secret here"


def test_log_filter_masks_messages_and_arguments(monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    logger = logging.getLogger("vidtrans.test_secrets")
    flt = secrets.SecretFilter(["extra-secret-value"])
    caplog.handler.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("calling with key %s", KEY)
            logger.info("and extra-secret-value inline")
    finally:
        caplog.handler.removeFilter(flt)
    assert KEY not in caplog.text and "extra-secret-value" not in caplog.text
    assert "calling with key ***" in caplog.text
