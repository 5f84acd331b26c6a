"""Fine-tuning Studio. One package per concern, each importing only the packages below it (floor in brackets):

    ui [8]        the page: one module per tab, components and event wiring only
    training [7]  a run: prepare, train, check, save; the job, its status, history, devices, repeat commands
    plan [6]      decided before a run: recipe, advice, cost, pre-flight checks, the data report, mixing
    export [6]    what a run leaves for use elsewhere: merged model, adapter, GGUF, model card
    chat [5]      base vs tuned answers, scores, the drift check, replay answers, the verdict
    data [4]      data files: reading, formats, statistics, preference and practice rows, facts, votes
    models [3]    where models come from, the hardware and what it supports, estimates, the time probe
    templates [3] chat templates: rendering, assistant-token masks, profiles, Ollama's Go templates
    core [2]      settings (the one source of truth), stages, text catalogues, runs, sources, paths
    engine [1]    the studio's SFT trainer and its CPU layers; the one guarded import of torch

`python -m pytest tests/test_layers.py` checks the rule.
"""
