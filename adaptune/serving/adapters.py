"""Base models loaded once, with many adapters on each, switched per request.

Every PEFT adapter of one base model and one PEFT type lives in one multi-adapter
``PeftModel`` (PEFT refuses to mix types in one model): a new version is loaded into it with
``load_adapter`` on first use, selected with ``set_adapter`` before each generation and removed
with ``delete_adapter`` when evicted, so serving N adapters costs one base model plus N small
adapters. ``last_layers`` versions overwrite base weights, so each gets a base model of its own.

Adapters that ``production`` or ``previous`` point to stay loaded; at most ``idle_adapters``
others (say, an old version asked for by number, or one a promotion moved off both aliases)
stay too, least recently used out first, so memory stays flat as versions come and go.

Weights are never served stale: a version's files are verified against the checksums recorded
at registration before it loads, and before each answer a few ``stat`` calls tell whether they
moved since (``freshness.py``); files that moved are hashed again, and a version whose files no
longer match is dropped from memory and refused (``BrokenRecord``) until they are restored.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from adaptune.base_models import BaseModel, load_base_model
from adaptune.base_models.attention import resolve_attention
from adaptune.compute.precision import resolve_precision
from adaptune.errors import UserError
from adaptune.evaluation.generation import TokenCounts, generate
from adaptune.registry import BrokenRecord, RegisteredVersion, read_aliases, verify_version
from adaptune.serving.freshness import Seen
from adaptune.serving.generation_options import Answer, GenerationOptions
from adaptune.tuning.loading import adapter_kind, load_tuned_model
from adaptune.tuning.methods import LastLayersMethod

ATTENTION_FLAG = "--attention"

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """One base model in memory and the adapters loaded onto it.

    Attributes:
        base: The base model and its tokenizer.
        kind: The adapters' PEFT type (``LORA``, ``IA3``, ...) or ``last_layers``.
        model: The multi-adapter ``PeftModel`` (or, for ``last_layers``, the tuned model).
        adapters: Version ref (``model@vN``) to the adapter's name inside ``model``.
    """

    base: BaseModel
    kind: str
    model: torch.nn.Module
    adapters: dict[str, str] = field(default_factory=dict)


@contextmanager
def explained_load_errors(ref: str) -> Iterator[None]:
    """Turn a version whose files do not load (corrupt, wrong base) into a ``UserError``."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{ref} cannot be loaded: {type(exc).__name__}: {exc}") from exc


