"""``python -m minigpt chat --ckpt DIR [--as NAME] [--to NAME]``: talk to a script-trained model."""

from __future__ import annotations

import sys

from .sample import add_sampling_options, load_for_command


def add_cli(sub) -> None:
    """``python -m minigpt chat --ckpt DIR [--as NAME] [--to NAME]``."""
    c = sub.add_parser("chat", help="talk to a script-trained model: you speak as one character, it answers as another")
    c.add_argument("--ckpt", help="a run folder written by `train`; default: the course's run for this device")
    c.add_argument("--as", dest="as_name", default="ROMEO", help="the character you speak as (default ROMEO)")
    c.add_argument("--to", dest="to_name", default="JULIET", help="the character the model speaks as (default JULIET)")
    add_sampling_options(c, temperature=0.8, top_p=0.9, max_new_tokens=300, seed_default=1337,
                         max_new_help="the longest answer, in tokens")
    c.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    c.set_defaults(func=_cli_chat)


def _cli_chat(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..chat import Chat, known_speakers, resolve_speaker
    from ..generate import SamplingSettings, check_max_new_tokens

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
