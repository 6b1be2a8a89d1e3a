/* bert.cpp - a native BERT sequence classifier on ATen: embeddings, encoder, pooler, head */

/*
 * DESIGN
 *
 * The forward is Hugging Face's BertForSequenceClassification in inference
 * (dropout off; bert_forward_train has it): word + absolute position + token type 0 embeddings,
 * then LayerNorm; per layer self-attention with HF's additive mask ((1 - mask) * the dtype's lowest
 * value) through scaled_dot_product_attention where libtorch has it (2.0 and later), the output
 * dense + residual + LayerNorm, the FFN (intermediate dense, activation, output dense) + residual +
 * LayerNorm; the pooler (dense + tanh on the first token) and the head on
 * the pooled output.
 *
 * On the CPU in float32 without autograd, the linears go through oneDNN's
 * fused inner product (mkldnn::_linear_pointwise, the op TorchInductor
 * emits; looked up in the dispatcher at run time, so a libtorch without it,
 * like Debian's 1.13, takes at::linear): the bias, the activation and the
 * residual add happen in the product's own pass instead of at::linear's
 * bias copy before it and an elementwise pass after.  Q, K and V are one
 * product on their weights concatenated for that forward (not kept: pruning
 * writes the tensors in place).  Its sums are ordered differently from
 * at::linear's, about 1e-7 relative.
 *
 * The net holds handles to the model's own tensors (struct ts_entry), not
 * copies: pruning writes through ts_model_map_f32 / unmap and the next
 * forward sees it.  Each layer keeps its own head count and FFN width, read
 * off its weights, so a layer with heads or FFN rows removed (or none left)
 * runs as it is.  Nothing here needs TorchScript, and nothing stops autograd
 * (the forward is plain ATen on tensors that may require grad); training
 * (model/train.cpp) runs it with HF's dropout.
 */

#include <algorithm>
#include <map>
#include <set>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include "torch_internal.hpp"

using namespace ts;

namespace
{
struct lin {
    at::Tensor w, b;
};
} /* namespace */

struct bert_layer {
    int heads = 0, ffn = 0;
    lin q, k, v, attn_out, attn_ln, inter, out, out_ln;
};

struct bert_net {
    struct bert_config cfg;
    int head_size = 0;
    std::string prefix, head;
    int labels = 0;
    at::Tensor word, pos, type;
    lin emb_ln, pooler, cls;
    std::vector<bert_layer> layers;
};

namespace
{

std::string shape_str(c10::IntArrayRef s)
{
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++)
        r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

/* The strict check: expected names with shapes, against what the file has. */
struct binder {
    std::map<std::string, at::Tensor> have;
    std::set<std::string> used;
    std::vector<std::string> missing, mismatched;

