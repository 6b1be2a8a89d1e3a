/* train.cpp - fine-tuning a native BERT: AdamW with held zeros, distillation, checkpoints */

/*
 * DESIGN
 *
 * A trainer works on the model's own tensors: its parameters are leaves
 * (detach().requires_grad_()) that share their storage with m->ents, bound
 * into a net of their own (bert_bind on a scratch model), so pruning,
 * evaluation and saving between steps see every update and never see a
 * tensor that requires grad.
 *
 * A step is PyTorch's, op for op, so that the Python oracle
 * (tests/test_recover.py) agrees to float rounding: zero_grad(set_to_none),
 * the forward with dropout, cross-entropy (mean), backward; the gradients
 * of held tensors multiplied by their masks; clip_grad_norm_ (the 2-norm of
 * the per-tensor norms, scaled by min(1, max / (norm + 1e-6))); then
 * torch.optim.AdamW's single-tensor update (torch/optim/adam.py): decay
 * param *= 1 - lr * wd, exp_avg.lerp_(g, 1 - b1), exp_avg_sq = b2 *
 * exp_avg_sq + (1 - b2) g^2, denom = sqrt(exp_avg_sq) / sqrt(1 - b2^t) +
 * eps, param -= lr / (1 - b1^t) * exp_avg / denom, with the scalars in
 * double as Python computes them.  Biases and LayerNorm parameters get no
 * decay (Hugging Face Trainer's groups).  After the update held entries are
 * set to zero again, so they are exactly 0 whatever the optimizer did.
 *
 * Distillation: the teacher (a clone of the model as loaded, whose tensors
 * need no grad) runs without dropout through the same plain ops as the
 * student, and the loss is (1 - alpha) CE + alpha T^2
 * KL(softmax(teacher / T) || softmax(student / T)), batch mean, as
 * F.kl_div(log_softmax(s / T), log_softmax(t / T), "batchmean",
 * log_target=True).
 *
 * A checkpoint is one safetensors file (model/safetensors.h): each
 * parameter, its two moments and the masks of held tensors, with the step
 * count and the caller's metadata in __metadata__.
 */

#include <math.h>

#include <torch/csrc/autograd/autograd.h>

#include "torch_internal.hpp"
extern "C" {
#include "safetensors.h"
}

using namespace ts;

struct ts_trainer {
    struct ts_model *m = nullptr;       /* not owned */
    struct ts_model *teacher = nullptr; /* not owned; may be NULL */
    ts_model leaves;                    /* the parameters as leaves, bound into leaves.net */
    std::vector<size_t> idx;            /* ents of m the leaves are */
    std::vector<at::Tensor> exp_avg, exp_avg_sq;
    std::vector<at::Tensor> hold; /* bool, true where held at zero; undefined: not held */
    std::vector<char> decay;      /* 1: weight decay applies */
    struct ts_train_opts o;
    int64_t step = 0;
    bert_dropout drop{0, 0, 0};
};

namespace
{

bool no_decay(const std::string &name)
{
    auto ends = [&](const char *s) {
        size_t n = strlen(s);
        return name.size() >= n && !name.compare(name.size() - n, n, s);
    };
    return ends(".bias") || name.find("LayerNorm.") != std::string::npos;
}

int not_native(char *err, size_t errlen)
{
    return err_set(err, errlen, ERR_UNSUPPORTED,
                   "training needs a model read from its weights; this one is TorchScript");
}

/* What st_write asks for: one tensor's bytes, on the CPU and contiguous. */
struct st_list {
    std::vector<at::Tensor> t;
    at::Tensor hold;
};

int st_list_bytes(void *ud, size_t i, const void **data, size_t *nbytes, char *err, size_t errlen)
{
    st_list *l = (st_list *)ud;
    return ts_catch(err, errlen, ERR_TORCH, "checkpoint", [&]() -> int {
        l->hold = l->t[i].detach().to(at::kCPU).contiguous();
        *data = l->hold.numel() ? l->hold.data_ptr() : nullptr;
        *nbytes = (size_t)l->hold.numel() * l->hold.element_size();
        return 0;
    });
}

} /* namespace */

