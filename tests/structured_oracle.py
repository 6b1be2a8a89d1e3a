"""structured_oracle.py - Python references for method structured's data-driven parts.

taylor_py (TextPruner's first-order Taylor importance) and rescale_py (Kwon et
al. 2022's layer-wise mask tuning), written from their definitions on
clients/python/prunerd_model.py's modules with PyTorch's autograd and
torch.linalg; test_structured.py holds prunerd to them.  rescale_py builds
each least-squares system's matrix explicitly (one column per kept head or
neuron: its share of the layer's output over every token and hidden unit),
where prunerd forms the normal equations directly.
"""
import torch, torch.nn.functional as F


def _embed(model, ids):
    emb, L = model.body().embeddings, ids.shape[1]
    x = emb.word_embeddings(ids) + emb.position_embeddings.weight[:L] + emb.token_type_embeddings.weight[0]
    return emb.LayerNorm(x)


def _amask(mask, dtype):
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _ctx(ly, x, am, hmask=None):
    B, L, _ = x.shape
    att = ly.attention
    def split(lin):
        return lin(x).view(B, L, ly.heads, ly.head_size).transpose(1, 2)
    c = F.scaled_dot_product_attention(split(att.self.query), split(att.self.key), split(att.self.value), attn_mask=am)
    c = c.transpose(1, 2)  # B, L, heads, hs
    if hmask is not None:
        c = c * hmask.view(1, 1, -1, 1)
    return c


def _layer(ly, x, am, hmask=None, nmask=None):
    B, L, _ = x.shape
    att = ly.attention
    c = _ctx(ly, x, am, hmask).reshape(B, L, -1)
    a = att.output.LayerNorm(att.output.dense(c) + x)
    h = ly.act(ly.intermediate.dense(a))
    if nmask is not None:
        h = h * nmask
    return ly.output.LayerNorm(ly.output.dense(h) + a)


