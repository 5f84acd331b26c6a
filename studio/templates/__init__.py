"""Chat templates: rendering with the model's template and marking the assistant's tokens (`chat_template`),
what a template expects (`template_profile`), reply finding where it breaks the prefix property (`sentinels`),
fast token counts (`word_counts`), and Ollama's Go template of a model (`ollama`). Imports `core` only."""
