import pytest

from ops_pipeline.db import DatabaseConfigError, parse_database_url


def test_a_malformed_database_url_is_a_config_error_without_the_password():
    with pytest.raises(DatabaseConfigError) as caught:
        parse_database_url("postgresql://app:s3cret@db.example:54x2/ops")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(DatabaseConfigError):
        parse_database_url("mysql://app@db/ops")
    target = parse_database_url("postgresql://app@/ops?host=/var/run/postgresql&port=5433")
    assert (target.unix_socket_dir, target.port, target.host) == ("/var/run/postgresql", 5433, None)
