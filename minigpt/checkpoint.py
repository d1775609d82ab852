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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .model import GPT, GPTConfig
from .tokenizer import CharTokenizer
from .utils import sha256_file, write_json_atomic

FORMAT = "minigpt-checkpoint"
VERSION = 1
POINTER = "latest.json"
FILES = ("model.safetensors", "state.pt", "meta.json")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: a ready model and everything needed to resume."""

    model: GPT
    tokenizer: CharTokenizer
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


def save_checkpoint(out_dir, model: GPT, tokenizer: CharTokenizer, step: int, *, train_config: dict,
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
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".tmp-{name}-"))
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
    for p in out_dir.glob(".tmp-ckpt-*"):  # left by an earlier crash
        shutil.rmtree(p, ignore_errors=True)
    return final


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
    return ckpt


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
    for fname, info in meta.get("files", {}).items():
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


def load_checkpoint(path, device="cpu", load_state: bool = True) -> Checkpoint:
    """Load the checkpoint at ``path`` (a run folder or one checkpoint folder) onto ``device``.

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
        tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{ckpt / 'meta.json'} lacks a valid model config or tokenizer ({e})") from None
    model = GPT(model_config)
    try:
        missing, unexpected = load_model(model, str(ckpt / "model.safetensors"), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} could not be read as minigpt weights: {e}") from None
    missing = [m for m in missing if m not in ("lm_head.weight", "transformer.wte.weight")]
    if missing or unexpected:
        raise ValueError(f"{ckpt / 'model.safetensors'} does not match the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    model.to(device).eval()
    state = None
    if load_state:
        try:
            state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickle errors come in many types
            raise ValueError(f"{ckpt / 'state.pt'} could not be loaded safely (weights_only): "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return Checkpoint(model=model, tokenizer=tokenizer, model_config=model_config,
                      train_config=meta.get("train_config", {}), step=int(meta["step"]),
                      history=meta.get("history", []), state=state, extra=meta.get("extra", {}), path=ckpt)
