"""The mutations: one-line bugs in the safety-critical modules, and the tests that must catch them.

Each snippet must occur exactly once in its file (the runner refuses to guess otherwise): when
the code changes, update the snippet here. Keep one behaviour per mutation, so that a survivor
names one untested rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    id: str
    path: str
    """File to mutate, relative to the repository root."""
    snippet: str
    """Exact source text, found exactly once in the file."""
    replacement: str
    tests: tuple[str, ...]
    """Test files (or node ids) that must fail once the mutation is applied."""
    why: str = ""


VALIDATE = "store_schema/validate.py"
DEEP = "store_schema/deep.py"
LOCK = "pipeline/store/lock.py"
LOCATION = "pipeline/store/location.py"
REFUSAL = "pipeline/sanitize/output.py"
SANITIZE_RUN = "pipeline/sanitize/run.py"
EXTRACT_RUN = "pipeline/extract/run.py"
CONFIG = "pipeline/extract/config.py"
REGISTRY = "pipeline/encoders/registry.py"

VALIDATE_TESTS = ("tests/store_schema/test_validate_rules.py",)
DEEP_TESTS = ("tests/store_schema/test_deep_rules.py",)
LOCK_TESTS = ("tests/store/test_lock_holders.py",)
REFUSAL_TESTS = ("tests/sanitize/test_refuse_own_input.py",)
CONFIG_TESTS = ("tests/extract/test_config_defaults.py",)
LOAD_TESTS = ("tests/encoders/test_load_safety.py",)


def _off(id: str, path: str, condition: str, tests: tuple[str, ...], why: str = "") -> Mutation:
    """The rule guarded by `condition` (an `if ...:` / `elif ...:` line) never fires."""
    keyword = condition.split(" ", 1)[0]
    return Mutation(id, path, condition, f"{keyword} False:", tests, why)


MUTATIONS: list[Mutation] = [
    # ------------------------------------------------------------ store_schema/validate.py
    _off("validate-dtype-unchecked", VALIDATE, "if not _dtype_ok(array, spec):", VALIDATE_TESTS),
    _off(
        "validate-window-bounds-unchecked",
        VALIDATE,
        'elif sizes.get("window") is not None and '
        'bool((offsets + counts > sizes["window"]).any()):',
        VALIDATE_TESTS,
    ),
    Mutation(
        "validate-window-bounds-off-by-one",
        VALIDATE,
        'bool((offsets + counts > sizes["window"]).any())',
        'bool((offsets + counts >= sizes["window"]).any())',
        VALIDATE_TESTS,
        "windows ending exactly at the last row refused",
    ),
    _off("validate-size-mismatch-unchecked", VALIDATE, "if size != expected:", VALIDATE_TESTS),
    _off(
        "validate-hidden-size-unchecked",
        VALIDATE,
        'if hidden is not None and sizes.get("feature") not in (None, hidden):',
        VALIDATE_TESTS,
    ),
    _off(
        "validate-sampling-unchecked",
        VALIDATE,
        "if key in sampling and sizes.get(dim) not in (None, sampling[key]):",
        VALIDATE_TESTS,
    ),
    _off(
        "validate-undeclared-attr-arrays-accepted",
        VALIDATE,
        "if name.startswith(ATTRIBUTE_PREFIX) and name[len(ATTRIBUTE_PREFIX) :] not in attributes:",
        VALIDATE_TESTS,
    ),
    _off(
        "validate-schema-id-unchecked",
        VALIDATE,
        'if meta.get("schema") != SCHEMA_ID:',
        VALIDATE_TESTS,
    ),
    _off(
        "validate-schema-version-unchecked",
        VALIDATE,
        'elif meta.get("schema_version") != SCHEMA_VERSION:',
        VALIDATE_TESTS,
    ),
    _off("validate-kind-unchecked", VALIDATE, 'if meta.get("kind") not in KINDS:', VALIDATE_TESTS),
    _off(
        "validate-status-unchecked",
        VALIDATE,
        'if meta.get("status") not in STATUSES:',
        VALIDATE_TESTS,
    ),
    _off(
        "validate-sanitized-attrs-unchecked",
        VALIDATE,
        'if meta.get("kind") == "sanitized":',
        VALIDATE_TESTS,
    ),
    Mutation(
        "validate-required-attrs-unchecked",
        VALIDATE,
        "problems = [f\"root attrs lack '{key}'\" for key in REQUIRED_ATTRS if key not in meta]",
        "problems = []",
        VALIDATE_TESTS,
    ),
    _off(
        "validate-stale-consolidated-metadata-accepted",
        VALIDATE,
        "if set(consolidated.array_keys()) != set(group.array_keys()):",
        VALIDATE_TESTS,
    ),
    _off(
        "validate-pending-videos-in-complete-store-accepted",
        VALIDATE,
        'if meta.get("status") == "complete" and bool((status == VIDEO_PENDING).any()):',
        VALIDATE_TESTS,
    ),
    # ------------------------------------------------------------ store_schema/deep.py
    Mutation(
        "deep-store-without-crc32c-reported-checksummed",
        DEEP,
        'return any(type(codec).__name__ == "Crc32cCodec" for codec in array.metadata.codecs)',
        "return True",
        DEEP_TESTS,
    ),
    Mutation(
        "deep-bookkeeping-arrays-need-crc32c",
        DEEP,
        'if not _has_checksum(array) and not name.startswith("_"):',
        "if not _has_checksum(array):",
        DEEP_TESTS,
    ),
    Mutation(
        "deep-corrupt-chunks-ignored",
        DEEP,
        "return corrupt_chunk_message(name, coords, key, _one_line(error))",
        "return None",
        DEEP_TESTS,
    ),
    Mutation(
        "deep-missing-feature-chunks-ignored",
        DEEP,
        "needed = bool(ok[rows].any())",
        "needed = False",
        DEEP_TESTS,
    ),
    _off(
        "deep-missing-chunks-reported-in-incomplete-store",
        DEEP,
        'if meta.get("status") != "complete":',
        DEEP_TESTS,
    ),
    _off(
        "deep-consolidated-mismatch-ignored",
        DEEP,
        "if own is not None and entry != own:",
        DEEP_TESTS,
    ),
    _off(
        "deep-missing-root-metadata-unreported",
        DEEP,
        'if "" not in documents and not any("root group" in p for p in report.problems):',
        DEEP_TESTS,
    ),
    # ------------------------------------------------------------ pipeline/store/lock.py
    Mutation(
        "lock-zombie-holder-alive",
        LOCK,
        '            if process.status() == psutil.STATUS_ZOMBIE:\n                return "dead"\n',
        "",
        LOCK_TESTS,
        "an exited but unreaped holder keeps its lock forever",
    ),
    Mutation(
        "lock-live-holder-breakable",
        LOCK,
        'if state == "alive":',
        'if state == "never":',
        LOCK_TESTS,
    ),
    Mutation(
        "lock-stale-lock-broken-without-flag",
        LOCK,
        '        if not self.break_lock:\n            if state == "dead":',
        '        if False:\n            if state == "dead":',
        LOCK_TESTS,
    ),
    Mutation(
        "lock-create-not-atomic",
        LOCK,
        "os.link(tmp, path)  # fails if path exists",
        "os.replace(tmp, path)  # fails if path exists",
        LOCK_TESTS,
        "a second run overwrites the holder's lock",
    ),
    Mutation(
        "lock-verify-accepts-a-removed-lock",
        LOCK,
        "if holder is None or holder.token != self.holder.token:",
        "if holder is not None and holder.token != self.holder.token:",
        LOCK_TESTS,
    ),
    Mutation(
        "lock-release-removes-the-new-holders-lock",
        LOCK,
        "            if holder is not None and holder.token == mine.token:\n"
        "                self.file.delete()",
        "            if True:\n                self.file.delete()",
        LOCK_TESTS,
    ),
    Mutation(
        "sanitize-no-lock-verify-before-completion",
        SANITIZE_RUN,
        "lock.verify()\n",
        "pass  # mutant: no verify\n",
        LOCK_TESTS,
    ),
    Mutation(
        "extract-no-lock-verify-before-completion",
        EXTRACT_RUN,
        "lock.verify()\n",
        "pass  # mutant: no verify\n",
        LOCK_TESTS,
    ),
    # ------------------------------------------------------------ pipeline/store/location.py
    _off(
        "location-contains-ignores-symlinks",
        LOCATION,
        "if self.is_local and other.is_local:",
        REFUSAL_TESTS,
    ),
    Mutation(
        "location-contains-misses-the-same-store",
        LOCATION,
        'return theirs == mine or theirs.startswith(mine + "/")',
        'return theirs.startswith(mine + "/")',
        REFUSAL_TESTS,
    ),
    Mutation(
        "location-contains-takes-siblings-for-children",
        LOCATION,
        'return theirs == mine or theirs.startswith(mine + "/")',
        "return theirs == mine or theirs.startswith(mine)",
        REFUSAL_TESTS,
    ),
    Mutation(
        "location-contains-root-is-the-cwd",
        LOCATION,
        'mine = str(Path(self.url).resolve()).rstrip("/")',
        "mine = str(Path(mine).resolve())",
        REFUSAL_TESTS,
        "the bug fixed with these tests: '/' stripped to '' resolved to the cwd",
    ),
    # ------------------------------------------------------------ sanitize's refusal
    _off(
        "refusal-output-inside-input-allowed", REFUSAL, "if source.contains(output):", REFUSAL_TESTS
    ),
    _off(
        "refusal-output-around-input-allowed", REFUSAL, "if output.contains(source):", REFUSAL_TESTS
    ),
    Mutation(
        "refusal-not-called-by-sanitize",
        SANITIZE_RUN,
        "    check_apart(source_location, location)\n",
        "",
        REFUSAL_TESTS,
    ),
    # ------------------------------------------------------------ pipeline/extract/config.py
    Mutation(
        "config-pretrain-extracted-by-default",
        CONFIG,
        'DEFAULT_EXCLUDED_SPLITS = ("pretrain",)',
        "DEFAULT_EXCLUDED_SPLITS = ()",
        CONFIG_TESTS,
    ),
    Mutation(
        "config-remote-code-trusted-by-default",
        CONFIG,
        "trust_remote_code: bool = False",
        "trust_remote_code: bool = True",
        CONFIG_TESTS,
    ),
    _off(
        "config-flags-accept-non-booleans",
        CONFIG,
        "if not isinstance(getattr(self, name), bool):",
        CONFIG_TESTS,
    ),
    # ------------------------------------------------------------ weights loading
    Mutation(
        "registry-bin-loaded-with-full-pickle",
        REGISTRY,
        "weights_only=True,  # *.bin",
        "weights_only=False,  # *.bin",
        LOAD_TESTS,
        "equivalent in behaviour with transformers 5 (its .bin path is always weights-only): "
        "caught by the source audit",
    ),
    Mutation(
        "registry-bin-checkpoints-not-hashed",
        REGISTRY,
        '[*directory.glob("*.bin"), *directory.glob("*.pt")]',
        "[]",
        LOAD_TESTS,
        "a plain .bin checkpoint can no longer be loaded",
    ),
]