class AdapterPool:
    """The models in memory: one per base model and adapter type, adapters switched per call.

    Generation runs under one lock, so calls from several threads are serialised; the server
    calls it from a single worker thread (see ``batching.py``).
    """

    def __init__(
        self,
        registry_dir: Path,
        idle_adapters: int = 4,
        max_prompt_tokens: int = 256,
        precision: str = "auto",
        attention: str = "auto",
    ) -> None:
        """Create an empty pool.

        Args:
            registry_dir: The registry the versions come from (read for their aliases).
            idle_adapters: Adapters no alias points to that stay loaded.
            max_prompt_tokens: Prompt tokens kept (cut from the left).
            precision: The dtype base models are held in (``auto``: bf16 on a GPU that
                supports it, else fp16 on GPU; fp32 on CPU), as ``adaptune serve --precision``.
            attention: Their attention implementation, as ``adaptune serve --attention``.

        Raises:
            UserError: If this machine cannot run ``precision`` (fp16 without a GPU) or
                ``attention`` (flash_attention_2 without the package or a GPU).
        """
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_precision(precision, self.device, "--precision")
        resolve_attention(attention, self.device, self.dtype, ATTENTION_FLAG)
        self.attention = attention
        self.registry_dir = Path(registry_dir)
        self.idle_adapters = idle_adapters
        self.max_prompt_tokens = max_prompt_tokens
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._group_of: dict[str, tuple[str, str, str]] = {}
        self._last_used: OrderedDict[str, None] = OrderedDict()
        self._seen: dict[str, Seen] = {}
        self._checksummed: set[str] = set()  # refs once seen with checksums: never unchecked
        self._names = (f"adapter{n}" for n in itertools.count(1))
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()

    def _load_base(self, name: str) -> BaseModel:
        """The base model ``name`` in the pool's dtype and attention implementation."""
        return load_base_model(
            name,
            self.dtype,
            device=self.device,
            attention=self.attention,
            attention_setting=ATTENTION_FLAG,
        )

    def generate(
        self, version: RegisteredVersion, prompts: list[str], options: GenerationOptions
    ) -> list[Answer]:
        """Answer ``prompts`` (already rendered, see ``prompts.py``) with ``version``'s adapter.

        Raises:
            UserError: If the version's adapter or base model cannot be loaded.
        """
        with self._run_lock:
            group = self._load(version)
            name = group.adapters[version.ref]
            if isinstance(group.model, PeftModel):
                group.model.set_adapter(name)
            counts: list[TokenCounts] = []
            texts = generate(
                group.model,
                group.base.tokenizer,
                prompts,
                group.base.family,
                options.max_new_tokens,
                max_length=self.max_prompt_tokens,
                batch_size=max(len(prompts), 1),
                show_progress=False,
                temperature=options.temperature,
                seed=secrets.randbelow(2**31),  # each sampled batch draws anew
                top_p=options.top_p,
                top_k=options.top_k,
                stop=list(options.stop),
                counts=counts,
            )
            return [Answer(text, count) for text, count in zip(texts, counts, strict=True)]

    def generate_base(
        self, version: RegisteredVersion, prompts: list[str], options: GenerationOptions
    ) -> list[str]:
        """Answer ``prompts`` with ``version``'s base model alone, as ``adaptune compare`` does.

        The base model in memory answers with its adapters switched off (PEFT's
        ``disable_adapter``), so trying a version beside its base costs no second copy. A
        ``last_layers`` version overwrote its base model's weights: another PEFT model on the
        same base answers then, else the base model is loaded for this call (not kept).

        Raises:
            UserError: If the version's adapter or base model cannot be loaded.
        """
        with self._run_lock:
            group = self._load(version)
            peft = next(
                (
                    g
                    for (base, _, _), g in self._groups.items()
                    if base == version.base_model and isinstance(g.model, PeftModel)
                ),
                None,
            )
            if peft is None:
                with explained_load_errors(version.ref):
                    fresh = self._load_base(version.base_model)
                    fresh.model.to(self.device)
                return self._generate_plain(fresh.model, fresh, prompts, options)
            with peft.model.disable_adapter():
                return self._generate_plain(peft.model, group.base, prompts, options)

    def _generate_plain(
        self,
        model: torch.nn.Module,
        base: BaseModel,
        prompts: list[str],
        options: GenerationOptions,
    ) -> list[str]:
        return generate(
            model,
            base.tokenizer,
            prompts,
            base.family,
            options.max_new_tokens,
            max_length=self.max_prompt_tokens,
            batch_size=max(len(prompts), 1),
            show_progress=False,
            temperature=options.temperature,
            seed=secrets.randbelow(2**31),
            top_p=options.top_p,
            top_k=options.top_k,
            stop=list(options.stop),
        )

    def empty_prompt(self, version: RegisteredVersion, prompts: list[str]) -> int | None:
        """Index of the first of ``prompts`` that encodes to no token (None when none does).

        ``generate`` cannot continue a prompt of no token, and prompts are tokenised without
        special tokens, as in training, so a tokenizer that drops what it cannot read can
        leave nothing of a text that looked fine.

        Raises:
            UserError: If the version's adapter or base model cannot be loaded.
        """
        with self._run_lock:
            tokenizer = self._load(version).base.tokenizer
            for index, prompt in enumerate(prompts):
                if not tokenizer(prompt, add_special_tokens=False)["input_ids"]:
                    return index
        return None

    def tokenizer(self, version: RegisteredVersion) -> PreTrainedTokenizerBase:
        """The tokenizer of ``version``'s base model, as loaded for generation.

        Taken from any model in memory on the same base model; when there is none, the version
        is loaded (it is about to be asked anyway), so the tokenizer is never loaded twice.

        Raises:
            UserError: If the version's adapter or base model cannot be loaded.
        """
        base_name = version.base_model
        with self._state_lock:
            for (base, _, _), group in self._groups.items():
                if base == base_name:
                    return group.base.tokenizer
        with self._run_lock:
            return self._load(version).base.tokenizer

    def load(self, version: RegisteredVersion) -> None:
        """Load ``version``'s adapter now (and its base model when it is the first)."""
        with self._run_lock:
            self._load(version)

    def loaded(self) -> list[dict[str, object]]:
        """Each model in memory: its base model, adapter type and the versions loaded on it."""
        with self._state_lock:
            return [
                {"baseModel": base, "adapterType": kind, "versions": sorted(group.adapters)}
                for (base, kind, _), group in self._groups.items()
            ]

    def loaded_refs(self) -> set[str]:
        """Refs (``model@vN``) of every loaded adapter."""
        with self._state_lock:
            return set(self._group_of)

    def discard(self, ref: str) -> bool:
        """Drop ``ref``'s adapter from memory (its version is broken); whether it was loaded."""
        with self._run_lock:
            if ref not in self._group_of:
                return False
            self._unload(ref)
            return True

    def _load(self, version: RegisteredVersion) -> _Group:
        ref = version.ref
        if ref in self._group_of:
            if self._still_verified(version):
                with self._state_lock:
                    self._last_used.move_to_end(ref)
                return self._groups[self._group_of[ref]]
            self._unload(ref)  # its files changed, still match what was recorded: load them anew
        seen = self._verify(version)
        group = self._load_verified(version)
        if not seen.matches(version):  # a file changed while it was read: trust nothing read
            self._unload(ref)
            raise BrokenRecord(
                f"{ref} ({version.path}) changed while it was loading: not served; "
                "versions are immutable, so restore its files and ask again"
            )
        self._seen[ref] = seen
        return group

    def _verify(self, version: RegisteredVersion) -> Seen:
        """Check the files against their recorded checksums; what they looked like before.

        Raises:
            BrokenRecord: If a file is missing, unreadable or changed since registration.
        """
        seen = Seen.now(version)
        if seen.recorded is not None:
            self._checksummed.add(version.ref)
        elif version.ref in self._checksummed:
            raise BrokenRecord(
                f"{version.ref} ({version.path}) is broken: its version.json no longer records "
                "the checksums its files were verified against"
            )
        note = verify_version(version)
        if note:
            log.warning("%s", note)
        return seen

    def _still_verified(self, version: RegisteredVersion) -> bool:
        """Whether the loaded adapter of ``version`` may answer: its files did not change.

        ``stat`` alone when nothing moved. When something did, the files are hashed again:
        still matching (a file touched, or replaced by the same bytes), the adapter stays.
        A version without recorded checksums cannot be verified: its moved files are loaded
        anew (False).

        Raises:
            BrokenRecord: If the files no longer match; the adapter is dropped from memory.
        """
        ref = version.ref
        seen = self._seen.get(ref)
        if seen is not None and seen.matches(version):
            return True
        try:
            fresh = self._verify(version)
        except BrokenRecord:
            self._unload(ref)
            log.warning("dropped %s from memory: its files changed on disk", ref)
            raise
        if fresh.recorded is None:
            log.warning("%s: its files changed on disk and have no checksums: reloading", ref)
            return False
        log.info("%s: its files moved on disk but still match their checksums", ref)
        self._seen[ref] = fresh
        return True

    def _load_verified(self, version: RegisteredVersion) -> _Group:
        ref = version.ref
        base_name = version.base_model
        kind = adapter_kind(version.path)
        own_base = kind == LastLayersMethod.method
        key = (base_name, kind, ref if own_base else "")
        name = next(self._names)
        group = self._groups.get(key)
        if group is None:
            with explained_load_errors(ref):
                base = self._load_base(base_name)
                base.model.to(self.device)
                model = load_tuned_model(base.model, version.path, adapter_name=name)
            group = _Group(base=base, kind=kind, model=model.eval())
            log.info("loaded base model %s for %s adapters", base_name, kind)
        else:
            try:
                with explained_load_errors(ref):
                    group.model.load_adapter(str(version.path), adapter_name=name)
            except UserError:
                if name in group.model.peft_config:  # PEFT adds the adapter, then its weights
                    group.model.delete_adapter(name)
                raise
        log.info("loaded adapter %s", ref)
        with self._state_lock:
            self._groups[key] = group
            group.adapters[ref] = name
            self._group_of[ref] = key
            self._last_used[ref] = None
        self._evict(keep=ref)
        return group

    def _unload(self, ref: str) -> None:
        """Drop ``ref``'s adapter (and its base model when no other adapter is on it)."""
        key = self._group_of[ref]
        group = self._groups[key]
        name = group.adapters[ref]
        with self._state_lock:
            del group.adapters[ref], self._group_of[ref], self._last_used[ref]
            self._seen.pop(ref, None)
            if not group.adapters:
                del self._groups[key]
        if group.adapters and isinstance(group.model, PeftModel):
            group.model.delete_adapter(name)
        log.info("unloaded adapter %s", ref)

    def _pinned(self) -> set[str]:
        """Refs that an alias points to (never evicted)."""
        pinned = set()
        for model in {ref.partition("@")[0] for ref in self._group_of}:
            try:
                aliases = read_aliases(self.registry_dir, model)
            except Exception:  # a broken index must not stop serving; keep what is loaded
                log.exception("cannot read the aliases of %s; keeping its adapters", model)
                return set(self._group_of)
            pinned.update(f"{model}@v{n}" for n in aliases.values())
        return pinned

    def _evict(self, keep: str) -> None:
        pinned = self._pinned()
        idle = [r for r in self._last_used if r not in pinned and r != keep]
        for ref in idle[: max(len(idle) - self.idle_adapters, 0)]:
            key = self._group_of[ref]
            group = self._groups[key]
            if len(group.adapters) == 1 and isinstance(group.model, PeftModel):
                continue  # a PeftModel needs one adapter; the base stays loaded anyway
            self._unload(ref)
            log.info("evicted adapter %s", ref)