    const at::Tensor *find(const std::string &name)
    {
        auto it = have.find(name);
        return it == have.end() ? nullptr : &it->second;
    }
    /* The tensor called name with this shape; records what is wrong otherwise. */
    at::Tensor take(const std::string &name, std::vector<int64_t> shape)
    {
        const at::Tensor *t = find(name);
        if (!t) {
            missing.push_back(name);
            return at::Tensor();
        }
        used.insert(name);
        if (t->sizes() != c10::IntArrayRef(shape)) {
            mismatched.push_back(name + " is " + shape_str(t->sizes()) + ", the config says " +
                                 shape_str(shape));
            return at::Tensor();
        }
        return *t;
    }
    lin take_lin(const std::string &n, int64_t out, int64_t in)
    {
        return lin{take(n + ".weight", {out, in}), take(n + ".bias", {out})};
    }
    lin take_ln(const std::string &n, int64_t h)
    {
        return lin{take(n + ".weight", {h}), take(n + ".bias", {h})};
    }
};

std::string join(const std::vector<std::string> &v, size_t max)
{
    std::string r;
    for (size_t i = 0; i < v.size() && i < max; i++)
        r += (i ? ", " : "") + v[i];
    if (v.size() > max) r += ", ... (" + std::to_string(v.size() - max) + " more)";
    return r;
}

/* oneDNN's fused linear, when this libtorch registers it. */
struct fused_linear {
    c10::optional<c10::OperatorHandle> unary, binary;
    fused_linear()
    {
        auto &d = c10::Dispatcher::singleton();
        unary = d.findSchema({"mkldnn::_linear_pointwise", ""});
        binary = d.findSchema({"mkldnn::_linear_pointwise", "binary"});
    }
};

const fused_linear &fused()
{
    static const fused_linear f;
    return f;
}

/* Whether x @ w.T may go through oneDNN: CPU float32 without autograd. */
bool use_fused(const at::Tensor &x, const lin &p)
{
    return fused().unary && fused().binary && !at::GradMode::is_enabled() && x.device().is_cpu() &&
           x.scalar_type() == at::kFloat && p.w.scalar_type() == at::kFloat &&
           p.w.is_contiguous() && p.b.defined();
}

/* The post-op names mkldnn::_linear_pointwise knows (attr, algorithm). */
struct post_op {
    const char *attr, *algorithm;
};

post_op post_of(enum bert_act a)
{
    switch (a) {
    case BERT_ACT_GELU_TANH:
        return {"gelu", "tanh"};
    case BERT_ACT_RELU:
        return {"relu", nullptr};
    case BERT_ACT_SILU:
        return {"swish", nullptr};
    case BERT_ACT_GELU:
        break;
    }
    return {"gelu", "none"};
}

at::Tensor activation(enum bert_act a, const at::Tensor &x)
{
    switch (a) {
    case BERT_ACT_GELU_TANH:
        return at::gelu(x, "tanh");
    case BERT_ACT_RELU:
        return at::relu(x);
    case BERT_ACT_SILU:
        return at::silu(x);
    case BERT_ACT_GELU:
        break;
    }
    return at::gelu(x);
}

/* act(x @ p.w.T + p.b); act is null for none. */
at::Tensor linear_act(const at::Tensor &x, const lin &p, const enum bert_act *act)
{
    if (!use_fused(x, p))
        return act ? activation(*act, at::linear(x, p.w, p.b)) : at::linear(x, p.w, p.b);
    post_op po = act ? post_of(*act) : post_op{"none", nullptr};
    torch::jit::Stack s;
    s.reserve(6);
    s.emplace_back(x);
    s.emplace_back(p.w);
    s.emplace_back(p.b);
    s.emplace_back(std::string(po.attr));
    s.emplace_back(c10::List<c10::optional<at::Scalar>>());
    s.emplace_back(po.algorithm ? c10::IValue(std::string(po.algorithm)) : c10::IValue());
    fused().unary->callBoxed(&s);
    return s[0].toTensor();
}

/* x @ p.w.T + p.b + residual (residual has the output's shape). */
at::Tensor linear_add(const at::Tensor &x, const lin &p, const at::Tensor &residual)
{
    if (!use_fused(x, p) || !residual.is_contiguous()) return at::linear(x, p.w, p.b) + residual;
    torch::jit::Stack s;
    s.reserve(5);
    s.emplace_back(x);
    s.emplace_back(residual);
    s.emplace_back(p.w);
    s.emplace_back(p.b);
    s.emplace_back(std::string("add"));
    fused().binary->callBoxed(&s);
    return s[0].toTensor();
}

at::Tensor layer_norm(const at::Tensor &x, const lin &ln, double eps)
{
    return at::layer_norm(x, {x.size(-1)}, ln.w, ln.b, eps);
}

/* Self-attention of one layer: x [B * L, H] -> [B * L, heads * head_size].
 * Q, K and V come out of one product as [B, L, 3, heads, hs], viewed as
 * three [B, heads, L, hs]. */
at::Tensor attention(const bert_layer &ly, int hs, int64_t B, int64_t L, const at::Tensor &x,
                     const at::Tensor &amask, const at::Tensor *head_mask, double p_drop = 0)
{
    at::Tensor q, k, v;
    if (at::GradMode::is_enabled()) { /* three products, as HF's modules (and their gradients) */
        auto heads = [&](const lin &p) {
            return at::linear(x, p.w, p.b).view({B, L, ly.heads, hs}).transpose(1, 2);
        };
        q = heads(ly.q);
        k = heads(ly.k);
        v = heads(ly.v);
    } else {
        lin qkv{at::cat({ly.q.w, ly.k.w, ly.v.w}), at::cat({ly.q.b, ly.k.b, ly.v.b})};
        at::Tensor t =
            linear_act(x, qkv, nullptr).view({B, L, 3, ly.heads, hs}).permute({2, 0, 3, 1, 4});
        q = t.select(0, 0);
        k = t.select(0, 1);
        v = t.select(0, 2);
    }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    at::Tensor ctx =
        at::scaled_dot_product_attention(q, k, v, amask, p_drop, false, std::pow((double)hs, -0.5));
#elif TORCH_VERSION_MAJOR >= 2
    at::Tensor ctx = at::scaled_dot_product_attention(q, k, v, amask, p_drop);
#else
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt((double)hs) + amask;
    at::Tensor probs = at::softmax(scores, -1);
    if (p_drop > 0) probs = at::dropout(probs, p_drop, true);
    at::Tensor ctx = at::matmul(probs, v);
#endif
    if (head_mask) ctx = ctx * head_mask->view({1, ly.heads, 1, 1});
    return ctx.transpose(1, 2).reshape({B * L, (int64_t)ly.heads * hs});
}

} /* namespace */

