"""The core: the settings (`config`, the one source of truth, with `validation` and `settings_input`), the stage
table (`stages`, one row a stage, with its row converters `preference_rows` and rewards `rewards`, `code_rewards`,
`user_patterns`), every word shown (`text` and `locales/`), run folders (`runs`), presets, what a data box names
(`sources`), which files the page may touch (`paths`), Stop (`stopping`) and the settings -> TRL arguments
(`trl_args`). Imports `engine` only (the SFT row's trainer, when a run starts); no torch at import."""
