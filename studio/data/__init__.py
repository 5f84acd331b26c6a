"""Data: reading files safely (`readers`), formats and rows (`data`, `data_kinds`), token statistics and the
quality report (`stats`), long documents (`blocks`), tokenised splits on disk (`tokenized`), preference pairs,
labelled answers and practice prompts (`preference`, `preference_stats`, `practice_data`), the facts a file
teaches (`facts`) and the blind votes that become pairs (`votes`). Imports `core`, `models`, `templates`."""