namespace ts
{

int bert_bind(struct ts_model *m, const struct bert_config *c, char *err, size_t errlen)
{
    binder b;
    for (const ts_entry &e : m->ents) {
        if (!b.have.emplace(e.name, e.t).second)
            return err_set(err, errlen, ERR_FORMAT, "tensor '%s' appears twice", e.name.c_str());
        if (!e.t.is_floating_point())
            return err_set(err, errlen, ERR_FORMAT, "tensor '%s' is %s, not floating point",
                           e.name.c_str(), ts_dtype_name(dtype_of(e.t.scalar_type())));
    }
    auto net = std::make_shared<bert_net>();
    net->cfg = *c;
    net->head_size = c->hidden_size / c->num_attention_heads;
    if (b.find("bert.embeddings.word_embeddings.weight")) net->prefix = "bert.";
    int has_cls = b.find("classifier.weight") != nullptr, has_fc = b.find("fc.weight") != nullptr;
    if (has_cls && has_fc)
        return err_set(err, errlen, ERR_FORMAT,
                       "two classification heads (classifier.* and fc.*): keep one");
    if (!has_cls && !has_fc)
        return err_set(err, errlen, ERR_FORMAT,
                       "no classification head: expected classifier.weight and classifier.bias "
                       "(BertForSequenceClassification) or fc.weight and fc.bias (a BertModel "
                       "plus nn.Linear fc)");
    net->head = has_cls ? "classifier" : "fc";
    const at::Tensor *hw = b.find(net->head + ".weight");
    if (hw->dim() != 2 || hw->size(1) != c->hidden_size || hw->size(0) < 1)
        return err_set(
            err, errlen, ERR_FORMAT,
            "%s.weight has the wrong shape %s: a head on hidden size %d must be [labels, %d]",
            net->head.c_str(), shape_str(hw->sizes()).c_str(), c->hidden_size, c->hidden_size);
    net->labels = (int)hw->size(0);
    if (has_cls && c->num_labels > 0 && c->num_labels != net->labels)
        return err_set(err, errlen, ERR_FORMAT,
                       "config.json names %d labels (id2label / num_labels) but classifier.weight "
                       "has %d rows",
                       c->num_labels, net->labels);

    const std::string p = net->prefix, e = p + "embeddings.";
    const int64_t H = c->hidden_size, hs = net->head_size;
    net->word = b.take(e + "word_embeddings.weight", {c->vocab_size, H});
    net->pos = b.take(e + "position_embeddings.weight", {c->max_position_embeddings, H});
    net->type = b.take(e + "token_type_embeddings.weight", {c->type_vocab_size, H});
    net->emb_ln = b.take_ln(e + "LayerNorm", H);
    for (int i = 0; i < c->num_hidden_layers; i++) {
        const std::string l = p + "encoder.layer." + std::to_string(i) + ".";
        bert_layer ly;
        /* the layer's own widths, from its weights (the config's when absent) */
        int64_t rows = (int64_t)c->num_attention_heads * hs;
        const at::Tensor *qw = b.find(l + "attention.self.query.weight");
        if (qw && qw->dim() == 2 && qw->size(0) % hs == 0) rows = qw->size(0);
        ly.heads = (int)(rows / hs);
        int64_t ffn = c->intermediate_size;
        const at::Tensor *iw = b.find(l + "intermediate.dense.weight");
        if (iw && iw->dim() == 2) ffn = iw->size(0);
        ly.ffn = (int)ffn;
        ly.q = b.take_lin(l + "attention.self.query", rows, H);
        ly.k = b.take_lin(l + "attention.self.key", rows, H);
        ly.v = b.take_lin(l + "attention.self.value", rows, H);
        ly.attn_out = b.take_lin(l + "attention.output.dense", H, rows);
        ly.attn_ln = b.take_ln(l + "attention.output.LayerNorm", H);
        ly.inter = b.take_lin(l + "intermediate.dense", ffn, H);
        ly.out = b.take_lin(l + "output.dense", H, ffn);
        ly.out_ln = b.take_ln(l + "output.LayerNorm", H);
        net->layers.push_back(ly);
    }
    net->pooler = b.take_lin(p + "pooler.dense", H, H);
    net->cls = b.take_lin(net->head, net->labels, H);

    std::vector<std::string> unexpected;
    for (const ts_entry &x : m->ents)
        if (!b.used.count(x.name)) unexpected.push_back(x.name);
    if (!b.missing.empty() || !unexpected.empty() || !b.mismatched.empty()) {
        std::string msg;
        if (!b.missing.empty())
            msg += std::to_string(b.missing.size()) + " missing: " + join(b.missing, 6);
        if (!unexpected.empty())
            msg += std::string(msg.empty() ? "" : "; ") + std::to_string(unexpected.size()) +
                   " unexpected: " + join(unexpected, 6);
        if (!b.mismatched.empty())
            msg += std::string(msg.empty() ? "" : "; ") + std::to_string(b.mismatched.size()) +
                   " with the wrong shape: " + join(b.mismatched, 4);
        return err_set(err, errlen, ERR_FORMAT,
                       "the weights do not match a %d-layer BERT of hidden size %d "
                       "(as load_state_dict(strict=True)): %s",
                       c->num_hidden_layers, c->hidden_size, msg.c_str());
    }
    m->net = net;
    return 0;
}

} /* namespace ts */

