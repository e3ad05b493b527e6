"""Checks for tests/e2e/test_train_cli.sh that need h5py/numpy: results-file layout, exact
equality of two runs, a SIGKILLed file's consistency, and an exported model's safetensors
(read with struct/json/numpy: transformers is not needed). Each subcommand prints what it
checked and exits 1 with the first mismatches on failure.

usage: train_cli_check.py layout FILE STATUS L
       train_cli_check.py attr FILE GROUP KEY
       train_cli_check.py same FILE_A FILE_B
       train_cli_check.py killed FILE [running|complete [REFERENCE_FILE]]
       train_cli_check.py export DIR NUM_LABELS L [BASE_MODEL_DIR FROZEN_DEPTH]
"""
import json
import os
import struct
import sys

import h5py
import numpy as np

errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


def s(v):
    return v.decode() if isinstance(v, bytes) else v


def layout(path, status, L):
    L = int(L)
    with h5py.File(path, "r") as f:
        check(s(f.attrs.get("format")) == "autofreeze-results", "root@format")
        n = int(f["steps"].attrs["rows"])
        check(n > 0, "/steps@rows > 0")
        for name in ("step", "epoch", "loss", "lr", "frozen_depth", "t_data", "t_forward", "t_backward",
                     "t_optimizer", "t_total", "wall", "examples"):
            check(name in f["steps"], f"/steps/{name} exists")
            if name in f["steps"]:
                check(f["steps"][name].shape == (n,), f"/steps/{name} shape {f['steps'][name].shape} == ({n},)")
        check(np.array_equal(f["steps/step"][:n], np.arange(1, n + 1)), "/steps/step is 1..n")
        check(np.all(np.isfinite(f["steps/loss"][:n])), "/steps/loss finite")
        k = int(f["intervals"].attrs["rows"])
        check(k > 0, "/intervals@rows > 0")
        for name in ("l1", "l2", "ratio"):
            check(f["intervals"][name].shape == (k, L), f"/intervals/{name} shape {f['intervals'][name].shape} == ({k}, {L})")
        for name in ("interval", "step", "depth_before", "depth_after"):
            check(f["intervals"][name].shape == (k,), f"/intervals/{name} shape == ({k},)")
        e = int(f["evals"].attrs["rows"])
        check(e > 0 and "accuracy" in f["evals"], "/evals/accuracy exists with rows")
        if "accuracy" in f["evals"]:
            acc = f["evals/accuracy"][:e]
            check(acc.shape == (e,) and np.all((acc >= 0) & (acc <= 1)), "/evals/accuracy in [0, 1]")
        check(int(f["evals/step"][e - 1]) == n, "the last evaluation is at the last step")
        sm = f["summary"].attrs
        check(s(sm.get("status")) == status, f"/summary@status {s(sm.get('status'))!r} == {status!r}")
        check(s(sm.get("best_metric")) == "accuracy", "/summary@best_metric == accuracy")
        check("best_value" in sm and "total_time" in sm, "/summary@best_value, total_time")
        cfg = f["config"].attrs
        check(s(cfg.get("task")) == "sst2" and int(cfg.get("max_len", -1)) == 16, "/config task, max_len")
        print(f"layout: {n} steps, {k} intervals x {L} layers, {e} evals, status {s(sm.get('status'))}, "
              f"loss {f['steps/loss'][0]:.4f} -> {f['steps/loss'][n - 1]:.4f}, "
              f"accuracy {f['evals/accuracy'][e - 1]:.3f}")


def attr(path, group, key):
    with h5py.File(path, "r") as f:
        print(s(f[group].attrs[key]))


def same(a, b):
    cols = ["steps/step", "steps/epoch", "steps/loss", "steps/lr", "steps/frozen_depth", "steps/examples",
            "intervals/step", "intervals/depth_before", "intervals/depth_after", "intervals/l1", "intervals/l2",
            "intervals/ratio", "evals/step", "evals/accuracy"]
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for c in cols:
            g = c.split("/")[0]
            na, nb = int(fa[g].attrs["rows"]), int(fb[g].attrs["rows"])
            x, y = fa[c][:na], fb[c][:nb]
            if x.shape != y.shape:
                check(False, f"{c}: shapes {x.shape} vs {y.shape}")
                continue
            eq = np.array_equal(x, y, equal_nan=True)
            if not eq:
                bad = np.argwhere(~((x == y) | (np.isnan(x) & np.isnan(y))) if x.dtype.kind == "f" else x != y)
                first = [tuple(int(i) for i in r) for r in bad[:3]]
                diff = np.nanmax(np.abs(x.astype(float) - y.astype(float)))
                check(False, f"{c}: {len(bad)} values differ, first at {first}, max |diff| {diff:g}")
            print(f"same: {c:24s} {x.size} values {'identical' if eq else 'DIFFERENT'}")


def killed(path, want="running", ref=None):
    # docs/results-format.md: read /<group>@rows rows; a kill during a flush may leave
    # columns longer than rows, never shorter.
    with h5py.File(path, "r") as f:
        st = s(f["summary"].attrs["status"])
        if st == "complete" and want != "complete" and ref and os.path.exists(ref):
            # The run can finish between the liveness probe and the kill: then it must be
            # the whole run, row for row the same as a finished run of the same settings.
            with h5py.File(ref, "r") as g:
                n, m = int(f["steps"].attrs["rows"]), int(g["steps"].attrs["rows"])
                check(n == m and np.array_equal(f["steps/loss"][:n], g["steps/loss"][:m]),
                      f"killed run reports complete but differs from {ref}: {n} vs {m} rows")
            print("killed: the run completed just before the kill")
        else:
            check(st == want, f"/summary@status of the killed run is '{st}', expected '{want}'")
        for g in ("steps", "intervals", "evals"):
            n = int(f[g].attrs["rows"])
            lens = {k: f[g][k].shape[0] for k in f[g]}
            check(all(v >= n for v in lens.values()), f"/{g}: every column holds >= rows={n}: {lens}")
            if g == "steps":
                check(np.array_equal(f["steps/step"][:n], np.arange(1, n + 1)), "/steps/step[:rows] is 1..rows")
                check(np.all(np.isfinite(f["steps/loss"][:n])), "/steps/loss[:rows] finite")
                ex = f["steps/examples"][:n]
                check(np.all(np.diff(ex) > 0), "/steps/examples increasing")
            tag = "equal" if all(v == n for v in lens.values()) else f"longer (kill during a flush): {lens}"
            print(f"killed: /{g}@rows = {n}, columns {tag}")