extern "C" {

int ts_model_clone(const struct ts_model *m, struct ts_model **out, char *err, size_t errlen)
{
    *out = nullptr;
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    struct ts_model *c = nullptr;
    int rc = ts_catch(err, errlen, ERR_TORCH, "copying the model", [&]() -> int {
        at::NoGradGuard no_grad;
        std::unique_ptr<ts_model> mm(new ts_model);
        mm->kind = ts_kind::native;
        mm->dev = m->dev;
        mm->dev_name = m->dev_name;
        for (const ts_entry &e : m->ents)
            mm->ents.push_back(
                ts_entry{e.name, e.t.clone(), e.is_param, 0, at::Tensor(), e.file_dtype});
        mm->sd_order = m->sd_order;
        int brc = bert_bind(mm.get(), bert_config_of(*m->net), err, errlen);
        if (brc) return brc;
        c = mm.release();
        return 0;
    });
    if (rc) {
        delete c;
        return rc;
    }
    *out = c;
    return 0;
}

int ts_trainer_open(struct ts_model *m, struct ts_model *teacher, const struct ts_train_opts *o,
                    struct ts_trainer **out, char *err, size_t errlen)
{
    *out = nullptr;
    if (!ts_model_is_native(m) || (teacher && !ts_model_is_native(teacher)))
        return not_native(err, errlen);
    struct ts_trainer *t = nullptr;
    int rc = ts_catch(err, errlen, ERR_TORCH, "training", [&]() -> int {
        std::unique_ptr<ts_trainer> tt(new ts_trainer);
        tt->m = m;
        tt->teacher = teacher;
        tt->o = *o;
        tt->leaves.kind = ts_kind::native;
        tt->leaves.dev = m->dev;
        tt->leaves.dev_name = m->dev_name;
        for (size_t i = 0; i < m->ents.size(); i++) {
            const ts_entry &e = m->ents[i];
            if (e.mapped)
                return err_set(err, errlen, ERR_INTERNAL, "tensor '%s' is mapped", e.name.c_str());
            at::Tensor leaf = e.t.detach();
            if (e.is_param) {
                leaf.requires_grad_(true);
                tt->idx.push_back(i);
                tt->exp_avg.push_back(at::zeros_like(leaf, at::MemoryFormat::Contiguous));
                tt->exp_avg_sq.push_back(at::zeros_like(leaf, at::MemoryFormat::Contiguous));
                tt->hold.push_back(at::Tensor());
                tt->decay.push_back(!no_decay(e.name));
            }
            tt->leaves.ents.push_back(
                ts_entry{e.name, leaf, e.is_param, 0, at::Tensor(), e.file_dtype});
        }
        const struct bert_config *c = bert_config_of(*m->net);
        int brc = bert_bind(&tt->leaves, c, err, errlen);
        if (brc) return brc;
        if (o->dropout)
            tt->drop = bert_dropout{c->hidden_dropout_prob, c->attention_probs_dropout_prob,
                                    c->classifier_dropout >= 0 ? c->classifier_dropout
                                                               : c->hidden_dropout_prob};
        at::manual_seed(o->seed);
        t = tt.release();
        return 0;
    });
    if (rc) {
        delete t;
        return rc;
    }
    *out = t;
    return 0;
}

void ts_trainer_destroy(struct ts_trainer *t)
{
    try {
        delete t;
    } catch (...) {
    }
}

int64_t ts_trainer_steps(const struct ts_trainer *t)
{
    return t ? t->step : 0;
}

/* The leaf of m's tensor i, or -1. */
static long leaf_of(const struct ts_trainer *t, size_t i)
{
    for (size_t k = 0; k < t->idx.size(); k++)
        if (t->idx[k] == i) return (long)k;
    return -1;
}

int ts_trainer_hold(struct ts_trainer *t, const size_t *idx, size_t n, char *err, size_t errlen)
{
    return ts_catch(err, errlen, ERR_TORCH, "holding zeros", [&]() -> int {
        at::NoGradGuard no_grad;
        for (size_t j = 0; j < n; j++) {
            long k = leaf_of(t, idx[j]);
            if (k < 0)
                return err_set(err, errlen, ERR_INVALID, "tensor %zu is not a parameter", idx[j]);
            at::Tensor p = t->leaves.ents[idx[j]].t;
            t->hold[(size_t)k] = p.eq(0);
        }
        return 0;
    });
}

int ts_trainer_step(struct ts_trainer *t, const int64_t *ids, const int64_t *mask,
                    const int64_t *labels, int64_t batch, int64_t len, double lr, double *loss,
                    char *err, size_t errlen)
{
    return ts_catch(err, errlen, ERR_TORCH, "training step", [&]() -> int {
        const at::Device dev = t->m->dev;
        auto i64 = at::TensorOptions().dtype(at::kLong);
        at::Tensor ti = at::from_blob(const_cast<int64_t *>(ids), {batch, len}, i64).to(dev);
        at::Tensor tm = at::from_blob(const_cast<int64_t *>(mask), {batch, len}, i64).to(dev);
        at::Tensor tl = at::from_blob(const_cast<int64_t *>(labels), {batch}, i64).to(dev);
        std::vector<at::Tensor> params;
        for (size_t i : t->idx) {
            at::Tensor &p = t->leaves.ents[i].t;
            p.mutable_grad() = at::Tensor(); /* zero_grad(set_to_none=True) */
            params.push_back(p);
        }
        at::Tensor l;
        {
            at::AutoGradMode grad(true);
            at::Tensor logits = bert_forward_train(*t->leaves.net, ti, tm, t->drop);
            l = at::cross_entropy_loss(logits, tl);
            const double a = t->o.distill_alpha, T = t->o.distill_temperature;
            if (t->teacher && a > 0) {
                /* the teacher's tensors need no grad, so no graph is kept; grad
                 * mode picks the plain ops (HF's, not the fused inference path) */
                at::Tensor teach = bert_forward(*t->teacher->net, ti, tm).detach();
                at::Tensor kl =
                    at::kl_div(at::log_softmax(logits / T, -1), at::log_softmax(teach / T, -1),
                               at::Reduction::Sum, true) /
                    (double)batch;
                l = l * (1 - a) + kl * (a * T * T);
            }
            l.backward();
        }
        at::NoGradGuard no_grad;
        std::vector<at::Tensor> grads;
        for (size_t k = 0; k < params.size(); k++) {
            at::Tensor g = params[k].grad();
            if (!g.defined()) g = params[k].mutable_grad() = at::zeros_like(params[k]);
            if (t->hold[k].defined()) g.masked_fill_(t->hold[k], 0);
            grads.push_back(g);
        }
        if (t->o.max_grad_norm > 0 && !grads.empty()) {
            std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
            at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
            at::Tensor coef = at::clamp((t->o.max_grad_norm / (total + 1e-6)), c10::nullopt, 1.0);
            for (at::Tensor &g : grads)
                g.mul_(coef);
        }
        t->step++;
        const double b1 = t->o.beta1, b2 = t->o.beta2, eps = t->o.eps;
        const double bc1 = 1 - pow(b1, (double)t->step), bc2 = 1 - pow(b2, (double)t->step);
        const double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
        for (size_t k = 0; k < params.size(); k++) {
            at::Tensor p = params[k], &g = grads[k];
            if (t->o.weight_decay != 0 && t->decay[k]) p.mul_(1 - lr * t->o.weight_decay);
            t->exp_avg[k].lerp_(g, 1 - b1);
            t->exp_avg_sq[k].mul_(b2).addcmul_(g, g, 1 - b2);
            at::Tensor denom = (t->exp_avg_sq[k].sqrt() / bc2_sqrt).add_(eps);
            p.addcdiv_(t->exp_avg[k], denom, -step_size);
            if (t->hold[k].defined()) p.masked_fill_(t->hold[k], 0);
            p.mutable_grad() = at::Tensor();
        }
        *loss = l.item<double>();
        if (!std::isfinite(*loss))
            return err_set(err, errlen, ERR_INVALID,
                           "training step %lld: the loss is %g (lower the learning rate)",
                           (long long)t->step, *loss);
        return 0;
    });
}

int ts_trainer_save(struct ts_trainer *t, const char *path, const char *const *meta, char *err,
                    size_t errlen)
{
    st_list src;
    std::vector<std::string> names;
    std::vector<std::vector<int64_t>> shapes;
    std::vector<struct st_entry> entries;
    std::vector<const char *> md;
    std::string step;
    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        for (size_t k = 0; k < t->idx.size(); k++) {
            const ts_entry &e = t->leaves.ents[t->idx[k]];
            const std::pair<const char *, at::Tensor> parts[] = {
                {"param/", e.t}, {"exp_avg/", t->exp_avg[k]}, {"exp_avg_sq/", t->exp_avg_sq[k]}};
            for (const auto &[pre, x] : parts) {
                names.push_back(pre + e.name);
                src.t.push_back(x.to(at::kFloat));
            }
            if (t->hold[k].defined()) {
                names.push_back("hold/" + e.name);
                src.t.push_back(t->hold[k].to(at::kByte));
            }
        }
        for (size_t j = 0; j < src.t.size(); j++)
            shapes.emplace_back(src.t[j].sizes().begin(), src.t[j].sizes().end());
        for (size_t j = 0; j < src.t.size(); j++)
            entries.push_back(st_entry{names[j].c_str(), dtype_of(src.t[j].scalar_type()),
                                       (int)src.t[j].dim(), shapes[j].data()});
        return 0;
    });
    if (rc) return rc;
    step = std::to_string((long long)t->step);
    md.push_back("trainer_step");
    md.push_back(step.c_str());
    for (size_t i = 0; meta && meta[i] && meta[i + 1]; i += 2) {
        md.push_back(meta[i]);
        md.push_back(meta[i + 1]);
    }
    md.push_back(nullptr);
    return st_write(path, entries.data(), entries.size(), md.data(), st_list_bytes, &src, err,
                    errlen);
}

