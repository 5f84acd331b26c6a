"""Models and machines: where a model comes from (`models`), the hardware facts and the precision and
checkpointing they call for (`hardware`), estimates of memory and time (`estimates`), the time probe (`probe`).
Imports `core` and `engine`."""
