"""Bad input through the Python package: text holding a NUL (a DSN, an
option value, a token) is a clear error, never cut short; options past their
limits are refused naming the option; a password that is part of the mask,
or quoted by libpq's DSN parse error, never hangs or shows; a token signed
for another cluster is refused."""

import pytest

import walrouter


def test_a_dsn_holding_a_nul_is_refused(dsn):
    with pytest.raises(walrouter.ProgrammingError, match="NUL"):
        walrouter.connect(dsn + "\x00?port=1")  # its port= would be cut off


def test_a_token_key_holding_a_nul_is_refused(dsn):
    with pytest.raises(walrouter.ProgrammingError, match="token_key"):
        walrouter.connect(dsn, token_key="abc\x00def")  # it would act as "abc"


def test_a_token_followed_by_a_nul_and_garbage_is_a_token_error(cluster):
    with cluster.session() as w:
        w.execute("SELECT 1")
        token = w.token
        with cluster.session(token=token):  # the token itself is good
            pass
        for bad in (token + "\x00garbage", token + "\x00"):
            with pytest.raises(walrouter.TokenError):
                cluster.session(token=bad)
            with pytest.raises(walrouter.TokenError):
                w.resume(bad)
            with pytest.raises(walrouter.TokenError):
                w.require(bad)
        assert w.query("SELECT 1").scalar() == 1  # the session goes on


@pytest.mark.parametrize("key, value", [
    ("pool_size", 2**31), ("pool_max", 99999), ("stmt_cache_size", 2**32 - 1),
    ("connect_timeout_s", 2**31), ("connect_timeout_s", 86401),
])
def test_options_past_their_limits_are_refused_naming_the_option(dsn, key, value):
    with pytest.raises(walrouter.ProgrammingError, match=key):
        walrouter.connect(dsn, **{key: value})


def test_a_password_that_is_part_of_the_mask_returns_at_once():
    with pytest.raises(walrouter.OperationalError):
        walrouter.connect("host=no*such*host.invalid hostaddr=127.0.0.1 port=1 user=u password=* dbname=d",
                          connect_timeout_s=1)


@pytest.mark.parametrize("bad", ["postgresql://u:50%off-SECRET@h/db", "postgresql://h/db?password=50%zzSECRET"])
def test_libpqs_dsn_parse_error_never_shows_the_password(bad):
    with pytest.raises(walrouter.ProgrammingError) as e:
        walrouter.connect(bad)
    assert "invalid DSN" in str(e.value)
    assert "SECRET" not in str(e.value)


def test_a_token_signed_for_another_cluster_is_refused(dsn):
    a = walrouter.connect(dsn, token_key="key of cluster a")
    b = walrouter.connect(dsn, token_key="key of cluster b")
    try:
        with a.session() as w:
            w.execute("SELECT 1")
            token = w.token
        with pytest.raises(walrouter.TokenError):
            b.session(token=token)
        with a.session(token=token):
            pass
    finally:
        a.close()
        b.close()
