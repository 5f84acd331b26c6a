"""The plan, all decided before a run starts: the recipe (`recipe`), the advice rules (`advice`), the cost
line (`cost`), the pre-flight checks (`preflight`), the Data tab's report of a source (`data_report`) and mixing
several files (`mixing`). Imports `chat` and below."""
