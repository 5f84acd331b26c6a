"""Answers: base vs tuned from one copy of the weights (`chat`), scores (`evaluate`), the general-ability drift
check (`drift`), replay answers the base model writes (`replay`), the held-out verdict (`verdict`) and the greedy
answers all three generate, in shared batches (`generation`).
Imports `data` and below."""
