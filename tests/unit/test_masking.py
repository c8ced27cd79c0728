"""The one rule for secrets in the configuration the gateway shows (``proxy.masking``)."""

from __future__ import annotations

import pytest

from proxy.masking import MASK, is_secret_name, mask_secrets, mask_url


@pytest.mark.parametrize(
    "name",
    ["api_key", "apiKey", "AzureADToken", "client_secret", "admin_key_sha256", "key_sha256",
     "password", "db-password", "Authorization", "refresh_token", "x.credentials"],
)  # fmt: skip
def test_names_that_say_secret_are_masked(name: str) -> None:
    assert is_secret_name(name)
    assert mask_secrets({name: "s3cr3t"}) == {name: MASK}


@pytest.mark.parametrize(
    "name", ["api_key_env", "tenant", "model", "organization", "api_version", "monkey_patch"]
)
def test_other_names_are_shown(name: str) -> None:
    assert not is_secret_name(name)
    assert mask_secrets({name: "shown"}) == {name: "shown"}


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@redis.internal:6379/0", f"redis://{MASK}@redis.internal:6379/0"),
        ("https://user:pw@h/v1", f"https://{MASK}@h/v1"),
        ("rediss://user@h:6380", f"rediss://{MASK}@h:6380"),
        ("https://h/v1?api-key=pw&region=eu", f"https://h/v1?api-key={MASK}&region=eu"),
        ("http://h:8080/v1", "http://h:8080/v1"),
        ("not a url @ all", "not a url @ all"),
    ],
)
def test_url_userinfo_and_secret_query_parameters_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_secrets({"anywhere": [{"deep": url}]}) == {"anywhere": [{"deep": masked}]}


def test_containers_are_walked_not_masked_whole_and_null_stays_null() -> None:
    config = {
        "auth": {"api_keys": [{"tenant": "a", "key_sha256": "ab" * 32, "key": None}]},
        "params": {"extra_headers": {"Authorization": "Bearer x"}, "max_retries": 2},
    }
    assert mask_secrets(config) == {
        "auth": {"api_keys": [{"tenant": "a", "key_sha256": MASK, "key": None}]},
        "params": {"extra_headers": {"Authorization": MASK}, "max_retries": 2},
    }


def test_token_counts_are_shown_and_token_credentials_masked() -> None:
    shown = mask_secrets({"params": {"max_tokens": 256, "auth_token": "t0k3n"}})
    assert shown == {"params": {"max_tokens": 256, "auth_token": MASK}}