namespace
{

/* x, or x with dropout p in training (d set, p > 0) */
at::Tensor dropped(const at::Tensor &x, const bert_dropout *d, double bert_dropout::*p)
{
    return d && d->*p > 0 ? at::dropout(x, d->*p, true) : x;
}

/* word + position + token type 0 embeddings and their LayerNorm: [B * L, H] */
at::Tensor embed(const bert_net &n, const at::Tensor &ids, const bert_dropout *d = nullptr)
{
    const int64_t B = ids.size(0), L = ids.size(1);
    if (L > n.cfg.max_position_embeddings)
        throw ts_format_error("inputs of " + std::to_string(L) + " tokens are longer than " +
                              std::to_string(n.cfg.max_position_embeddings) +
                              " (max_position_embeddings)");
    /* (word + type) + position, HF's order; under autograd token type 0
     * through an embedding as HF's, so its gradient is summed as HF's is */
    at::Tensor type = at::GradMode::is_enabled() ? at::embedding(n.type, at::zeros_like(ids))
                                                 : n.type.select(0, 0);
    at::Tensor x = at::embedding(n.word, ids).add_(type).add_(n.pos.narrow(0, 0, L).unsqueeze(0));
    x = layer_norm(x, n.emb_ln, n.cfg.layer_norm_eps).view({B * L, (int64_t)n.cfg.hidden_size});
    return dropped(x, d, &bert_dropout::hidden);
}

/* HF's extended mask of mask [B, L]: 0 where attended, the lowest value
 * where padded, [B, 1, 1, L] */
at::Tensor extended_mask(const at::Tensor &mask, at::ScalarType t)
{
    return (1.0 - mask.to(t))
        .mul(std::numeric_limits<float>::lowest())
        .view({mask.size(0), 1, 1, mask.size(1)});
}

/* A layer's attention half before its LayerNorm: x + the attention output
 * (the bias alone when every head is gone). */
at::Tensor attn_half(const bert_net &n, const bert_layer &ly, int64_t B, int64_t L,
                     const at::Tensor &x, const at::Tensor &amask, const at::Tensor *head_mask,
                     const bert_dropout *d = nullptr)
{
    const bool drop = d && d->hidden > 0;
    if (ly.heads == 0)
        return (drop ? dropped(ly.attn_out.b.expand_as(x), d, &bert_dropout::hidden)
                     : ly.attn_out.b) +
               x;
    at::Tensor ctx = attention(ly, n.head_size, B, L, x, amask, head_mask, d ? d->attention : 0);
    if (drop)
        return dropped(at::linear(ctx, ly.attn_out.w, ly.attn_out.b), d, &bert_dropout::hidden) + x;
    return linear_add(ctx, ly.attn_out, x);
}

/* A layer's FFN half before its LayerNorm: x + the FFN output. */
at::Tensor ffn_half(const bert_net &n, const bert_layer &ly, const at::Tensor &x,
                    const at::Tensor *neuron_mask, const bert_dropout *d = nullptr)
{
    const bool drop = d && d->hidden > 0;
    if (ly.ffn == 0)
        return (drop ? dropped(ly.out.b.expand_as(x), d, &bert_dropout::hidden) : ly.out.b) + x;
    at::Tensor h = linear_act(x, ly.inter, &n.cfg.hidden_act);
    if (neuron_mask) h = h * *neuron_mask;
    if (drop) return dropped(at::linear(h, ly.out.w, ly.out.b), d, &bert_dropout::hidden) + x;
    return linear_add(h, ly.out, x);
}

/* One encoder layer: x [B * L, H] -> [B * L, H]. */
at::Tensor layer_forward(const bert_net &n, const bert_layer &ly, int64_t B, int64_t L,
                         const at::Tensor &x, const at::Tensor &amask, const at::Tensor *head_mask,
                         const at::Tensor *neuron_mask, const bert_dropout *d = nullptr)
{
    const double eps = n.cfg.layer_norm_eps;
    at::Tensor a = layer_norm(attn_half(n, ly, B, L, x, amask, head_mask, d), ly.attn_ln, eps);
    return layer_norm(ffn_half(n, ly, a, neuron_mask, d), ly.out_ln, eps);
}

/* The forward with a mask on each layer's heads and FFN neurons (Michel et
 * al.'s, Kwon et al.'s): a head's context and a neuron's activation are
 * multiplied by its entry; masks NULL for none.  With d, dropout as HF's
 * modules in training: after the embeddings' LayerNorm, on the attention
 * probabilities, after each output dense (before its residual), and on the
 * pooled output for a classifier.* head (the tutorial's fc head has none). */
at::Tensor forward_masked(const bert_net &n, const at::Tensor &ids, const at::Tensor &mask,
                          const std::vector<at::Tensor> *head_masks,
                          const std::vector<at::Tensor> *neuron_masks,
                          const bert_dropout *d = nullptr)
{
    const int64_t B = ids.size(0), L = ids.size(1), H = n.cfg.hidden_size;
    at::Tensor x = embed(n, ids, d);
    at::Tensor amask = extended_mask(mask, x.scalar_type());
    for (size_t li = 0; li < n.layers.size(); li++)
        x = layer_forward(n, n.layers[li], B, L, x, amask,
                          head_masks ? &(*head_masks)[li] : nullptr,
                          neuron_masks ? &(*neuron_masks)[li] : nullptr, d);
    at::Tensor pooled =
        at::tanh(at::linear(x.view({B, L, H}).select(1, 0), n.pooler.w, n.pooler.b));
    if (n.head == "classifier") pooled = dropped(pooled, d, &bert_dropout::classifier);
    return at::linear(pooled, n.cls.w, n.cls.b);
}

} /* namespace */