@torch.no_grad()
def rescale_py(model, ids, mask, batch, keep_h, keep_n):
    """Kwon et al.'s mask tuning: per layer, in float64 least squares over the attended tokens of
    the calibration rows, the kept heads' factors (with an intercept, then dropped) that bring
    the pruned layer's attention output plus its own input closest to the dense layer's, then
    the kept neurons' factors likewise for the FFN output (the last layer: first tokens only);
    layer 0's heads keep 1; a layer with no finite solution or a factor beyond 10 in size ends
    it.  keep_h / keep_n: per layer, bool tensors.  Returns the per-layer factors (0 where
    removed) and the layers done."""
    layers = list(model.body().encoder.layer)
    hm = [k.float() for k in keep_h]
    nm = [k.float() for k in keep_n]
    batches = [(ids[s:s + batch], mask[s:s + batch]) for s in range(0, ids.shape[0], batch)]
    Xt = [_embed(model, i) for i, _ in batches]
    Xs = [x.clone() for x in Xt]
    done = 0
    for li, ly in enumerate(layers):
        att = ly.attention
        kh = keep_h[li].nonzero().flatten()
        kn = keep_n[li].nonzero().flatten()
        if li != 0 and len(kh):
            k = len(kh)
            ATA = torch.zeros(k + 1, k + 1, dtype=torch.float64)
            ATB = torch.zeros(k + 1, dtype=torch.float64)
            Wo = att.output.dense.weight.view(-1, ly.heads, ly.head_size)
            for (i, m), xt, xs in zip(batches, Xt, Xs):
                am = _amask(m, xt.dtype)
                B_, L, H = xt.shape
                teacher = att.output.dense(_ctx(ly, xt, am).reshape(B_, L, -1)) + xt
                cs = _ctx(ly, xs, am, hm[li])
                sel = m.bool()
                Bv = (teacher - att.output.dense.bias - xs)[sel].double()  # T, H
                c = cs[sel][:, kh]  # T, k, hs
                cols = [(c[:, j] @ Wo[:, kh[j]].t()).double().flatten() for j in range(k)]
                A = torch.stack(cols + [torch.ones_like(cols[0])], 1)
                ATA += A.t() @ A
                ATB += A.t() @ Bv.flatten()
            x = torch.linalg.lstsq(ATA, ATB.unsqueeze(1)).solution.squeeze(1)[:-1]
            if not torch.isfinite(x).all() or x.abs().max() > 10:
                break
            hm[li][kh] *= x.float()
        if len(kn):
            k = len(kn)
            ATA = torch.zeros(k, k, dtype=torch.float64)
            ATB = torch.zeros(k, dtype=torch.float64)
            Wk = ly.output.dense.weight[:, kn].double()  # H, k
            last = li == len(layers) - 1
            for (i, m), xt, xs in zip(batches, Xt, Xs):
                am = _amask(m, xt.dtype)
                B_, L, H = xt.shape
                at_ = att.output.LayerNorm(att.output.dense(_ctx(ly, xt, am).reshape(B_, L, -1)) + xt)
                teacher = ly.output.dense(ly.act(ly.intermediate.dense(at_))) + at_
                as_ = att.output.LayerNorm(att.output.dense(_ctx(ly, xs, am, hm[li]).reshape(B_, L, -1)) + xs)
                act = ly.act(ly.intermediate.dense(as_))
                if last:
                    sel = torch.zeros_like(m, dtype=torch.bool)
                    sel[:, 0] = True
                else:
                    sel = m.bool()
                Bv = (teacher - ly.output.dense.bias - as_)[sel].double()
                Hs = act[sel][:, kn].double()  # T, k
                # column n of A: neuron n's share of the output, Hs[:, n] (outer) Wk[:, n]
                A = (Hs[:, None, :] * Wk[None, :, :]).reshape(-1, k)
                ATA += A.t() @ A
                ATB += A.t() @ Bv.flatten()
            x = torch.linalg.lstsq(ATA, ATB.unsqueeze(1)).solution.squeeze(1)
            if not torch.isfinite(x).all() or x.abs().max() > 10:
                break
            nm[li][kn] *= x.float()
        done = li + 1
        for b, ((i, m), xt, xs) in enumerate(zip(batches, Xt, Xs)):
            am = _amask(m, xt.dtype)
            Xt[b] = _layer(ly, xt, am)
            Xs[b] = _layer(ly, xs, am, hm[li], nm[li])
    return hm, nm, done


def taylor_py(model, ids, mask, labels, batch):
    """First-order Taylor importance (TextPruner): the gradient of the mean cross-entropy, summed
    over batches, times the weight, summed over a head's Q, K, V rows and attention.output.dense
    columns (a neuron's intermediate.dense row and output.dense column), in absolute value."""
    layers = model.body().encoder.layer
    ws = []
    for p in model.parameters():
        p.requires_grad_(False)
    for ly in layers:
        for lin in (ly.attention.self.query, ly.attention.self.key, ly.attention.self.value,
                    ly.attention.output.dense, ly.intermediate.dense, ly.output.dense):
            lin.weight.requires_grad_(True)
            lin.weight.grad = None
            ws.append(lin.weight)
    for s in range(0, ids.shape[0], batch):
        logits = model(ids[s:s + batch], mask[s:s + batch])
        lb = labels[s:s + batch] if labels is not None else logits.detach().argmax(1)
        torch.nn.functional.cross_entropy(logits, lb).backward()
    heads, neurons = [], []
    with torch.no_grad():
        for i, ly in enumerate(layers):
            gw = [w.grad * w for w in ws[6 * i:6 * i + 6]]
            h = sum(t.view(ly.heads, ly.head_size, -1).sum((1, 2)) for t in gw[:3])
            h = h + gw[3].view(-1, ly.heads, ly.head_size).sum((0, 2))
            heads.append(h.abs())
            neurons.append((gw[4].sum(1) + gw[5].sum(0)).abs())
    for w in ws:
        w.requires_grad_(False)
        w.grad = None
    return torch.cat(heads), torch.cat(neurons)
