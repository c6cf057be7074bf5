"""`ops-pipeline replay --mode/--faults/--seed`: parsed, and a bad plan refused before anything
starts."""

from __future__ import annotations

from ops_pipeline_local.bars import write_bars
from ops_pipeline_local.cli import build_parser, main


def test_the_options_default_to_a_clean_simulation() -> None:
    args = build_parser().parse_args(["replay", "--bars", "x.csv"])
    assert (args.mode, args.faults, args.seed) == ("simulation", None, None)
    args = build_parser().parse_args(
        ["replay", "--bars", "x.csv", "--mode", "paper", "--faults", "data=0.1", "--seed", "4"]
    )
    assert (args.mode, args.faults, args.seed) == ("paper", "data=0.1", 4)


def test_a_bad_fault_spec_exits_2_with_a_clear_message(tmp_path, bundled_bars, capsys) -> None:
    path = tmp_path / "bars.csv"
    write_bars(bundled_bars[:5], path)
    url = "postgresql://postgres@127.0.0.1:1/unused"  # never reached: the spec is refused first
    code = main(["replay", "--bars", str(path), "--faults", "data=lots", "--database-url", url])
    assert code == 2
    assert "--faults: bad fault spec 'data=lots'" in capsys.readouterr().err


def test_account_holdings_are_parsed_and_need_paper(tmp_path, bundled_bars, capsys) -> None:
    args = build_parser().parse_args(
        ["replay", "--bars", "x.csv", "--mode", "paper", "--account-holdings", "AAPL=100,MSFT=20"]
    )
    assert args.account_holdings == "AAPL=100,MSFT=20"
    path = tmp_path / "bars.csv"
    write_bars(bundled_bars[:5], path)
    # a well-formed URL nothing listens at: the holdings are refused before any connection
    url = "postgresql://postgres@127.0.0.1:9/none"
    base = ["replay", "--bars", str(path), "--database-url", url, "--account-holdings"]
    assert main([*base, "AAPL=100"]) == 2  # a simulation has no account
    assert "--account-holdings: the account's holdings need --mode paper" in capsys.readouterr().err
    assert main([*base, "AAPL=lots", "--mode", "paper"]) == 2
    assert "--account-holdings: 'AAPL=lots': expected SYMBOL=QTY" in capsys.readouterr().err
