"""`db.text_array`: a list of strings as one array literal reads back as the same strings."""

from ops_pipeline.db import text_array


def test_awkward_strings_read_back_unchanged(conn):
    values = ["AAPL", "BRK.B", 'A"B', "C\\D", "E,F", " G ", "{}", "NULL", "", "é"]
    assert conn.run("SELECT CAST(:v AS text[])", v=text_array(values)) == [[values]]
    assert conn.run("SELECT CAST(:v AS text[])", v=text_array([])) == [[[]]]
