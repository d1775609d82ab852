"""Checkpoints that survive interruption and load without running anyone's code.

A training run's folder holds one pointer file and one checkpoint folder:

    out_dir/latest.json              {"format": "minigpt-checkpoint", "checkpoint": "ckpt-000500-..."}
    out_dir/ckpt-000500-.../model.safetensors   the weights (safetensors: tensors only, no code)
                           /state.pt            optimizer, RNG states, data sampler (tensors and
                                                plain containers; read with torch.load(weights_only=True))
                           /meta.json           step, configs, tokenizer, history, each file's SHA-256

Writing is atomic: a new checkpoint is written into a temporary folder, flushed to disk, renamed,
and only then does ``latest.json`` (itself replaced atomically) point to it. A crash at any moment
leaves the previous checkpoint whole and ``latest.json`` pointing to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .bpe import FORMAT as BPE_FORMAT
from .bpe import BPETokenizer
from .model import GPT, RUNTIME_FIELDS, GPTConfig
from .tokenizer import CharTokenizer, Tokenizer, read_tokenizer_file
from .utils import describe_differences, os_error_message, pid_alive, sha256_file, write_json_atomic

FORMAT = "minigpt-checkpoint"
VERSION = 1
POINTER = "latest.json"
LOCK = ".lock"  # the PID of the training run that is writing this folder
FILES = ("model.safetensors", "state.pt", "meta.json")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: a ready model and everything needed to resume."""

    model: GPT
    tokenizer: Tokenizer
    model_config: GPTConfig
    train_config: dict
    step: int
    history: list = field(default_factory=list)
    state: dict | None = None  # optimizer, RNG states, sampler; None when load_state=False
    extra: dict = field(default_factory=dict)
    path: Path | None = None


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """The tokenizer a ``to_dict`` describes, of either kind: a byte-level BPE (``format: minigpt-bpe``)
    or a :class:`CharTokenizer` (``type: char``, as in every checkpoint written before BPE models)."""
    if isinstance(d, dict) and d.get("format") == BPE_FORMAT:
        return BPETokenizer.from_dict(d)
    if isinstance(d, dict) and d.get("type") == "char":
        return CharTokenizer.from_dict(d)
    if isinstance(d, dict) and d.get("format") == "minigpt-chat":
        raise ValueError("this is an assistant's chat tokenizer (lesson 15): talk to the run with "
                         "`python -m minigpt chat --assistant --ckpt DIR`, or load it with "
                         "minigpt.chat_template.load_assistant")
    raise ValueError(f"not a tokenizer: expected a JSON object with type 'char' (a character tokenizer) or "
                     f"format {BPE_FORMAT!r} (a BPE), got {str(d)[:60]}")


def load_tokenizer(path) -> Tokenizer:
    """A saved tokenizer of either kind (the file its ``save`` wrote); the one way to load one whose
    kind you do not know."""
    return tokenizer_from_dict(read_tokenizer_file(path))


def save_checkpoint(out_dir, model: GPT, tokenizer: Tokenizer, step: int, *, train_config: dict,
                    state: dict | None = None, history: list | None = None, extra: dict | None = None,
                    keep: int = 1) -> Path:
    """Write a checkpoint of ``model`` at ``step`` into ``out_dir`` atomically; return its folder.

    ``state`` holds tensors and plain containers only (optimizer state, RNG states). The newest
    ``keep`` checkpoints are kept; older ones are removed after the pointer has moved on.
    """
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{step:06d}"
    # the PID in the name says whose it is: a cleanup removes only its own or a dead process's
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".tmp-{name}-{os.getpid()}-"))
    os.chmod(tmp, 0o755)
    try:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(state or {}, tmp / "state.pt")
        files = {}
        for fname in ("model.safetensors", "state.pt"):
            _fsync_file(tmp / fname)
            files[fname] = {"bytes": (tmp / fname).stat().st_size, "sha256": sha256_file(tmp / fname)}
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "step": int(step),
            "model_config": model.config.to_dict(),
            "train_config": train_config,
            "tokenizer": tokenizer.to_dict(),
            "history": history or [],
            "extra": extra or {},
            "files": files,
        }
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        final = out_dir / f"{name}-{tmp.name.rsplit('-', 1)[-1]}"
        os.replace(tmp, final)
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(out_dir / POINTER, {"format": FORMAT, "checkpoint": final.name, "step": int(step)})
    _fsync_dir(out_dir)
    # Old checkpoints go only after the pointer has moved to the new one.
    older = sorted((p for p in out_dir.glob("ckpt-*") if p.is_dir() and p != final), key=lambda p: p.name)
    for p in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    for p in out_dir.glob(".tmp-ckpt-*"):  # left by a crash: ours, or of a process that is gone
        parts = p.name.split("-")
        pid = int(parts[3]) if len(parts) > 4 and parts[3].isdigit() else -1
        if pid == os.getpid() or not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
    return final