namespace ts
{

at::Tensor bert_forward(const bert_net &n, const at::Tensor &ids, const at::Tensor &mask)
{
    return forward_masked(n, ids, mask, nullptr, nullptr);
}

at::Tensor bert_forward_train(const bert_net &n, const at::Tensor &ids, const at::Tensor &mask,
                              const bert_dropout &d)
{
    return forward_masked(n, ids, mask, nullptr, nullptr, &d);
}

const char *bert_head(const bert_net &net)
{
    return net.head.c_str();
}

int bert_labels(const bert_net &net)
{
    return net.labels;
}

int bert_layers(const bert_net &net)
{
    return (int)net.layers.size();
}

void bert_layer_shape(const bert_net &net, int i, int *heads, int *ffn)
{
    *heads = net.layers[(size_t)i].heads;
    *ffn = net.layers[(size_t)i].ffn;
}

const struct bert_config *bert_config_of(const bert_net &net)
{
    return &net.cfg;
}

void bert_magnitude(const bert_net &net, float *heads, float *neurons)
{
    at::NoGradGuard no_grad;
    const int64_t hs = net.head_size;
    size_t h = 0, f = 0;
    for (const bert_layer &ly : net.layers) {
        if (ly.heads > 0) {
            auto rows = [&](const at::Tensor &w) {
                return w.to(at::kFloat).view({ly.heads, hs, -1}).pow(2).sum({1, 2});
            };
            at::Tensor sq =
                rows(ly.q.w) + rows(ly.k.w) + rows(ly.v.w) +
                ly.attn_out.w.to(at::kFloat).t().reshape({ly.heads, hs, -1}).pow(2).sum({1, 2});
            at::Tensor n = sq.sqrt().to(at::kCPU).contiguous();
            memcpy(heads + h, n.data_ptr<float>(), (size_t)ly.heads * sizeof(float));
        }
        if (ly.ffn > 0) {
            at::Tensor sq =
                ly.inter.w.to(at::kFloat).pow(2).sum(1) + ly.out.w.to(at::kFloat).pow(2).sum(0);
            at::Tensor n = sq.sqrt().to(at::kCPU).contiguous();
            memcpy(neurons + f, n.data_ptr<float>(), (size_t)ly.ffn * sizeof(float));
        }
        h += (size_t)ly.heads;
        f += (size_t)ly.ffn;
    }
}

int bert_replace(struct ts_model *m, const std::map<std::string, at::Tensor> &repl, char *err,
                 size_t errlen)
{
    for (const ts_entry &e : m->ents)
        if (e.mapped && repl.count(e.name))
            return err_set(err, errlen, ERR_INTERNAL, "tensor '%s' is mapped", e.name.c_str());
    if (repl.empty()) return 0;
    const struct bert_config cfg = m->net->cfg; /* it goes with the old net */
    for (ts_entry &e : m->ents) {
        auto it = repl.find(e.name);
        if (it != repl.end()) e.t = it->second;
    }
    return bert_bind(m, &cfg, err, errlen);
}

int bert_shrink(struct ts_model *m, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                char *err, size_t errlen)
{
    at::NoGradGuard no_grad;
    const bert_net &n = *m->net;
    const int64_t hs = n.head_size;
    std::map<std::string, at::Tensor> repl;
    size_t h = 0, f = 0;
    for (size_t li = 0; li < n.layers.size(); li++) {
        const bert_layer &ly = n.layers[li];
        const std::string l = n.prefix + "encoder.layer." + std::to_string(li) + ".";
        std::vector<int64_t> rows, cols;
        for (int i = 0; i < ly.heads; i++)
            if (heads_keep[h + (size_t)i])
                for (int64_t j = 0; j < hs; j++)
                    rows.push_back(i * hs + j);
        for (int i = 0; i < ly.ffn; i++)
            if (neurons_keep[f + (size_t)i]) cols.push_back(i);
        h += (size_t)ly.heads;
        f += (size_t)ly.ffn;
        auto index = [&](const std::vector<int64_t> &v, const at::Tensor &like) {
            return at::tensor(v, at::TensorOptions().dtype(at::kLong)).to(like.device());
        };
        if ((int64_t)rows.size() != (int64_t)ly.heads * hs) {
            at::Tensor r = index(rows, ly.q.w);
            const std::pair<const char *, const lin *> qkv[] = {
                {"query", &ly.q}, {"key", &ly.k}, {"value", &ly.v}};
            for (const auto &[p, x] : qkv) {
                repl[l + "attention.self." + p + ".weight"] = x->w.index_select(0, r).contiguous();
                repl[l + "attention.self." + p + ".bias"] = x->b.index_select(0, r).contiguous();
            }
            repl[l + "attention.output.dense.weight"] =
                ly.attn_out.w.index_select(1, r).contiguous();
        }
        if ((int)cols.size() != ly.ffn) {
            at::Tensor c = index(cols, ly.inter.w);
            repl[l + "intermediate.dense.weight"] = ly.inter.w.index_select(0, c).contiguous();
            repl[l + "intermediate.dense.bias"] = ly.inter.b.index_select(0, c).contiguous();
            repl[l + "output.dense.weight"] = ly.out.w.index_select(1, c).contiguous();
        }
    }
    return bert_replace(m, repl, err, errlen);
}

/* The weights a taylor importance differentiates: every layer's Q, K, V,
 * attention.output.dense, intermediate.dense and output.dense weights, as
 * leaves of their own that share the model's storage. */
static std::vector<at::Tensor> taylor_leaves(bert_net &g)
{
    std::vector<at::Tensor> v;
    for (bert_layer &ly : g.layers)
        for (lin *p : {&ly.q, &ly.k, &ly.v, &ly.attn_out, &ly.inter, &ly.out}) {
            p->w = p->w.detach().requires_grad_();
            v.push_back(p->w);
        }
    return v;
}

int bert_importance(const bert_net &n, enum bert_importance kind, const at::Tensor &ids,
                    const at::Tensor &mask, const at::Tensor &labels, int64_t batch, float *heads,
                    float *neurons, int (*progress)(void *ud, double done), void *ud)
{
    at::AutoGradMode grad(true);
    auto f32 = at::TensorOptions().dtype(at::kFloat).device(ids.device());
    const bool taylor = kind == BERT_IMPORTANCE_TAYLOR;
    bert_net g = n; /* taylor: the same tensors, its weights as leaves */
    std::vector<at::Tensor> hm, nm, want, acc;
    if (taylor) {
        want = taylor_leaves(g);
    } else {
        for (const bert_layer &ly : n.layers) {
            hm.push_back(at::ones({ly.heads}, f32).requires_grad_());
            nm.push_back(at::ones({ly.ffn}, f32).requires_grad_());
        }
        want = hm;
        want.insert(want.end(), nm.begin(), nm.end());
    }
    for (const at::Tensor &t : want)
        acc.push_back(at::zeros(t.sizes(), f32));
    const int64_t N = ids.size(0);
    for (int64_t s = 0; s < N; s += batch) {
        int64_t b = std::min(batch, N - s);
        at::Tensor ib = ids.narrow(0, s, b), mb = mask.narrow(0, s, b), lb;
        if (labels.defined()) {
            lb = labels.narrow(0, s, b);
        } else { /* the dense model's own predictions */
            at::NoGradGuard no_grad;
            lb = forward_masked(n, ib, mb, nullptr, nullptr).argmax(1);
        }
        at::Tensor logits = taylor ? forward_masked(g, ib, mb, nullptr, nullptr)
                                   : forward_masked(n, ib, mb, &hm, &nm);
        at::Tensor loss = at::cross_entropy_loss(logits.to(at::kFloat), lb);
        std::vector<at::Tensor> gr = torch::autograd::grad({loss}, want, {}, false, false, true);
        for (size_t i = 0; i < gr.size(); i++)
            if (gr[i].defined())
                acc[i] += taylor ? gr[i].detach().to(at::kFloat) : gr[i].detach().pow(2);
        if (progress && progress(ud, (double)(s + b) / (double)N)) return ERR_CANCELLED;
    }
    size_t h = 0, f = 0;
    const int64_t hs = n.head_size;
    for (size_t l = 0; l < n.layers.size(); l++) {
        const bert_layer &ly = n.layers[l];
        at::Tensor th, tn;
        if (taylor) { /* |sum of gradient x weight| over each head's and neuron's weights */
            at::NoGradGuard no_grad;
            auto gw = [&](size_t i, const at::Tensor &w) {
                return acc[l * 6 + i] * w.to(at::kFloat);
            };
            auto rows = [&](const at::Tensor &t) {
                return t.view({(int64_t)ly.heads, hs, -1}).sum({1, 2});
            };
            if (ly.heads)
                th = (rows(gw(0, ly.q.w)) + rows(gw(1, ly.k.w)) + rows(gw(2, ly.v.w)) +
                      gw(3, ly.attn_out.w)
                          .view({-1, (int64_t)ly.heads, hs})
                          .sum(std::vector<int64_t>{0, 2}))
                         .abs();
            if (ly.ffn) tn = (gw(4, ly.inter.w).sum(1) + gw(5, ly.out.w).sum(0)).abs();
        } else {
            th = acc[l];
            tn = acc[n.layers.size() + l];
        }
        if (ly.heads) th = th.to(at::kCPU).contiguous();
        if (ly.ffn) tn = tn.to(at::kCPU).contiguous();
        if (ly.heads) memcpy(heads + h, th.data_ptr<float>(), (size_t)ly.heads * sizeof(float));
        if (ly.ffn) memcpy(neurons + f, tn.data_ptr<float>(), (size_t)ly.ffn * sizeof(float));
        h += (size_t)ly.heads;
        f += (size_t)ly.ffn;
    }
    return 0;
}

/* x of A x = b (A symmetric, float64 on the CPU): Cholesky, else the SVD's
 * least squares; false when no finite x comes out. */
static bool solve_normal(const at::Tensor &A, const at::Tensor &b, at::Tensor &x)
{
    auto [lo, info] = at::linalg_cholesky_ex(A);
    if (info.item<int64_t>() == 0) x = at::cholesky_solve(b.unsqueeze(1), lo).squeeze(1);
    if (info.item<int64_t>() != 0 || !at::isfinite(x).all().item<bool>())
        x = std::get<0>(
                at::linalg_lstsq(A, b.unsqueeze(1), c10::nullopt, c10::string_view("gelsd")))
                .squeeze(1);
    return at::isfinite(x).all().item<bool>();
}

/* Rows of a batch's [b * L, H] states that count: the attended tokens, or
 * (cls) each row's first token. */
static at::Tensor rows_of(const at::Tensor &mb, bool cls)
{
    const int64_t b = mb.size(0), L = mb.size(1);
    if (cls) return at::arange(b, mb.options().dtype(at::kLong)) * L;
    return mb.reshape({-1}).nonzero().squeeze(1);
}

static void set_stop(struct ts_rescale_stop *st, size_t layer, int neurons, bool solved,
                     const at::Tensor &x)
{
    st->layer = (int)layer;
    st->neurons = neurons;
    st->reason = solved ? 2 : 1;
    st->max_abs = solved ? x.abs().max().item<double>() : 0;
}

int bert_rescale(const bert_net &n, const at::Tensor &ids, const at::Tensor &mask, int64_t batch,
                 const uint8_t *heads_keep, const uint8_t *neurons_keep, float *head_scale,
                 float *neuron_scale, struct ts_rescale_stop *stop,
                 int (*progress)(void *ud, double done), void *ud)
{
    at::NoGradGuard no_grad;
    const int64_t N = ids.size(0), L = ids.size(1), hs = n.head_size;
    const size_t nl = n.layers.size();
    const double eps = n.cfg.layer_norm_eps;
    auto cpu64 = at::TensorOptions().dtype(at::kDouble);
    *stop = ts_rescale_stop{0, -1, 0, 0, 0};
    /* the student's masks (binary, then rescaled) and its kept indices */
    std::vector<at::Tensor> hm, nm, hidx, nidx;
    size_t h0 = 0, f0 = 0;
    for (const bert_layer &ly : n.layers) {
        std::vector<float> hv(heads_keep + h0, heads_keep + h0 + ly.heads),
            nv(neurons_keep + f0, neurons_keep + f0 + ly.ffn);
        at::Tensor ht = at::tensor(hv).to(ids.device()), nt = at::tensor(nv).to(ids.device());
        hm.push_back(ht.to(n.word.scalar_type()));
        nm.push_back(nt.to(n.word.scalar_type()));
        hidx.push_back(ht.nonzero().squeeze(1));
        nidx.push_back(nt.nonzero().squeeze(1));
        h0 += (size_t)ly.heads;
        f0 += (size_t)ly.ffn;
    }
    /* every calibration row's layer input, the dense model's and the pruned one's */
    std::vector<at::Tensor> Xt, Xs, M;
    for (int64_t s = 0; s < N; s += batch) {
        int64_t b = std::min(batch, N - s);
        Xt.push_back(embed(n, ids.narrow(0, s, b)));
        Xs.push_back(Xt.back().clone());
        M.push_back(mask.narrow(0, s, b));
    }
    const size_t nb = Xt.size();
    for (size_t li = 0; li < nl; li++) {
        const bert_layer &ly = n.layers[li];
        const int64_t kh = hidx[li].numel(), kn = nidx[li].numel();
        /* the heads: layer 0's input is the dense model's, and its heads stay (Kwon's code) */
        if (li != 0 && kh > 0) {
            at::Tensor ATA = at::zeros({kh + 1, kh + 1}, cpu64), ATB = at::zeros({kh + 1}, cpu64);
            at::Tensor Wo = ly.attn_out.w.view({-1, ly.heads, hs}).index_select(1, hidx[li]);
            for (size_t k = 0; k < nb; k++) {
                const int64_t b = M[k].size(0);
                at::Tensor am = extended_mask(M[k], Xt[k].scalar_type()), r = rows_of(M[k], false);
                at::Tensor teacher = attn_half(n, ly, b, L, Xt[k], am, nullptr);
                at::Tensor ctx = attention(ly, hs, b, L, Xs[k], am, &hm[li]);
                at::Tensor B = (teacher - ly.attn_out.b - Xs[k]).index_select(0, r).to(at::kFloat);
                at::Tensor c =
                    ctx.index_select(0, r).view({-1, ly.heads, hs}).index_select(1, hidx[li]);
                /* each kept head's share of the output, [kh, tokens * H] */
                at::Tensor O = at::einsum("tkd,hkd->kth", {c, Wo}).reshape({kh, -1}).to(at::kFloat);
                ATA.narrow(0, 0, kh).narrow(1, 0, kh) += at::matmul(O, O.t()).to(at::kDouble).cpu();
                at::Tensor os = O.sum(1).to(at::kDouble).cpu();
                ATA.narrow(0, 0, kh).select(1, kh) += os;
                ATA.select(0, kh).narrow(0, 0, kh) += os;
                ATA[kh][kh] += (double)O.size(1);
                ATB.narrow(0, 0, kh) += at::mv(O, B.reshape({-1})).to(at::kDouble).cpu();
                ATB[kh] += B.sum().to(at::kDouble).cpu();
            }
            at::Tensor x;
            bool ok = solve_normal(ATA, ATB, x);
            x = x.narrow(0, 0, kh); /* the last unknown is the intercept, not kept */
            if (!ok || x.abs().max().item<double>() > 10) {
                set_stop(stop, li, 0, ok, x);
                break;
            }
            hm[li].index_copy_(
                0, hidx[li],
                (hm[li].index_select(0, hidx[li]).to(at::kDouble) * x.to(hm[li].device()))
                    .to(hm[li].scalar_type()));
        }
        /* the neurons: on the last layer only the first token counts (a classifier reads it) */
        if (kn > 0) {
            const bool cls = li + 1 == nl;
            at::Tensor Wk = ly.out.w.index_select(1, nidx[li]).to(at::kFloat);
            at::Tensor G = at::matmul(Wk.t(), Wk);
            at::Tensor ATA = at::zeros({kn, kn}, cpu64), ATB = at::zeros({kn}, cpu64);
            for (size_t k = 0; k < nb; k++) {
                const int64_t b = M[k].size(0);
                at::Tensor am = extended_mask(M[k], Xt[k].scalar_type()), r = rows_of(M[k], cls);
                at::Tensor at_ =
                    layer_norm(attn_half(n, ly, b, L, Xt[k], am, nullptr), ly.attn_ln, eps);
                at::Tensor teacher = ffn_half(n, ly, at_, nullptr);
                at::Tensor as =
                    layer_norm(attn_half(n, ly, b, L, Xs[k], am, &hm[li]), ly.attn_ln, eps);
                at::Tensor act = linear_act(as, ly.inter, &n.cfg.hidden_act);
                at::Tensor B = (teacher - ly.out.b - as).index_select(0, r).to(at::kFloat);
                at::Tensor A = act.index_select(0, r).index_select(1, nidx[li]).to(at::kFloat);
                ATA += (G * at::matmul(A.t(), A)).to(at::kDouble).cpu();
                ATB += (at::matmul(B, Wk) * A).sum(0).to(at::kDouble).cpu();
            }
            at::Tensor x;
            bool ok = solve_normal(ATA, ATB, x);
            if (!ok || x.abs().max().item<double>() > 10) {
                set_stop(stop, li, 1, ok, x);
                break;
            }
            nm[li].index_copy_(
                0, nidx[li],
                (nm[li].index_select(0, nidx[li]).to(at::kDouble) * x.to(nm[li].device()))
                    .to(nm[li].scalar_type()));
        }
        stop->layers = (int)li + 1;
        for (size_t k = 0; li + 1 < nl && k < nb; k++) { /* the next layer's inputs */
            const int64_t b = M[k].size(0);
            at::Tensor am = extended_mask(M[k], Xt[k].scalar_type());
            Xt[k] = layer_forward(n, ly, b, L, Xt[k], am, nullptr, nullptr);
            Xs[k] = layer_forward(n, ly, b, L, Xs[k], am, &hm[li], &nm[li]);
        }
        if (progress && progress(ud, (double)(li + 1) / (double)nl)) return ERR_CANCELLED;
    }
    size_t h = 0, f = 0;
    for (size_t li = 0; li < nl; li++) {
        at::Tensor th = hm[li].to(at::kFloat).cpu().contiguous(),
                   tn = nm[li].to(at::kFloat).cpu().contiguous();
        if (th.numel())
            memcpy(head_scale + h, th.data_ptr<float>(), (size_t)th.numel() * sizeof(float));
        if (tn.numel())
            memcpy(neuron_scale + f, tn.data_ptr<float>(), (size_t)tn.numel() * sizeof(float));
        h += (size_t)th.numel();
        f += (size_t)tn.numel();
    }
    return 0;
}

int bert_scale(struct ts_model *m, const float *head_scale, const float *neuron_scale, char *err,
               size_t errlen)
{
    at::NoGradGuard no_grad;
    const bert_net &n = *m->net;
    std::map<std::string, at::Tensor> repl;
    size_t h = 0, f = 0;
    for (size_t li = 0; li < n.layers.size(); li++) {
        const bert_layer &ly = n.layers[li];
        const std::string l = n.prefix + "encoder.layer." + std::to_string(li) + ".";
        auto scaled = [&](const at::Tensor &w, const float *s, int64_t k, int64_t rep) {
            at::Tensor v = at::from_blob(const_cast<float *>(s), {k}, at::kFloat).clone();
            v = v.to(w.device()).repeat_interleave(rep);
            return (w.to(at::kFloat) * v.view({1, -1})).to(w.scalar_type()).contiguous();
        };
        auto ones = [](const float *s, int64_t k) {
            return std::all_of(s, s + k, [](float x) { return x == 1.0f; });
        };
        if (ly.heads && !ones(head_scale + h, ly.heads))
            repl[l + "attention.output.dense.weight"] =
                scaled(ly.attn_out.w, head_scale + h, ly.heads, n.head_size);
        if (ly.ffn && !ones(neuron_scale + f, ly.ffn))
            repl[l + "output.dense.weight"] = scaled(ly.out.w, neuron_scale + f, ly.ffn, 1);
        h += (size_t)ly.heads;
        f += (size_t)ly.ffn;
    }
    return bert_replace(m, repl, err, errlen);
}

} /* namespace ts */
