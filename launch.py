"""Fine-tuning Studio entry point.

    python launch.py [--host 127.0.0.1] [--port 7860] [--auth USER:PASS] [--share] [--mcp]  the web UI (+ MCP)
    python launch.py train --preset P.json [--set name=value ...] [--output-dir D]      headless training
    python launch.py data PATH [--format F] [--model M]                                 data report
    python launch.py chat RUN_DIR --prompt "..." [--set max_new_tokens=64 ...] [--blind]  base vs tuned answers (--blind: vote)
    python launch.py serve RUN_DIR [--port 8000] [--host H --api-key KEY]             OpenAI-compatible API
    python launch.py machines --preset P.json --machines 2 --gpus 8 --main-address HOST   one command per machine
    python launch.py export RUN_DIR --merged DIR [--adapter DIR] [--gguf F.gguf] [--trl-config DIR]
                            [--preset P.json] [--accelerate N --strategy zero2|zero3|fsdp|ddp]

Heavy libraries (torch, transformers, TRL) load only when a command needs them, and gradio only for the UI.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import typing
from pathlib import Path

from studio.core import code_rewards
from studio.core.config import STARTER_MODEL, DataSettings, GenerationSettings, Settings, parse_mapping
from studio.core.presets import load_preset
from studio.core.runs import RunFolder, new_run_dir
from studio.core.settings_input import apply_overrides
from studio.core.stopping import StopFile
from studio.core.text import Msg, render
from studio.models import hardware
from studio.data import votes
from studio.chat.chat import ChatPair, stream_pair
from studio.plan.data_report import build_report
from studio.plan.recipe import user_fields
from studio.export import export
from studio.export.gguf_file import GGUF_TYPES
from studio.training import launcher, machines, repeat
from studio.training.distributed import is_main_process, shared_run_dir, world_size
from studio.training.repeat import STRATEGIES
from studio.training.train import run_training

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FORMATS = typing.get_args(DataSettings.model_fields["dataset_format"].annotation)  # "auto" and every known format


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description="Fine-tuning Studio: fine-tune chat models.")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the UI on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", help="USER:PASS; required for a non-local --host or --share. Other users of this "
                        "machine can read it in `ps`: prefer --auth-file or the STUDIO_AUTH variable")
    parser.add_argument("--auth-file", help="a file whose first line is USER:PASS")
    parser.add_argument("--data-dir", action="append", default=[], metavar="FOLDER",
                        help="a folder whose files the UI may read besides uploads, runs and the studio home "
                             "(repeatable)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (needs internet)")
    parser.add_argument("--trusted-proxy", metavar="ADDRESS",
                        help="the address of a reverse proxy in front of the studio, whose X-Forwarded-For header is "
                             "believed (for the login limit and logs); by default no header is believed")
    parser.add_argument("--model", dest="ui_model", default=STARTER_MODEL, metavar="NAME_OR_PATH",
                        help="the model the UI's form starts with: a built-in name, a hub id, or a local folder "
                             "(which the UI may then read; default: the built-in starter model)")
    parser.add_argument("--allow-reward-code", action="store_true",
                        help="let GRPO runs import your own reward functions (reward_code_path); refused with a "
                             "non-local --host or --share, since importing a file runs its code")
    parser.add_argument("--mcp", action="store_true",
                        help="serve the studio's tools over MCP as well, at /gradio_api/mcp/ (needs gradio[mcp]); "
                             "with a password, an MCP client sends it as 'Authorization: Bearer PASSWORD'")
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="train headless from a preset")
    train.add_argument("--preset", required=True, help="preset JSON, e.g. presets/quickstart-cpu.json")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                       help="override one setting, e.g. --set learning_rate=1e-4 (repeatable)")
    train.add_argument("--output-dir", help="run folder (default: runs/run-<time>)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.add_argument("--stop-file", metavar="FILE",
                       help="stop after the current step, with a checkpoint, once this file appears (default: "
                       "stop.request in the run folder; `touch` it to stop a run gracefully)")
    train.add_argument("--allow-reward-code", action="store_true",
                       help="confirm that the preset's reward_code_path (GRPO's own rewards) may be imported and run")
    train.add_argument("--trust-remote-code", action="store_true",
                       help="confirm that the model's own Python code may run (needed when the preset asks for it)")

    data = sub.add_parser("data", help="check a data file: format, problems, token lengths, quality")
    data.add_argument("path", help="JSON, JSONL, CSV, Parquet or TXT file, or 'demo'")
    data.add_argument("--format", default="auto", choices=FORMATS)
    data.add_argument("--model", default=STARTER_MODEL, help="model whose chat template and tokenizer measure lengths")
    data.add_argument("--map", action="append", default=[], metavar="THEIRS=OURS",
                      help="rename a column before detection, e.g. --map query=instruction (repeatable)")
    data.add_argument("--row", type=int, metavar="N", help="show row N token by token, the trained tokens marked")
    data.add_argument("--mix", action="append", default=[], metavar="PATH[#SHARE]",
                      help="another file trained together with PATH, with its share of the training rows (no share: "
                      "all its rows; repeatable): each file's report, then the mix table")
    data.add_argument("--share", type=float, help="PATH's own share of the training rows in a mix")

    chat = sub.add_parser("chat", help="answer a prompt with the base and the tuned model of a run")
    chat.add_argument("run_dir")
    chat.add_argument("--prompt", required=True)
    chat.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                      help="a generation setting (" + ", ".join(GenerationSettings.model_fields) + "), e.g. --set "
                      "temperature=0.7 (repeatable)")
    chat.add_argument("--max-new-tokens", type=int, help="the same as --set max_new_tokens=N")
    chat.add_argument("--blind", action="store_true",
                      help="show the answers as A and B in a random order, then read your vote (A, B, tie or "
                      "both_bad) from standard input and save it in the run folder")
    chat.add_argument("--voter", default="cli", help="the name a --blind vote is saved under")
    several = sub.add_parser("machines", help="the command each of several machines runs to train one preset "
                             "together, checked first")
    several.add_argument("--preset", required=True, help="the preset every machine trains")
    several.add_argument("--machines", type=int, required=True, help="how many machines")
    several.add_argument("--gpus", type=int, default=1, help="GPUs (processes) per machine")
    several.add_argument("--main-address", required=True, help="machine 0's address, which the others can reach")
    several.add_argument("--port", type=int, default=29500, help="the rendezvous port on machine 0")
    several.add_argument("--output-dir", help="the run folder, the same path on every machine (default: "
                         "runs/<preset>-<N>x<G>)")

    serve = sub.add_parser("serve", help="serve a finished run over the OpenAI chat-completions API")
    serve.add_argument("run_dir")
    serve.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", help="required for a non-local --host; clients send 'Authorization: Bearer KEY'. "
                                         "Prefer the STUDIO_API_KEY variable (`ps` shows arguments)")
    export = sub.add_parser("export", help="export a finished run: merged model, adapter, GGUF, configs")
    export.add_argument("run_dir")
    export.add_argument("--merged", metavar="DIR", help="merged model folder (loads with plain transformers)")
    export.add_argument("--adapter", metavar="DIR", help="the LoRA adapter alone")
    export.add_argument("--gguf", metavar="FILE.gguf", help="merged model as GGUF for llama.cpp / Ollama")
    export.add_argument("--gguf-type", default="Q8_0", choices=GGUF_TYPES)
    export.add_argument("--preset", metavar="FILE.json", help="the run's settings as a reusable preset")
    export.add_argument("--trl-config", metavar="DIR", help="sft.yaml + data for TRL's own `trl sft` CLI")
    export.add_argument("--accelerate", type=int, metavar="N", help="accelerate config + command for N GPUs")
    export.add_argument("--strategy", default="zero2", choices=STRATEGIES)
    export.add_argument("--machines", type=int, default=1, help="machines for --accelerate (multi-node)")
    return parser


def read_auth(args, environ=None) -> tuple[str | None, list[str]]:
    """USER:PASS from --auth-file, else the STUDIO_AUTH variable, else --auth (the one `ps` shows)."""
    environ = os.environ if environ is None else environ
    if args.auth_file:
        try:
            lines = Path(args.auth_file).read_text(encoding="utf-8").splitlines()
            mode = Path(args.auth_file).stat().st_mode
        except OSError as err:
            return None, [f"--auth-file {args.auth_file}: {err.strerror}"]
        if mode & 0o077:  # as ssh says of a key file others can read
            print(f"Warning: {args.auth_file} can be read by other users (mode {mode & 0o777:o}); "
                  f"`chmod 600 {args.auth_file}` keeps the password yours.", file=sys.stderr)
        return (lines[0].strip() if lines else ""), []
    return environ.get("STUDIO_AUTH") or args.auth, []


def check_exposure(host: str, share: bool, auth: str | None) -> list[str]:
    """Serving beyond this machine without a password would let anyone run code on it through training."""
    problems = []
    if (share or host not in LOCAL_HOSTS) and not auth:
        where = "a public --share link" if share else f"--host {host}"
        problems.append(f"Refusing to serve on {where} without a password (--auth-file, STUDIO_AUTH or --auth "
                        "USER:PASS): anyone who can reach it could train models and read files on this machine.")
    if auth is not None:
        user, _, password = auth.partition(":")
        if not user.strip() or not password.strip():
            problems.append("The password must look like USER:PASS, with neither part empty")
    return problems


def print_problems(title: str, problems: list[tuple[str, str]]) -> None:
    print(f"{title} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", file=sys.stderr)
    for where, message in problems:
        print(f"  - {where}: {message}", file=sys.stderr)


def cmd_train(args) -> int:
    # Validate everything before any model is loaded: a typo should cost a second, not a download.
    settings, _, problems = load_preset(args.preset)
    keep = None
    if settings is not None:  # the recipe fields the preset or --set give are the user's; the plan sizes the rest
        keep = user_fields(settings) | {item.partition("=")[0].rpartition(".")[2] for item in args.overrides}
    if settings is not None and args.overrides:
        settings, problems = apply_overrides(settings, args.overrides)
    if problems:
        print_problems(f"{args.preset} is not valid", problems)
        return 2
    if settings.model.trust_remote_code and not args.trust_remote_code:  # a shared preset must not run code alone
        print(f"{args.preset} sets trust_remote_code: the Python code shipped with {settings.model.model_name_or_path} "
              "would run on this machine. If you trust it, add --trust-remote-code to the command.", file=sys.stderr)
        return 2
    if settings.method.reward_code_path.strip():  # a shared preset must not run code alone either
        if not args.allow_reward_code:
            print(f"{args.preset} sets reward_code_path: {settings.method.reward_code_path} would be imported and "
                  "run on this machine. If you trust it, add --allow-reward-code to the command.", file=sys.stderr)
            return 2
        code_rewards.allow()
    if world_size() == 1 and (devices := launcher.devices_for(settings))["processes"] > 1:
        return train_in_processes(args, settings, devices)  # the plan's devices: several processes, supervised
    # Under torchrun / accelerate launch each process runs this; they agree on one run folder.
    run_dir = shared_run_dir(Path(args.output_dir) if args.output_dir else None)
    main = is_main_process()
    if main:
        print(f"Run folder: {run_dir}")
    status = run_training(settings, run_dir, progress=print if main else None,
                          stop_event=stop_request(args, run_dir, main), resume=args.resume, keep=keep)
    summary = {k: status.get(k) for k in ("status", "global_step", "best_step", "first_train_loss", "final_train_loss",
                                          "final_eval_loss", "wall_time_s", "output", "error", "advice")}
    if status.get("verdict"):
        summary["verdict"] = str(Msg.from_json(status["verdict"]["line"]))
    if main:
        print(json.dumps({k: v for k, v in summary.items() if v is not None}, indent=2, ensure_ascii=False))
    return 0 if status["status"] in ("finished", "stopped") else 1


def stop_request(args, run_dir: Path, main: bool = True) -> StopFile:
    """The file whose appearance stops the run after its current step (--stop-file, else the run folder's)."""
    stop = StopFile(args.stop_file or RunFolder(run_dir).stop_file)
    if args.resume and not args.stop_file and main:
        stop.path.unlink(missing_ok=True)  # the request that stopped the run before is not one to stop it again
    return stop


def train_in_processes(args, settings, devices: dict) -> int:
    """num_processes (or every GPU) asks for several processes: this command starts them and passes their output
    on; each of them runs this command again, inside the process group, and trains."""
    run_dir = Path(args.output_dir) if args.output_dir else new_run_dir()
    # The run folder is said by the processes themselves.
    print(f"{devices['processes']} processes: {'; '.join(map(str, devices['devices_reason']))}")
    status = launcher.run_in_processes(settings, run_dir, devices, hardware.detect(), stop_request(args, run_dir),
                                       args.resume, Path(args.preset), args.overrides, echo=print)
    if status.get("last_lines"):  # they died before saying how the run ended
        print(f"{Msg.from_json(status['error_message'])}. {status['advice']}", file=sys.stderr)
    return 0 if status["status"] in ("finished", "stopped") else 1


def cmd_data(args) -> int:
    mapping, problems = parse_mapping(",".join(args.map))  # the same rules as the Data tab's mapping box
    if problems:
        print_problems("--map", [("--map", message) for _, message in problems])
        return 2
    report = build_report(args.path, args.format, args.model, mapping or None)
    print(report.text())
    if args.row is not None:
        print_row_tokens(report, args.row)
    failed = bool(report.load.problems or not report.load.rows or report.tokenizer_problem)
    return 1 if failed else print_mix(args, report)


def print_mix(args, report) -> int:
    """`--mix`: the other files' reports, then the table a run's mix would be made of (studio/plan/mixing.py)."""
    if not args.mix:
        return 0
    from studio.plan import mixing
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides
    from studio.core.text import render

    settings, problems = apply_overrides(Settings(), [
        f"dataset_path={args.path}", f"dataset_format={args.format}", "extra_datasets=" + "; ".join(args.mix),
        *([f"dataset_share={args.share}"] if args.share is not None else [])])
    if settings is None:
        print_problems("--mix", problems)
        return 2
    reports = [report]
    for part in settings.data.extra_datasets:
        reports.append(build_report(part.dataset_path, part.dataset_format, args.model, part.column_mapping or None))
        print(f"\n--- {part.dataset_path}\n{reports[-1].text()}")
    table = mixing.mix_table(settings.data, reports)
    print("\nThe mix (training rows after each file's own validation and test split; tokens estimated from each "
          "file's mean length):")
    print(f"  {'#':>2} {'file':<28} {'format':<10} {'share':>8} {'usable':>7} {'train':>12} {'val':>5} {'test':>5} "
          f"{'tokens':>8} {'tokens%':>8}")
    for row in table.rows:
        number, file, fmt, share, usable, train, val, test, tokens, token_share = (render(c) for c in row)
        print(f"  {number:>2} {str(file)[:28]:<28} {fmt:<10} {share:>8} {usable:>7} {str(train):>12} {val:>5} "
              f"{test:>5} {tokens:>8} {token_share:>8}")
    for message in ([table.refusal] if table.refusal else []) + table.warnings:
        print(f"  ! {render(message)}")
    return 2 if table.refusal else 0


def print_row_tokens(report, number: int) -> None:
    """The row as the model sees it, the trained tokens between ⟦ and ⟧, and their counts."""
    from studio.templates.chat_template import marked_text

    view = report.row_tokens(number)
    if view is None:
        print(f"\nRow {number}: not among the usable rows (see the problems above).")
        return
    pieces, counts, notes = view
    print(f"\nRow {number} as training sees it (trained tokens between ⟦ and ⟧):\n{marked_text(pieces)}")
    print(f"Tokens: {counts['prompt']} prompt, {counts['answer']} answer, {counts['end']} end-of-turn (trained: "
          f"{counts['answer'] + counts['end']}).")
    if notes.untrained:
        print(f"Replies not trained (the template does not let them be told apart): {notes.untrained}")
    if notes.reasoning_lost:
        print(f"Reasoning not trained (the template leaves it out): replies {notes.reasoning_lost}")
    if notes.reasoning_split:
        print(f"Trained with their reasoning in a conversation of their own, ending at them: replies "
              f"{notes.reasoning_split}")


def cmd_chat(args) -> int:
    shortcut = [f"max_new_tokens={args.max_new_tokens}"] if args.max_new_tokens is not None else []
    settings, problems = apply_overrides(Settings(), shortcut + args.overrides, sections=("generation",))
    if problems:
        print_problems("--set", problems)
        return 2
    pair = ChatPair.from_run(args.run_dir)
    messages = [{"role": "user", "content": args.prompt}]
    # The same side-by-side decoding as the Chat tab, so headless and UI answers agree.
    answers = list(stream_pair(pair, messages, messages, settings.generation))[-1]  # greedy unless --set
    if args.blind:
        return blind_vote(args, messages, dict(zip(("base", "tuned"), answers)))
    for name, answer in zip(("base", "tuned"), answers):
        print(f"--- {name} ({answer.new_tokens} tokens, {answer.seconds:.2f} s, first token "
              f"{1000 * (answer.first_token_s or 0):.0f} ms, {answer.ms_per_token:.0f} ms/token)\n{answer.text}")
    return 0


def cmd_serve(args) -> int:
    from studio.chat import loaded, serve  # deferred: the server's packages load only for this command

    api_key = os.environ.get("STUDIO_API_KEY") or args.api_key
    if refusal := serve.key_refusal(args.host, api_key):
        print(render(refusal, "en"), file=sys.stderr)
        return 2
    if not (RunFolder(args.run_dir).path / "preset.json").exists():
        print(f"{args.run_dir}: not a run folder (no preset.json)", file=sys.stderr)
        return 2
    served = serve.Served.of_run(args.run_dir, lambda: loaded.get_pair(args.run_dir))
    tuned, base = served.model_ids
    where = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/v1"
    print(f"Serving {tuned} (tuned) and {base} (its base) at {where}", flush=True)
    serve.start(served, args.host, args.port, api_key, block=True)
    return 0


def blind_vote(args, messages: list[dict], answers: dict) -> int:
    """The Chat tab's blind pair on the command line: A and B in a random order, the vote read from stdin."""
    order = votes.blind_order()
    for letter, side in zip("AB", order):
        print(f"--- {letter}\n{answers[side].text}")
    print(f"Which is better? {' / '.join(votes.VERDICTS)}: ", end="", flush=True)
    verdict = sys.stdin.readline().strip()
    verdict = {"a": "A", "b": "B"}.get(verdict.lower(), verdict.lower() if verdict.lower() in votes.VERDICTS else verdict)
    comparison = votes.Comparison(messages, {side: a.text for side, a in answers.items()}, order)
    if problem := votes.vote_problem(comparison, verdict):
        print(problem, file=sys.stderr)
        return 2
    path = votes.votes_file(args.run_dir)
    votes.record_vote(votes.Vote(messages, comparison.answers, list(order), verdict, args.voter, args.run_dir), path)
    print(f"\nSaved to {path}. A was the {order[0]} model, B the {order[1]} model.")
    print(votes.summary(votes.read_votes(path)))
    return 0


def cmd_export(args) -> int:
    def progress(fraction: float, message: str) -> None:
        print(f"[{100 * fraction:3.0f}%] {message}", flush=True)

    jobs = [(args.adapter, lambda: export.export_adapter(args.run_dir, args.adapter, progress)),
            (args.merged, lambda: export.export_merged(args.run_dir, args.merged, progress)),
            (args.gguf, lambda: export.export_gguf(args.run_dir, args.gguf, args.gguf_type, progress)),
            (args.preset, lambda: export.export_preset(args.run_dir, args.preset)),
            (args.trl_config, lambda: repeat.export_trl_config(args.run_dir, args.trl_config, progress))]
    jobs = [job for wanted, job in jobs if wanted]
    if not jobs and not args.accelerate:
        print("say what to export: --merged DIR, --adapter DIR, --gguf FILE, --preset FILE, --trl-config DIR or "
              "--accelerate N", file=sys.stderr)
        return 2
    try:
        for job in jobs:
            print(job().text())
        if args.accelerate:
            config, commands = repeat.accelerate_files(args.run_dir, args.accelerate, args.strategy, args.machines)
            print(config + "\n" + commands)
    except export.ExportError as err:
        print(f"Export failed: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_machines(args) -> int:
    """Check the preset, the counts and the rendezvous address first; then print each machine's command."""
    settings, _, problems = load_preset(args.preset)
    problems = [Msg("problem", where=where, problem=problem) for where, problem in problems]
    problems += machines.count_problems(args.machines, args.gpus)
    found, warnings = machines.rendezvous_problems(args.main_address, args.port)
    if problems + found:
        for problem in problems + found:
            print(problem, file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"# {warning}")
    output = args.output_dir or str(Path("runs") / f"{Path(args.preset).stem}-{args.machines}x{args.gpus}")
    print("\n".join(machines.machine_commands(Path(args.preset), settings, args.machines, args.gpus,
                                               args.main_address, args.port, output)))
    return 0


def cmd_ui(args) -> int:
    auth, problems = read_auth(args)
    problems = problems or check_exposure(args.host, args.share, auth)
    if args.allow_reward_code and (refusal := code_rewards.allow(args.host, args.share)) is not None:
        problems.append(str(refusal))
    problems += [f"--data-dir {d}: not a folder" for d in args.data_dir if not Path(d).expanduser().is_dir()]
    if args.mcp and importlib.util.find_spec("mcp") is None:
        problems.append('--mcp needs the mcp package: pip install "gradio[mcp]"')
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    from studio.ui.app import UploadFolderError, launch_app  # deferred: gradio takes seconds to import

    data_dirs = list(args.data_dir) + ([args.ui_model] if Path(args.ui_model).expanduser().is_dir() else [])
    try:
        launch_app(host=args.host, port=args.port, auth=tuple(auth.split(":", 1)) if auth else None,
                   share=args.share, data_dirs=data_dirs, model=args.ui_model, trusted_proxy=args.trusted_proxy,
                   mcp=args.mcp)
    except UploadFolderError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "data": cmd_data, "chat": cmd_chat, "export": cmd_export, "serve": cmd_serve,
                "machines": cmd_machines, None: cmd_ui}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