def load_st(path):
    with open(path, "rb") as fh:
        b = fh.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        check(v["dtype"] == "F32", f"{k}: dtype {v['dtype']}")
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype=np.float32).reshape(v["shape"])
    return h.get("__metadata__", {}), out


def export(d, nl, L, base=None, frozen=None):
    nl, L = int(nl), int(L)
    with open(f"{d}/config.json") as fh:
        cfg = json.load(fh)
    check(cfg.get("architectures") == ["BertForSequenceClassification"], f"architectures {cfg.get('architectures')}")
    # transformers derives num_labels from id2label; accept an explicit num_labels too
    check(len(cfg.get("id2label", {})) == nl, f"config.json id2label has {len(cfg.get('id2label', {}))} labels, want {nl}")
    check(cfg.get("num_labels", nl) == nl, f"config.json num_labels {cfg.get('num_labels')}")
    check(cfg.get("num_hidden_layers") == L, "config.json num_hidden_layers")
    meta, t = load_st(f"{d}/model.safetensors")
    check(meta.get("format") == "pt", "safetensors __metadata__ format=pt (transformers requires it)")
    C, I = cfg["hidden_size"], cfg["intermediate_size"]
    want = {"bert.embeddings.word_embeddings.weight": (cfg["vocab_size"], C),
            "bert.embeddings.position_embeddings.weight": (cfg["max_position_embeddings"], C),
            "bert.embeddings.token_type_embeddings.weight": (cfg["type_vocab_size"], C),
            "bert.embeddings.LayerNorm.weight": (C,), "bert.embeddings.LayerNorm.bias": (C,),
            "bert.pooler.dense.weight": (C, C), "bert.pooler.dense.bias": (C,),
            "classifier.weight": (nl, C), "classifier.bias": (nl,)}
    for l in range(L):
        p = f"bert.encoder.layer.{l}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            want[p + m + ".weight"], want[p + m + ".bias"] = (C, C), (C,)
        for m in ("attention.output.LayerNorm", "output.LayerNorm"):
            want[p + m + ".weight"], want[p + m + ".bias"] = (C,), (C,)
        want[p + "intermediate.dense.weight"], want[p + "intermediate.dense.bias"] = (I, C), (I,)
        want[p + "output.dense.weight"], want[p + "output.dense.bias"] = (C, I), (C,)
    missing = sorted(set(want) - set(t))
    extra = sorted(set(t) - set(want))
    check(not missing, f"missing tensors: {missing[:5]}")
    check(not extra, f"unexpected tensors: {extra[:5]}")
    for k, shp in want.items():
        if k in t:
            check(t[k].shape == shp, f"{k}: shape {t[k].shape}, want {shp}")
            check(np.all(np.isfinite(t[k])), f"{k}: finite")
    if base is None:
        # a classifier initialised for a new label count starts with zero biases (checkpoint.h)
        cb = t.get("classifier.bias")
        check(cb is not None and np.any(cb != 0), "classifier.bias moved from its zero initialisation")
        print(f"export: {len(t)} tensors with HF names and shapes, {nl} labels, "
              f"classifier.bias {np.round(cb, 4).tolist() if cb is not None else None}")
        return
    # base's classifier fits nl labels, so the run started from it: frozen tensors must be
    # bit-identical to the base model's, trained ones must have moved
    frozen = int(frozen)
    _, b = load_st(f"{base}/model.safetensors")
    same_n = moved_n = 0
    for k in sorted(want):
        if k not in t or k not in b:
            check(False, f"{k}: missing in the export or the base model")
            continue
        is_frozen = k.startswith("bert.embeddings.") or any(
            k.startswith(f"bert.encoder.layer.{l}.") for l in range(frozen))
        eq = np.array_equal(t[k], b[k])
        if is_frozen:
            check(eq, f"{k}: frozen, but differs from the base model by {np.max(np.abs(t[k] - b[k])):g}")
            same_n += eq
        else:
            check(not eq, f"{k}: trainable, but equals the base model's (not trained?)")
            moved_n += not eq
    print(f"export: frozen depth {frozen}: {same_n} frozen tensors identical to the base model, "
          f"{moved_n} trained tensors (classifier included) changed")


def evals_unique(path):
    """Every evaluation step appears once (resuming a finished run must not evaluate again)."""
    with h5py.File(path, "r") as f:
        n = int(f["evals"].attrs["rows"])
        steps = list(f["evals/step"][:n])
        check(len(steps) == len(set(steps)) and n > 0, f"{path}: evaluation steps repeat: {steps}")
        check(s(f["summary"].attrs["status"]) == "complete", f"{path}: status is not complete")
    print(f"evals_unique: {n} evaluations at distinct steps")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"layout": layout, "attr": attr, "same": same, "killed": killed, "export": export,
     "evals_unique": evals_unique}[cmd](*args)
    if errors:
        for e in errors[:20]:
            print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