class RunLockedError(RuntimeError):
    """Another training run is writing the same run folder."""


def acquire_lock(out_dir) -> Path:
    """Claim the run folder ``out_dir`` for this process (creating it); return the lock file.

    A second run into the same folder gets :class:`RunLockedError` naming the first one's PID. A lock
    whose process is gone (a crash, a kill) is taken over. Also proves the folder is writable, so a
    bad ``--out`` fails before the first training step instead of at the first checkpoint.
    """
    out_dir = Path(out_dir)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"{out_dir} is a file, not a run folder; choose another --out")
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = out_dir / LOCK
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text(encoding="utf-8").split()[0])
                except (OSError, ValueError, IndexError):
                    pid = -1
                if pid != os.getpid() and pid_alive(pid):
                    raise RunLockedError(f"{out_dir} is being written by another training run (PID {pid}); "
                                         "wait for it to finish, stop it, or use another --out") from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
            return lock
    except OSError as e:
        raise ValueError(os_error_message(e, "write checkpoints to")) from None
    raise RunLockedError(f"could not lock {out_dir}; remove {out_dir / LOCK} if no training run is using it")


def release_lock(lock: Path | None) -> None:
    """Give the run folder back (only when the lock is still this process's)."""
    if lock is None:
        return
    try:
        if lock.read_text(encoding="utf-8").split()[0] == str(os.getpid()):
            lock.unlink()
    except (OSError, IndexError):
        pass


