#!/usr/bin/python3
"""Times one BERT-classifier training step (forward + backward + AdamW) in PyTorch with the
same shapes as `autofreeze bench step`, for the ratio that benchmark prints.

Needs Debian's python3-torch, i.e. the system interpreter /usr/bin/python3 (not a pyenv
python3 that may come first on PATH). The model mirrors Hugging Face's BertForSequence-
Classification (separate Q/K/V linears, post-LayerNorm, erf GELU, tanh pooler), with
dropout 0.1 as in training. Prints one line: tokens_per_s=<float>.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, C, NH, I, p):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.o, self.ln1 = nn.Linear(C, C), nn.LayerNorm(C, eps=1e-12)
        self.fi, self.fo, self.ln2 = nn.Linear(C, I), nn.Linear(I, C), nn.LayerNorm(C, eps=1e-12)
        self.NH, self.p = NH, p

    def forward(self, x, amask):
        B, T, C = x.shape
        HS = C // self.NH
        sh = lambda t: t.view(B, T, self.NH, HS).transpose(1, 2)
        q, k, v = sh(self.q(x)), sh(self.k(x)), sh(self.v(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(HS) + amask
        a = F.dropout(s.softmax(-1), self.p, self.training)
        ctx = (a @ v).transpose(1, 2).reshape(B, T, C)
        h = self.ln1(x + F.dropout(self.o(ctx), self.p, self.training))
        return self.ln2(h + F.dropout(self.fo(F.gelu(self.fi(h))), self.p, self.training))


class Bert(nn.Module):
    def __init__(self, L, C, NH, I, V, P=512, NL=2, p=0.1):
        super().__init__()
        self.wte, self.wpe, self.wtt = nn.Embedding(V, C), nn.Embedding(P, C), nn.Embedding(2, C)
        self.ln = nn.LayerNorm(C, eps=1e-12)
        self.layers = nn.ModuleList(Layer(C, NH, I, p) for _ in range(L))
        self.pool, self.cls, self.p = nn.Linear(C, C), nn.Linear(C, NL), p

    def forward(self, ids, tt, mask):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T)) + self.wtt(tt)
        x = F.dropout(self.ln(x), self.p, self.training)
        amask = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in self.layers:
            x = layer(x, amask)
        pooled = torch.tanh(self.pool(x[:, 0]))
        return self.cls(F.dropout(pooled, self.p, self.training))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("layers", 6), ("hidden", 384), ("heads", 12), ("inter", 1536), ("vocab", 30522),
                          ("batch", 32), ("seq", 128), ("steps", 5), ("warmup", 2), ("threads", 2)]:
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Bert(a.layers, a.hidden, a.heads, a.inter, a.vocab).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, eps=1e-6, weight_decay=0.01)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    tt = torch.zeros_like(ids)
    mask = torch.ones(a.batch, a.seq)
    y = torch.randint(0, 2, (a.batch,))
    times = []
    for it in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(ids, tt, mask), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median step {statistics.median(times)*1e3:.1f} ms")
    print(f"tokens_per_s={a.batch * a.seq / statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
