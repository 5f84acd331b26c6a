"""The engine: the studio's SFT trainer (`lean.LeanSFTTrainer`: padding-free batches, cached tokens), two CPU
layer forwards it uses (`lean_layers`), and the one lock-guarded first import of torch and its libraries (`heavy`).
Imports torch, transformers, peft and TRL only: no other studio package."""
