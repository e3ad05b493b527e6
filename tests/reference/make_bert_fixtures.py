#!/usr/bin/python3
"""Independent PyTorch reference for the C BERT engine: writes tests/fixtures/bert_tiny/.

Run from the repository root with Debian's interpreter (python3-torch, numpy):

    /usr/bin/python3 tests/reference/make_bert_fixtures.py

BERT is written out explicitly here (transformers is not needed) and follows
Hugging Face's BertForSequenceClassification exactly (post-LayerNorm encoder,
additive key mask (1-mask)*finfo(dtype).min, erf 'gelu' or tanh 'gelu_new',
pooler tanh(dense(h[:,0])), classifier on the pooled output, CrossEntropy /
MSE mean loss). Training steps follow the Hugging Face Trainer recipe:
torch.optim.AdamW (decay / no-decay groups), clip_grad_norm_(1.0) before each
step, constant learning rate.

The script is deterministic (fixed seeds, one thread, files written byte by
byte in a fixed order): running it twice gives identical files.  It also runs
its own checks (gradcheck in float64, frozen parameters unchanged, a float64
rerun of every case) and prints a summary; the numbers are quoted in
tests/reference/README.md.  Options: --out DIR (default tests/fixtures/bert_tiny),
--skip-checks (only write files).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# ----------------------------------------------------------------------------- config
BASE_CONFIG = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout": None,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    w for w in (
        "the of and to a in is it that was for on are as with his they at be this "
        "from have or by one had not but what all were when we there can an your "
        "which their said if do will each about how up out them then she many some "
        "so these would other you time"
    ).split()
]
assert len(VOCAB) == 64 and len(set(VOCAB)) == 64

LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-6
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
NUM_STEPS = 3


def hf_config(act, num_labels):
    c = {"architectures": ["BertForSequenceClassification"], "model_type": "bert"}
    c.update(BASE_CONFIG)
    c["hidden_act"] = act
    c["id2label"] = {str(i): "LABEL_%d" % i for i in range(num_labels)}
    c["label2id"] = {"LABEL_%d" % i: i for i in range(num_labels)}
    c["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
    c["torch_dtype"] = "float32"
    c["use_cache"] = True
    return dict(sorted(c.items()))


# ----------------------------------------------------------------------------- names
def param_names(L, with_head=True):
    """HF names without the "bert." prefix, in core/model/params.c arena order."""
    n = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
         "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
         "embeddings.LayerNorm.bias"]
    for l in range(L):
        p = "encoder.layer.%d." % l
        n += [p + s for s in (
            "attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
            "attention.self.query.bias", "attention.self.key.bias", "attention.self.value.bias",
            "attention.output.dense.weight", "attention.output.dense.bias",
            "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
            "intermediate.dense.weight", "intermediate.dense.bias",
            "output.dense.weight", "output.dense.bias",
            "output.LayerNorm.weight", "output.LayerNorm.bias")]
    n += ["pooler.dense.weight", "pooler.dense.bias"]
    if with_head:
        n += ["classifier.weight", "classifier.bias"]
    return n


def param_group(name):
    """-1 embeddings, l for encoder layer l, 'head' for pooler/classifier."""
    if name.startswith("embeddings."):
        return -1
    if name.startswith("encoder.layer."):
        return int(name.split(".")[2])
    return 1 << 30


def is_frozen(name, k):
    """Frozen depth k: the embeddings and encoder layers 0..k-1 are frozen; k = 0 freezes nothing."""
    return k > 0 and param_group(name) < k


def is_decay(name):
    # Hugging Face Trainer: no_decay = ["bias", "LayerNorm.weight"]
    return not (name.endswith("bias") or name.endswith("LayerNorm.weight"))


def hf_name(name):
    return name if name.startswith("classifier.") else "bert." + name


# ----------------------------------------------------------------------------- init
def init_params(cfg, num_labels, seed_encoder=1234, seed_head=None):
    """Seeded random weights with large-ish std so gradients are not tiny.
    The encoder and pooler come from seed_encoder; the classifier from seed_head."""
    C, I, V, P, TV, L = (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"],
                         cfg["max_position_embeddings"], cfg["type_vocab_size"], cfg["num_hidden_layers"])
    g = torch.Generator().manual_seed(seed_encoder)

    def rn(shape, std, mean=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).float()

    shapes = {
        "embeddings.word_embeddings.weight": (V, C), "embeddings.position_embeddings.weight": (P, C),
        "embeddings.token_type_embeddings.weight": (TV, C),
        "embeddings.LayerNorm.weight": (C,), "embeddings.LayerNorm.bias": (C,),
        "pooler.dense.weight": (C, C), "pooler.dense.bias": (C,),
    }
    for l in range(L):
        p = "encoder.layer.%d." % l
        for s in ("query", "key", "value"):
            shapes[p + "attention.self.%s.weight" % s] = (C, C)
            shapes[p + "attention.self.%s.bias" % s] = (C,)
        shapes[p + "attention.output.dense.weight"] = (C, C)
        shapes[p + "attention.output.dense.bias"] = (C,)
        shapes[p + "attention.output.LayerNorm.weight"] = (C,)
        shapes[p + "attention.output.LayerNorm.bias"] = (C,)
        shapes[p + "intermediate.dense.weight"] = (I, C)
        shapes[p + "intermediate.dense.bias"] = (I,)
        shapes[p + "output.dense.weight"] = (C, I)
        shapes[p + "output.dense.bias"] = (C,)
        shapes[p + "output.LayerNorm.weight"] = (C,)
        shapes[p + "output.LayerNorm.bias"] = (C,)
    params = {}
    for name in param_names(L, with_head=False):
        shp = shapes[name]
        if "LayerNorm.weight" in name:
            params[name] = rn(shp, 0.1, 1.0)
        elif name.endswith("bias"):
            params[name] = rn(shp, 0.1)
        elif name.startswith("embeddings."):
            params[name] = rn(shp, 0.5)
        elif "intermediate" in name or "output.dense" in name and "attention" not in name:
            params[name] = rn(shp, 0.25)
        else:
            params[name] = rn(shp, 0.3)
    gh = torch.Generator().manual_seed(seed_head if seed_head is not None else 777 + num_labels)
    params["classifier.weight"] = (torch.randn(num_labels, C, generator=gh, dtype=torch.float64) * 0.4).float()
    params["classifier.bias"] = (torch.randn(num_labels, generator=gh, dtype=torch.float64) * 0.1).float()
    return params


# ----------------------------------------------------------------------------- model
def gelu(x, act):
    if act == "gelu":  # HF ACT2FN["gelu"] = GELUActivation = F.gelu (erf form)
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if act in ("gelu_new", "gelu_pytorch_tanh"):  # NewGELUActivation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    raise ValueError(act)


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def linear(x, w, b):
    return x @ w.t() + b


def bert_forward(p, cfg, input_ids, token_type_ids, attention_mask, act=None):
    """Returns logits [B, NL]. p: dict name -> tensor (no 'bert.' prefix)."""
    act = act or cfg["hidden_act"]
    eps = cfg["layer_norm_eps"]
    C, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    d = C // H
    B, T = input_ids.shape
    dtype = p["embeddings.word_embeddings.weight"].dtype
    pos = torch.arange(T)
    x = (p["embeddings.word_embeddings.weight"][input_ids]
         + p["embeddings.token_type_embeddings.weight"][token_type_ids]
         + p["embeddings.position_embeddings.weight"][pos][None, :, :])
    x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    # HF get_extended_attention_mask: [B,1,1,T], (1 - mask) * finfo(dtype).min
    ext = (1.0 - attention_mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min
    for l in range(L):
        pre = "encoder.layer.%d." % l

        def heads(t):  # [B,T,C] -> [B,H,T,d]
            return t.view(B, T, H, d).permute(0, 2, 1, 3)
        q = heads(linear(x, p[pre + "attention.self.query.weight"], p[pre + "attention.self.query.bias"]))
        k = heads(linear(x, p[pre + "attention.self.key.weight"], p[pre + "attention.self.key.bias"]))
        v = heads(linear(x, p[pre + "attention.self.value.weight"], p[pre + "attention.self.value.bias"]))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d) + ext
        probs = torch.softmax(scores, dim=-1)  # dropout p=0
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        a = linear(ctx, p[pre + "attention.output.dense.weight"], p[pre + "attention.output.dense.bias"])
        x = layer_norm(a + x, p[pre + "attention.output.LayerNorm.weight"],
                       p[pre + "attention.output.LayerNorm.bias"], eps)
        h = gelu(linear(x, p[pre + "intermediate.dense.weight"], p[pre + "intermediate.dense.bias"]), act)
        o = linear(h, p[pre + "output.dense.weight"], p[pre + "output.dense.bias"])
        x = layer_norm(o + x, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(linear(x[:, 0], p["pooler.dense.weight"], p["pooler.dense.bias"]))
    return linear(pooled, p["classifier.weight"], p["classifier.bias"])  # classifier dropout p=0


def bert_loss(logits, targets, num_labels):
    if num_labels == 1:
        return torch.nn.functional.mse_loss(logits.squeeze(-1), targets.to(logits.dtype))  # mean
    return torch.nn.functional.cross_entropy(logits.view(-1, num_labels), targets.long())  # mean


# ----------------------------------------------------------------------------- batch
def make_batch():
    g = torch.Generator().manual_seed(4321)
    B, T = 3, 8

    def words(n):
        return torch.randint(5, 64, (n,), generator=g).tolist()
    CLS, SEP = 2, 3
    rows = [
        # example 0: pair, 8 real tokens: [CLS] a a a [SEP] b b [SEP]
        ([CLS] + words(3) + [SEP] + words(2) + [SEP], [0] * 5 + [1] * 3),
        # example 1: pair, 5 real tokens: [CLS] a [SEP] b [SEP]
        ([CLS] + words(1) + [SEP] + words(1) + [SEP], [0] * 3 + [1] * 2),
        # example 2: single, 3 real tokens: [CLS] a [SEP]
        ([CLS] + words(1) + [SEP], [0] * 3),
    ]
    ids = torch.zeros(B, T, dtype=torch.long)
    tt = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, (r, t) in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        tt[i, :len(t)] = torch.tensor(t)
        mask[i, :len(r)] = 1
    return ids, tt, mask


# ----------------------------------------------------------------------------- training
def run_case(params0, cfg, num_labels, k, ids, tt, mask, targets, dtype=torch.float32, act=None):
    """Forward/backward at the initial point, then NUM_STEPS AdamW steps on the same batch."""
    L = cfg["num_hidden_layers"]
    names = param_names(L)
    p = {n: params0[n].detach().clone().to(dtype) for n in names}
    trainable = [n for n in names if not is_frozen(n, k)]
    for n in names:
        p[n].requires_grad_(n in trainable)
    decay = [p[n] for n in trainable if is_decay(n)]
    no_decay = [p[n] for n in trainable if not is_decay(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY,
                            amsgrad=False, foreach=False, maximize=False)
    out = {}
    losses, norms = [], []
    for step in range(NUM_STEPS):
        opt.zero_grad(set_to_none=True)
        logits = bert_forward(p, cfg, ids, tt, mask, act)
        loss = bert_loss(logits, targets, num_labels)
        loss.backward()
        for n in names:
            if n not in trainable:
                assert p[n].grad is None, n
        if step == 0:
            out["logits"] = logits.detach().clone()
            out["loss"] = loss.detach().clone().reshape(1)
            for n in trainable:
                out["grad." + n] = p[n].grad.detach().clone()
        losses.append(loss.detach().clone())
        norm = torch.nn.utils.clip_grad_norm_([p[n] for n in trainable], MAX_GRAD_NORM,
                                              norm_type=2.0, error_if_nonfinite=True)
        norms.append(norm.detach().clone())
        opt.step()
    for n in names:
        out["step3." + n] = p[n].detach().clone()
    out["loss_steps"] = torch.stack(losses)
    out["gradnorm_steps"] = torch.stack(norms)
    return out


def run_case_manual_optimizer(params0, cfg, num_labels, k, ids, tt, mask, targets, act=None):
    """The same 3 steps with clipping and AdamW written out in numpy float32 (the formulas the C
    side implements), torch only for forward/backward. Returns step3 params, losses, norms."""
    L = cfg["num_hidden_layers"]
    names = param_names(L)
    trainable = [n for n in names if not is_frozen(n, k)]
    p = {n: params0[n].detach().numpy().astype(np.float32).copy() for n in names}
    m = {n: np.zeros_like(p[n]) for n in trainable}
    v = {n: np.zeros_like(p[n]) for n in trainable}
    f32 = np.float32
    losses, norms = [], []
    for step in range(1, NUM_STEPS + 1):
        tp = {n: torch.from_numpy(p[n].copy()).requires_grad_(n in trainable) for n in names}
        loss = bert_loss(bert_forward(tp, cfg, ids, tt, mask, act), targets, num_labels)
        loss.backward()
        g = {n: tp[n].grad.numpy().astype(np.float32) for n in trainable}
        # global L2 norm over all trainable grads (accumulated in float64 here)
        total = math.sqrt(sum(float(np.sum(g[n].astype(np.float64) ** 2)) for n in trainable))
        coef = min(1.0, MAX_GRAD_NORM / (total + 1e-6))
        losses.append(loss.item())
        norms.append(total)
        bc1 = 1.0 - BETAS[0] ** step
        bc2 = 1.0 - BETAS[1] ** step
        for n in trainable:
            gn = g[n] * f32(coef)
            wd = WEIGHT_DECAY if is_decay(n) else 0.0
            p[n] = p[n] * f32(1.0 - LR * wd)
            m[n] = m[n] * f32(BETAS[0]) + gn * f32(1.0 - BETAS[0])
            v[n] = v[n] * f32(BETAS[1]) + gn * gn * f32(1.0 - BETAS[1])
            denom = np.sqrt(v[n]) / f32(math.sqrt(bc2)) + f32(EPS)
            p[n] = p[n] - f32(LR / bc1) * (m[n] / denom)
    return p, losses, norms


# ----------------------------------------------------------------------------- safetensors
def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray float32). Written in the given order."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # pad with spaces to 8-byte alignment, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy()
    return out


def t2np(t):
    return t.detach().to(torch.float32).cpu().numpy()


def write_model_dir(d, cfg_json, params, L):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("".join(w + "\n" for w in VOCAB))
    # BertForSequenceClassification.save_pretrained order is by name; any order is valid.
    items = sorted((hf_name(n), t2np(params[n])) for n in param_names(L))
    write_safetensors(os.path.join(d, "model.safetensors"), items, {"format": "pt"})


# ----------------------------------------------------------------------------- checks
def check_gradcheck(params0, cfg, num_labels, ids, tt, mask, targets, act, fast=False):
    """torch.autograd.gradcheck in float64 w.r.t. a subset of tensors of every kind. The word
    embeddings enter as the rows the batch uses (ids repeat, so the scatter-add is covered)."""
    L = cfg["num_hidden_layers"]
    names = param_names(L)
    base = {n: params0[n].detach().double() for n in names}
    subset = ["embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
              "embeddings.LayerNorm.weight",
              "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.bias",
              "encoder.layer.1.attention.self.value.bias", "encoder.layer.1.attention.output.LayerNorm.bias",
              "encoder.layer.1.intermediate.dense.bias", "encoder.layer.2.output.dense.weight",
              "encoder.layer.2.output.LayerNorm.weight", "pooler.dense.bias",
              "classifier.weight", "classifier.bias"]
    rows = torch.unique(ids[mask.bool()])
    wte = "embeddings.word_embeddings.weight"
    inputs = (base[wte][rows].clone().requires_grad_(True),) + tuple(
        base[n].clone().requires_grad_(True) for n in subset)

    def f(w, *xs):
        q = dict(base)
        q.update(dict(zip(subset, xs)))
        q[wte] = base[wte].index_put((rows,), w)
        return bert_loss(bert_forward(q, cfg, ids, tt, mask, act), targets, num_labels)
    ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=fast)
    assert ok
    return sum(int(x.numel()) for x in inputs)


def is_key_bias(name):
    return name.endswith("attention.self.key.bias")


def compare_f32_f64(r32, r64, p0):
    """Per kind (logits, loss, grad, step3, delta = step3 - initial, ...):
    tensor_rel = max over tensors of max|x32 - x64| / max|x64|;
    elem_rel = max over elements of |x32 - x64| / max(|x64|, 1e-2 * max|x64 of that tensor|).
    Key biases are reported apart: their gradient is zero in exact arithmetic (softmax is invariant
    to a per-query constant), so in float32 it is pure rounding noise."""
    stats, keyb = {}, {"grad_abs_max_f32": 0.0, "grad_abs_max_f64": 0.0, "step3_absdiff_max": 0.0}
    for key in r32:
        kind, _, name = key.partition(".")
        a, b = r32[key].double(), r64[key]
        if is_key_bias(name):
            if kind == "grad":
                keyb["grad_abs_max_f32"] = max(keyb["grad_abs_max_f32"], a.abs().max().item())
                keyb["grad_abs_max_f64"] = max(keyb["grad_abs_max_f64"], b.abs().max().item())
            else:
                keyb["step3_absdiff_max"] = max(keyb["step3_absdiff_max"], (a - b).abs().max().item())
            continue
        pairs = [(kind, a, b)]
        if kind == "step3" and not torch.equal(r32[key], p0[name]):
            pairs.append(("delta", a - p0[name].double(), b - p0[name].double()))
        for kd, x, y in pairs:
            d = (x - y).abs()
            scale = y.abs().max().item()
            tr = d.max().item() / scale
            er = (d / y.abs().clamp_min(1e-2 * scale)).max().item()
            s = stats.setdefault(kd, [0.0, 0.0])
            stats[kd] = [max(s[0], tr), max(s[1], er)]
    out = {k: {"tensor_rel": "%.1e" % v[0], "elem_rel": "%.1e" % v[1]} for k, v in sorted(stats.items())}
    out["key_bias"] = {k: "%.1e" % v for k, v in keyb.items()}
    return out


# ----------------------------------------------------------------------------- main
CASES = [
    # name, model folder, hidden_act, num_labels, frozen depth k, targets
    ("cls_k0", "cls", "gelu", 3, 0, [2.0, 0.0, 1.0]),
    ("cls_k2", "cls", "gelu", 3, 2, [2.0, 0.0, 1.0]),
    ("reg_k0", "reg", "gelu", 1, 0, [0.75, -1.25, 2.5]),
    ("cls_gelu_new_k0", "cls_gelu_new", "gelu_new", 3, 0, [2.0, 0.0, 1.0]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join("tests", "fixtures", "bert_tiny"))
    ap.add_argument("--skip-checks", action="store_true")
    args = ap.parse_args()
    cfg = dict(BASE_CONFIG)
    L = cfg["num_hidden_layers"]
    ids, tt, mask = make_batch()
    os.makedirs(args.out, exist_ok=True)

    heads = {1: init_params(cfg, 1), 3: init_params(cfg, 3)}
    # The encoder and pooler are the same in every folder; only the classifier differs.
    for n in param_names(L, with_head=False):
        assert torch.equal(heads[1][n], heads[3][n])
    write_model_dir(os.path.join(args.out, "cls"), hf_config("gelu", 3), heads[3], L)
    write_model_dir(os.path.join(args.out, "reg"), hf_config("gelu", 1), heads[1], L)
    # gelu_new variant: same weights as cls/ (model.safetensors is not duplicated, to keep the fixtures small).
    os.makedirs(os.path.join(args.out, "cls_gelu_new"), exist_ok=True)
    with open(os.path.join(args.out, "cls_gelu_new", "config.json"), "w") as f:
        json.dump(hf_config("gelu_new", 3), f, indent=2)
        f.write("\n")

    # Reload the written checkpoints so the fixtures are computed from exactly what the C side reads.
    def load_dir(folder):
        st = read_safetensors(os.path.join(args.out, folder, "model.safetensors"))
        return {n: torch.from_numpy(st[hf_name(n)]) for n in param_names(L)}
    loaded = {"cls": load_dir("cls"), "reg": load_dir("reg")}
    loaded["cls_gelu_new"] = loaded["cls"]
    for nl, folder in ((3, "cls"), (1, "reg")):
        for n in param_names(L):
            assert torch.equal(loaded[folder][n], heads[nl][n]), n

    summary, first_grads = [], {}
    for name, folder, act, nl, k, tgt in CASES:
        p0 = loaded[folder]
        targets = torch.tensor(tgt, dtype=torch.float32)
        r32 = run_case(p0, cfg, nl, k, ids, tt, mask, targets, torch.float32, act)
        trainable = [n for n in param_names(L) if not is_frozen(n, k)]
        frozen = [n for n in param_names(L) if is_frozen(n, k)]
        assert len(frozen) == (0 if k == 0 else 5 + 16 * k), (name, len(frozen))
        # Frozen parameters must be bit-identical after the steps; trainable ones must have moved.
        for n in frozen:
            assert torch.equal(r32["step3." + n], p0[n]), n
        for n in trainable:
            assert not torch.equal(r32["step3." + n], p0[n]), n
        # Freezing does not change the gradients of the trainable tensors at the initial point.
        if name == "cls_k2":
            for n in trainable:
                assert torch.equal(r32["grad." + n], first_grads["cls_k0"]["grad." + n]), n
        first_grads[name] = r32
        tensors = [("input_ids", ids.float()), ("token_type_ids", tt.float()),
                   ("attention_mask", mask.float()), ("targets", targets),
                   ("logits", r32["logits"]), ("loss", r32["loss"]),
                   ("loss_steps", r32["loss_steps"]), ("gradnorm_steps", r32["gradnorm_steps"]),
                   ("frozen_depth", torch.tensor([float(k)])), ("num_labels", torch.tensor([float(nl)]))]
        full = act == "gelu"
        # The gelu_new case keeps only the 1-D tensors' grads and step3 values (every one of them
        # depends on the whole backward chain through GELU'), to keep the fixtures small.
        keep = [n for n in param_names(L) if full or p0[n].dim() == 1]
        tensors += [("grad." + n, r32["grad." + n]) for n in keep if n in trainable]
        tensors += [("step3." + n, r32["step3." + n]) for n in keep]
        meta = {"case": name, "model_dir": folder, "hidden_act": act, "num_labels": nl, "frozen_depth": k,
                "loss": "cross_entropy_mean" if nl > 1 else "mse_mean", "optimizer": "torch.optim.AdamW",
                "lr": LR, "betas": "0.9,0.999", "eps": EPS, "weight_decay": WEIGHT_DECAY,
                "max_grad_norm": MAX_GRAD_NORM, "steps": NUM_STEPS, "torch": torch.__version__}
        path = os.path.join(args.out, "expected_%s.safetensors" % name)
        write_safetensors(path, [(n, t2np(t)) for n, t in tensors], meta)

        line = {"case": name, "loss": r32["loss"].item(),
                "loss_steps": [round(x, 6) for x in r32["loss_steps"].tolist()],
                "gradnorm_steps": [round(x, 6) for x in r32["gradnorm_steps"].tolist()]}
        if not args.skip_checks:
            pm, lm, nm = run_case_manual_optimizer(p0, cfg, nl, k, ids, tt, mask, targets, act)
            line["manual_adamw_vs_torch"] = {
                "step3_tensor_rel": "%.1e" % max(
                    np.abs(pm[n] - t2np(r32["step3." + n])).max() / np.abs(t2np(r32["step3." + n])).max()
                    for n in param_names(L) if not is_key_bias(n)),
                "step3_key_bias_absdiff": "%.1e" % max(
                    np.abs(pm[n] - t2np(r32["step3." + n])).max() for n in param_names(L) if is_key_bias(n)),
                "gradnorm_rel": "%.1e" % max(abs(a - b) / b for a, b in zip(nm, r32["gradnorm_steps"].tolist())),
                "loss_rel": "%.1e" % max(abs(a - b) / b for a, b in zip(lm, r32["loss_steps"].tolist()))}
            for n in param_names(L):  # frozen: bit-identical; trainable: same update formula
                if is_frozen(n, k):
                    assert np.array_equal(pm[n], t2np(p0[n])), n
            r64 = run_case(p0, cfg, nl, k, ids, tt, mask, targets, torch.float64, act)
            line["f32_vs_f64"] = compare_f32_f64(r32, r64, p0)
        summary.append(line)

    if not args.skip_checks:
        tgt3 = torch.tensor([2.0, 0.0, 1.0])
        tgt1 = torch.tensor([0.75, -1.25, 2.5])
        n = check_gradcheck(loaded["cls"], cfg, 3, ids, tt, mask, tgt3, "gelu")
        check_gradcheck(loaded["reg"], cfg, 1, ids, tt, mask, tgt1, "gelu", fast=True)
        check_gradcheck(loaded["cls"], cfg, 3, ids, tt, mask, tgt3, "gelu_new", fast=True)
        print("gradcheck (float64) passed on %d elements: cls/gelu (full Jacobian), "
              "reg/gelu and cls/gelu_new (fast_mode)" % n)
        # Padding is inert: changing padded ids / type ids does not change the logits.
        ids2, tt2 = ids.clone(), tt.clone()
        ids2[mask == 0] = 17
        tt2[mask == 0] = 1
        a = bert_forward(loaded["cls"], cfg, ids, tt, mask)
        b = bert_forward(loaded["cls"], cfg, ids2, tt2, mask)
        assert torch.equal(a, b), (a - b).abs().max()
        # Row-wise: each example alone (unpadded) gives the same logits as in the padded batch.
        for i in range(ids.shape[0]):
            n_i = int(mask[i].sum())
            s = bert_forward({kk: v.double() for kk, v in loaded["cls"].items()}, cfg,
                             ids[i:i + 1, :n_i], tt[i:i + 1, :n_i], mask[i:i + 1, :n_i])
            full = bert_forward({kk: v.double() for kk, v in loaded["cls"].items()}, cfg, ids, tt, mask)
            assert (s[0] - full[i]).abs().max().item() < 1e-12
        print("padding checks passed")
    for line in summary:
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