int ts_trainer_load(struct ts_trainer *t, const char *path, char *err, size_t errlen)
{
    struct st_file *f = nullptr;
    int rc = st_open(path, &f, err, errlen);
    if (rc) return rc;
    rc = ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        at::NoGradGuard no_grad;
        const char *step = st_metadata(f, "trainer_step");
        char *end = nullptr;
        long long s = step ? strtoll(step, &end, 10) : -1;
        if (!step || *end || s < 0)
            return err_set(err, errlen, ERR_FORMAT, "%s: no trainer_step", path);
        auto get = [&](const std::string &name, const at::Tensor &like, bool byte) -> at::Tensor {
            long i = st_find(f, name.c_str());
            if (i < 0) return at::Tensor();
            const struct st_tensor *x = st_get(f, (size_t)i);
            if (x->dtype != (byte ? TS_UINT8 : TS_FLOAT32) || x->numel != like.numel())
                throw ts_format_error(name + " has the wrong dtype or size");
            return at::from_blob(x->data, like.sizes(),
                                 at::TensorOptions().dtype(byte ? at::kByte : at::kFloat));
        };
        /* everything is checked before anything is written */
        std::vector<at::Tensor> p, m1, m2, h;
        for (size_t k = 0; k < t->idx.size(); k++) {
            const ts_entry &e = t->leaves.ents[t->idx[k]];
            p.push_back(get("param/" + e.name, e.t, false));
            m1.push_back(get("exp_avg/" + e.name, e.t, false));
            m2.push_back(get("exp_avg_sq/" + e.name, e.t, false));
            h.push_back(get("hold/" + e.name, e.t, true));
            if (!p.back().defined() || !m1.back().defined() || !m2.back().defined())
                return err_set(err, errlen, ERR_FORMAT, "%s: no state for %s", path,
                               e.name.c_str());
        }
        for (size_t k = 0; k < t->idx.size(); k++) {
            at::Tensor &x = t->leaves.ents[t->idx[k]].t;
            x.copy_(p[k]);
            t->exp_avg[k].copy_(m1[k]);
            t->exp_avg_sq[k].copy_(m2[k]);
            t->hold[k] = h[k].defined() ? h[k].to(x.device()).to(at::kBool) : at::Tensor();
        }
        t->step = s;
        at::manual_seed(t->o.seed + (uint64_t)s);
        return 0;
    });
    st_close(f);
    return rc;
}

} /* extern "C" */
