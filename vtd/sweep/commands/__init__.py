"""What each `vtd-sweep` command does, one call per command; `vtd.cli` only parses.

`run` (`run`, `worker`): the whole of `vtd-sweep run` (worker specs, the fork server warmed
while the study is prepared, `--dry-run`, `--probe`, live progress, the final table and
report, exit codes) and of `vtd-sweep worker`; `study` (`status`, `report`, `sync`); `probe`;
`data`; `tools` (`eval`, `prepare`); `ui` (the MLflow server, stopped with its whole process
group). `common`: `UsageError` (one line, exit code 2), Ctrl-C handling, the report step.
Each module imports torch, optuna and mlflow only where a command needs them, so that
`--help`, `status` and `run --dry-run` stay quick.
"""
