"""Answers: base vs tuned from one copy of the weights (`chat`), scores (`evaluate`), the general-ability drift
check (`drift`), replay answers the base model writes (`replay`) and the held-out verdict (`verdict`).
Imports `data` and below."""
