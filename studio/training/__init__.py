"""A run: prepare, train, save (`train`, one path for every stage with `preference_train` and the shared steps of
`run_steps`), what it measures besides the loss (`run_checks`), the kept best checkpoint (`best`), the job of
this server (`jobs`), its status as words (`run_status`), past runs (`history`), several devices and machines
(`distributed`, `launcher`, `machines`) and the commands that repeat it (`repeat`). Imports `plan`, `export` and
below."""
