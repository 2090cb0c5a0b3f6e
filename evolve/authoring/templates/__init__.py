"""Template files of `adrs new-problem` (data, not code: .txt so nothing imports or collects them)."""
