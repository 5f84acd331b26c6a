"""What a run leaves for use outside the studio: adapter, merged model, GGUF (`export`, `gguf_file`) and the
model card (`model_card`). Imports `chat` and below."""