def latest_step(out_dir) -> int | None:
    """The step that ``out_dir``'s pointer names; None without a run folder or a readable pointer."""
    if not out_dir:
        return None
    try:
        return json.loads((Path(out_dir) / POINTER).read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None


def checkpoint_dir(path) -> Path:
    """The checkpoint folder for ``path``: a run folder (follows ``latest.json``) or a checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first, e.g. `python -m minigpt train --out {path}`")
    if path.is_file():
        raise ValueError(f"{path} is a file; give the run folder that holds {POINTER} (the --out folder of training)")
    if (path / "meta.json").is_file():
        return path
    pointer = path / POINTER
    if not pointer.is_file():
        raise FileNotFoundError(f"no checkpoint in {path}: it has no {POINTER}; train first with --out {path}")
    try:
        p = json.loads(pointer.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{pointer} is corrupt (not valid JSON: {e}); delete it or train again") from None
    if not isinstance(p, dict) or p.get("format") != FORMAT or not isinstance(p.get("checkpoint"), str):
        raise ValueError(f"{pointer} is not a minigpt checkpoint pointer")
    ckpt = path / p["checkpoint"]
    if not (ckpt / "meta.json").is_file():
        raise FileNotFoundError(f"{pointer} points to {ckpt.name}, which is missing or incomplete")
    folder_step = _folder_step(ckpt)
    if "step" in p and folder_step is not None and p["step"] != folder_step:
        raise ValueError(f"{pointer} says step {p['step']!r} but points to {ckpt.name}; it was edited: "
                         "restore it or train again")
    return ckpt


def _folder_step(ckpt: Path) -> int | None:
    m = re.fullmatch(r"ckpt-(\d+)(-.*)?", ckpt.name)
    return int(m.group(1)) if m else None


def _check_meta(meta: dict, ckpt: Path) -> None:
    """Every field :func:`load_checkpoint` uses has the type it must have; raise one line if not."""
    where = ckpt / "meta.json"

    def bad(what: str):
        raise ValueError(f"{where} is damaged or was edited: {what}; restore the checkpoint or train again")

    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        bad(f"step is {step!r}, not a whole number >= 0")
    folder_step = _folder_step(ckpt)
    if folder_step is not None and folder_step != step:
        bad(f"it says step {step}, but it was written at step {folder_step} (folder {ckpt.name})")
    for key, required in (("model_config", True), ("tokenizer", True), ("train_config", False), ("extra", False)):
        if (required or key in meta) and not isinstance(meta.get(key), dict):
            bad(f"{key} is {type(meta.get(key)).__name__}, not an object")
    history = meta.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        bad("history is not a list of objects")
    files = meta.get("files")
    if not isinstance(files, dict) or sorted(files) != ["model.safetensors", "state.pt"]:
        bad("files must list model.safetensors and state.pt with their bytes and sha256")
    for fname, info in files.items():
        if not isinstance(info, dict) or not isinstance(info.get("bytes"), int) or info["bytes"] < 0 \
                or not isinstance(info.get("sha256"), str) or not _SHA256.fullmatch(info["sha256"]):
            bad(f"the entry for {fname} needs bytes (a whole number) and sha256 (64 hex digits)")


def read_meta(path) -> dict:
    """The checked ``meta.json`` of the checkpoint at ``path`` (run folder or checkpoint folder)."""
    ckpt = checkpoint_dir(path)
    try:
        meta = json.loads((ckpt / "meta.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{ckpt / 'meta.json'} is corrupt or truncated (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{ckpt} is not a minigpt checkpoint (meta.json has no format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{ckpt} is checkpoint format version {meta.get('version')}; this minigpt reads {VERSION}")
    _check_meta(meta, ckpt)
    for fname, info in meta["files"].items():
        f = ckpt / fname
        if not f.is_file():
            raise FileNotFoundError(f"checkpoint file {f} is missing")
        if f.stat().st_size != info["bytes"]:
            raise ValueError(f"checkpoint file {f} is truncated or corrupt: {f.stat().st_size} bytes, "
                             f"expected {info['bytes']}")
        if sha256_file(f) != info["sha256"]:
            raise ValueError(f"checkpoint file {f} is corrupt: its SHA-256 does not match the one recorded")
    meta["_dir"] = str(ckpt)
    return meta


def load_checkpoint(path, device="cpu", load_state: bool = True, tokenizer_loader=None) -> Checkpoint:
    """Load the checkpoint at ``path`` (a run folder or one checkpoint folder) onto ``device``.

    ``tokenizer_loader`` builds the tokenizer from its saved dict (default :func:`tokenizer_from_dict`;
    an assistant run passes ``ChatTokenizer.from_dict``).

    Nothing is unpickled: weights come from safetensors, the rest from JSON and
    ``torch.load(weights_only=True)``. A missing, truncated, corrupt or foreign file raises a
    ``FileNotFoundError`` or ``ValueError`` saying which file and what is wrong.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    meta = read_meta(path)
    ckpt = Path(meta["_dir"])
    try:
        model_config = GPTConfig.from_dict(meta["model_config"])
        tokenizer = (tokenizer_loader or tokenizer_from_dict)(meta["tokenizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{ckpt / 'meta.json'} lacks a valid model config or tokenizer ({e})") from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise ValueError(f"{ckpt / 'meta.json'} is damaged or was edited: its tokenizer has {tokenizer.vocab_size} "
                         f"tokens but the model {model_config.vocab_size}; restore the checkpoint or train again")
    model = GPT(model_config)
    try:
        missing, unexpected = load_model(model, str(ckpt / "model.safetensors"), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} could not be read as minigpt weights: {e}") from None
    missing = [m for m in missing if m not in ("lm_head.weight", "transformer.wte.weight")]
    if missing or unexpected:
        raise ValueError(f"{ckpt / 'model.safetensors'} does not match the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    broken = [name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        raise ValueError(f"{ckpt / 'model.safetensors'} holds NaN or infinite weights ({', '.join(broken[:3])}): "
                         "training diverged before it was written; train again with a lower learning rate")
    model.to(device).eval()
    state = None
    if load_state:
        try:
            state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickle errors come in many types
            # PyTorch's own message suggests weights_only=False, which would run the file's code: not passed on
            raise ValueError(f"{ckpt / 'state.pt'} could not be loaded safely: it holds something other than "
                             f"tensors and plain containers ({type(e).__name__}), which could run code when "
                             "unpickled; it was not loaded. Load the weights alone (load_state=False) or train again") from None
    return Checkpoint(model=model, tokenizer=tokenizer, model_config=model_config,
                      train_config=meta.get("train_config", {}), step=int(meta["step"]),
                      history=meta.get("history", []), state=state, extra=meta.get("extra", {}), path=ckpt)


def load_weights(model: GPT, path) -> GPT:
    """Load the weights of the checkpoint at ``path`` into ``model``, which must have the checkpoint's
    architecture: other sizes or block options (RoPE, RMSNorm, SwiGLU, n_kv_head, ...) are refused with
    one line naming them. Dropout and the attention path may differ. Returns ``model``."""
    ck = load_checkpoint(path, device="cpu", load_state=False)
    saved, ours = ck.model_config.to_dict(), model.config.to_dict()
    diff = describe_differences(saved, ours, skip=RUNTIME_FIELDS)
    if diff:
        raise ValueError(f"cannot load {ck.path} into this model: the checkpoint has {diff}; build the model "
                         "from the checkpoint (load_checkpoint) or give a model of the same options")
    with torch.no_grad():
        model.load_state_dict(ck.model.state_dict())
    return model
