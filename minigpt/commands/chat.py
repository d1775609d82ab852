"""``python -m minigpt chat --ckpt DIR [--as NAME] [--to NAME]``: talk to a script-trained model;
``python -m minigpt chat --assistant [--ckpt DIR]``: talk to an assistant run of lesson 15."""

from __future__ import annotations

import sys

from .sample import add_sampling_options, load_for_command

SCRIPT_TEMPERATURE, SCRIPT_TOP_P = 0.8, 0.9  # lesson 08's choice for lively, sane text
ASSISTANT_RUN = "assistant"  # the folder under runs/ where lesson 15 saves its assistant


def add_cli(sub) -> None:
    """``python -m minigpt chat ...``."""
    c = sub.add_parser("chat", help="talk to a script-trained model (you speak as one character, it answers as "
                                    "another), or with --assistant to an assistant run of lesson 15")
    c.add_argument("--ckpt", help="a run folder written by `train` (default: the course's run for this device); "
                                  "with --assistant, one saved by lesson 15 (default: runs/assistant)")
    c.add_argument("--assistant", action="store_true",
                   help="talk in the chat template: user and assistant turns, calculator calls shown")
    c.add_argument("--system", help="with --assistant: a system message that opens the conversation")
    c.add_argument("--as", dest="as_name", default="ROMEO", help="the character you speak as (default ROMEO)")
    c.add_argument("--to", dest="to_name", default="JULIET", help="the character the model speaks as (default JULIET)")
    add_sampling_options(c, temperature=None, top_p=None, max_new_tokens=None, seed_default=1337,
                         max_new_help="the longest answer, in tokens (default 300; with --assistant 48)")
    c.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    c.set_defaults(func=_cli_chat)


def _cli_chat(args) -> int:
    if args.assistant:
        return _cli_assistant(args)
    if args.system is not None:
        raise ValueError("--system is for an assistant run; add --assistant")
    # deferred: importing torch takes ~4 s and --help must not
    from ..chat import Chat, known_speakers, resolve_speaker
    from ..generate import SamplingSettings, check_max_new_tokens

    args.temperature = SCRIPT_TEMPERATURE if args.temperature is None else args.temperature
    args.top_p = SCRIPT_TOP_P if args.top_p is None else args.top_p
    args.max_new_tokens = 300 if args.max_new_tokens is None else args.max_new_tokens
    settings = SamplingSettings.from_options(args)  # temperature, top_k, top_p: checked here, before loading
    check_max_new_tokens(args.max_new_tokens)
    ck = load_for_command(args.ckpt, args.device)
    known = known_speakers(ck.train_config)
    as_name = resolve_speaker(args.as_name, known, "--as")
    to_name = resolve_speaker(args.to_name, known, "--to")
    chat = Chat(ck.model, ck.tokenizer, as_name, to_name, settings=settings, max_new_tokens=args.max_new_tokens,
                seed=args.seed)
    print(f"You are {as_name}; the model answers as {to_name}. End with Ctrl-D (end of input) or Ctrl-C.")
    while True:
        try:
            line = input(f"{as_name}: ")
        except (EOFError, KeyboardInterrupt):
            print()  # end the prompt's line, then leave quietly
            return 0
        if not line.strip():
            continue
        try:
            ck.tokenizer.encode(line)
        except ValueError as e:  # a character the model cannot read: say so and let the user try again
            print(f"(not sent: {e})", file=sys.stderr)
            continue
        try:
            sys.stdout.write(f"{to_name}: ")
            sys.stdout.flush()
            chat.reply(line, on_piece=lambda p: (sys.stdout.write(p), sys.stdout.flush()))
            sys.stdout.write("\n")
        except KeyboardInterrupt:  # Ctrl-C while the model speaks: stop it and end the chat
            print()
            return 0


def _cli_assistant(args) -> int:
    if args.top_k is not None or args.top_p is not None:
        raise ValueError("--top-k and --top-p are for the script chat; an assistant answers greedily or with "
                         "--temperature")
    # deferred: importing torch takes ~4 s and --help must not
    from ..chat import AssistantChat, describe_message
    from ..chat_template import load_assistant
    from ..utils import get_device, runs_dir

    path = args.ckpt if args.ckpt is not None else runs_dir() / ASSISTANT_RUN
    ck = load_assistant(path, device=get_device(args.device))
    max_new = 48 if args.max_new_tokens is None else args.max_new_tokens
    chat = AssistantChat(ck.model, ck.tokenizer, system=args.system, temperature=args.temperature or 0.0,
                         max_new_tokens=max_new, seed=args.seed)
    print(f"Talking to the assistant in {path} ({ck.model_config.block_size} tokens of context: it forgets "
          "earlier turns quickly). End with Ctrl-D (end of input) or Ctrl-C.")
    while True:
        try:
            line = input("you: ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line.strip():
            continue
        try:
            new = chat.reply(line)
        except ValueError as e:  # a character the assistant cannot read: say so and let the user try again
            print(f"(not sent: {e})", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print()
            return 0
        for m in new:
            print(describe_message(m) if m["role"] == "tool" else f"assistant: {describe_message(m)}", flush=True)
