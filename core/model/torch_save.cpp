/* torch_save.cpp - torch.save files: a restricted unpickler to read, a streaming writer */

/*
 * DESIGN
 *
 * Reading.  A torch.save file (PyTorch 1.6 and later) is a zip: "data.pkl",
 * a pickle of the object whose tensors refer to storages by key, one record
 * "data/<key>" per storage, and "version", "byteorder", ".format_version",
 * ".storage_alignment", ".data/serialization_id" as the writing version
 * chose.  PyTorchStreamReader reads the zip; data.pkl goes through a small
 * unpickler of our own (struct pk_reader) rather than
 * torch::jit::pickle_load, which turns collections.OrderedDict into None in
 * libtorch 1.13 and would accept any global.  Like torch.load's
 * weights_only=True it knows only what a state_dict needs: the opcodes of
 * protocols 2 to 5 that build dicts, lists, tuples, numbers and strings, and
 * the globals in allowed_globals (OrderedDict, the tensor and parameter
 * rebuilders, the typed storages).  A pickle naming any other global is
 * refused when the name is read, before anything could call it; nothing in a
 * file is ever executed.
 *
 * Writing.  The state_dict file is the layout torch.save writes: the pickle
 * is small and built in memory; storages go to the file one at a time
 * straight from the tensors (CPU) or from a one-tensor CPU copy (CUDA, views
 * of larger storages, a float32 tensor saved as the float16 or bfloat16 it
 * was read as), so saving does not double the model in memory.  Files are
 * written through ts_sink, which never reports a failed write to libtorch:
 * PyTorchStreamWriter's destructor finalises the archive and would call
 * std::terminate if it threw there.  The sink remembers the first errno and
 * the caller turns it into ERR_IO or ERR_NOSPACE.
 */

#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include "torch_internal.hpp"

using namespace ts;

namespace
{

struct pk_val;
using pk_ref = std::shared_ptr<pk_val>;

struct pk_val {
    enum kind { NONE, BOOL, INT, FLOAT, STR, TUPLE, LIST, DICT, GLOBAL, STORAGE, TENSOR, MARKER };
    kind k = NONE;
    int64_t i = 0;
    double f = 0;
    std::string s, s2;         /* STR: s; GLOBAL: module s, name s2 */
    std::vector<pk_ref> items; /* TUPLE, LIST */
    std::vector<std::pair<pk_ref, pk_ref>> dict;
    at::Tensor t; /* STORAGE: 1-D of its dtype; TENSOR */
};

pk_ref pk_new(pk_val::kind k)
{
    auto v = std::make_shared<pk_val>();
    v->k = k;
    return v;
}

[[noreturn]] void pk_fail(const std::string &msg)
{
    throw ts_format_error(msg);
}

struct pk_reader {
    caffe2::serialize::PyTorchStreamReader &zip;
    const uint8_t *p;
    size_t n, pos = 0;
    std::vector<pk_ref> stack;
    std::vector<size_t> marks;
    std::unordered_map<uint32_t, pk_ref> memo;
    std::unordered_map<std::string, pk_ref> storages;

    /* Every tuple, list and dict made, emptied when the reader goes: a
     * pickle can build a cycle (DUP, then APPEND a list to itself) that
     * shared_ptr never frees, or nest lists deeper than a recursive
     * destructor has stack for. */
    std::vector<pk_ref> made;

    pk_reader(caffe2::serialize::PyTorchStreamReader &z, const uint8_t *data, size_t size)
        : zip(z), p(data), n(size)
    {
    }
    ~pk_reader()
    {
        for (const pk_ref &v : made) {
            v->items.clear();
            v->dict.clear();
        }
    }
    pk_ref make(pk_val::kind k) /* a container */
    {
        pk_ref v = pk_new(k);
        made.push_back(v);
        return v;
    }

    const uint8_t *take(size_t k)
    {
        if (k > n - pos) pk_fail("data.pkl: truncated pickle");
        const uint8_t *r = p + pos;
        pos += k;
        return r;
    }
    uint64_t le(size_t k)
    {
        const uint8_t *b = take(k);
        uint64_t v = 0;
        for (size_t j = 0; j < k; j++)
            v |= (uint64_t)b[j] << (8 * j);
        return v;
    }
    std::string line()
    {
        size_t start = pos;
        while (pos < n && p[pos] != '\n')
            pos++;
        if (pos >= n) pk_fail("data.pkl: truncated pickle");
        return std::string((const char *)p + start, (pos++) - start);
    }
    pk_ref pop()
    {
        if (stack.empty() || (!marks.empty() && stack.size() <= marks.back()))
            pk_fail("data.pkl: pickle stack underflow");
        pk_ref v = stack.back();
        stack.pop_back();
        return v;
    }
    pk_ref &top()
    {
        if (stack.empty()) pk_fail("data.pkl: pickle stack underflow");
        return stack.back();
    }
    std::vector<pk_ref> pop_mark()
    {
        if (marks.empty()) pk_fail("data.pkl: pickle MARK missing");
        size_t m = marks.back();
        marks.pop_back();
        std::vector<pk_ref> v(stack.begin() + (long)m, stack.end());
        stack.resize(m);
        return v;
    }
    void memo_put(uint32_t id)
    {
        memo[id] = top();
    }
    pk_ref memo_get(uint32_t id)
    {
        auto it = memo.find(id);
        if (it == memo.end()) pk_fail("data.pkl: pickle memo entry missing");
        return it->second;
    }

    /* A two's-complement little-endian integer of k bytes (LONG1, LONG4). */
    void push_long(size_t k)
    {
        if (k > 8) pk_fail("data.pkl: integer too large");
        uint64_t u = k ? le(k) : 0;
        if (k && k < 8 && (u >> (8 * k - 1)) & 1) u |= ~(uint64_t)0 << (8 * k);
        pk_ref v = pk_new(pk_val::INT);
        v->i = (int64_t)u;
        stack.push_back(v);
    }

    /* weights_only's promise: a global not on this list is refused as soon
     * as it is named, so no REDUCE or BUILD can ever reach it. */
    static void check_global(const pk_ref &g)
    {
        static const char *const allowed_globals[] = {
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
            "torch.jit._pickle.restore_type_tag",
            "torch.FloatStorage",
            "torch.DoubleStorage",
            "torch.HalfStorage",
            "torch.BFloat16Storage",
            "torch.LongStorage",
            "torch.IntStorage",
            "torch.ShortStorage",
            "torch.CharStorage",
            "torch.ByteStorage",
            "torch.BoolStorage",
        };
        const std::string q = g->s + "." + g->s2;
        for (const char *a : allowed_globals)
            if (q == a) return;
        pk_fail("data.pkl: refused global " + q +
                " (only tensors, storages and OrderedDict are read, as weights_only=True)");
    }

    static at::ScalarType storage_dtype(const pk_ref &g)
    {
        static const std::pair<const char *, at::ScalarType> types[] = {
            {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble},
            {"HalfStorage", at::kHalf},   {"BFloat16Storage", at::kBFloat16},
            {"LongStorage", at::kLong},   {"IntStorage", at::kInt},
            {"ShortStorage", at::kShort}, {"CharStorage", at::kChar},
            {"ByteStorage", at::kByte},   {"BoolStorage", at::kBool},
        };
        if (g->k == pk_val::GLOBAL && g->s == "torch")
            for (const auto &ty : types)
                if (g->s2 == ty.first) return ty.second;
        pk_fail("data.pkl: unsupported storage type " +
                (g->k == pk_val::GLOBAL ? g->s + "." + g->s2 : std::string("?")));
    }

    /* ('storage', torch.XStorage, key, location, numel) -> the record's bytes */
    pk_ref persistent_load(const pk_ref &pid)
    {
        if (pid->k != pk_val::TUPLE || pid->items.size() != 5 || pid->items[0]->k != pk_val::STR ||
            pid->items[0]->s != "storage" || pid->items[2]->k != pk_val::STR ||
            pid->items[4]->k != pk_val::INT)
            pk_fail("data.pkl: unsupported persistent id");
        const std::string &key = pid->items[2]->s;
        auto it = storages.find(key);
        if (it != storages.end()) return it->second;
        at::ScalarType st = storage_dtype(pid->items[1]);
        int64_t numel = pid->items[4]->i;
        std::string rec = "data/" + key;
        if (numel < 0 || !zip.hasRecord(rec)) pk_fail("missing storage record " + rec);
        auto data = zip.getRecord(rec);
        size_t need = (size_t)numel * c10::elementSize(st);
        if (std::get<1>(data) < need) pk_fail("storage record " + rec + " is short");
        pk_ref v = pk_new(pk_val::STORAGE);
        if (numel == 0) {
            v->t = at::empty({0}, at::TensorOptions().dtype(st));
        } else {
            auto keep = std::make_shared<at::DataPtr>(std::move(std::get<0>(data)));
            v->t = at::from_blob(
                keep->get(), {numel}, [keep](void *) {}, at::TensorOptions().dtype(st));
        }
        storages.emplace(key, v);
        return v;
    }

    static std::vector<int64_t> ints(const pk_ref &v, const char *what)
    {
        if (v->k != pk_val::TUPLE && v->k != pk_val::LIST)
            pk_fail(std::string("data.pkl: tensor ") + what + " is not a tuple");
        std::vector<int64_t> r;
        for (const pk_ref &x : v->items) {
            if (x->k != pk_val::INT)
                pk_fail(std::string("data.pkl: tensor ") + what + " is not integers");
            r.push_back(x->i);
        }
        return r;
    }

    pk_ref reduce(const pk_ref &fn, const pk_ref &args)
    {
        if (fn->k != pk_val::GLOBAL || args->k != pk_val::TUPLE)
            pk_fail("data.pkl: unsupported REDUCE");
        const std::string q = fn->s + "." + fn->s2;
        const auto &a = args->items;
        if (q == "collections.OrderedDict" && a.empty()) return make(pk_val::DICT);
        if ((q == "torch._utils._rebuild_tensor_v2" && a.size() >= 4) ||
            (q == "torch._utils._rebuild_tensor" && a.size() == 4)) {
            if (a[0]->k != pk_val::STORAGE || a[1]->k != pk_val::INT)
                pk_fail("data.pkl: bad tensor arguments");
            pk_ref v = pk_new(pk_val::TENSOR);
            v->t = a[0]->t.as_strided(ints(a[2], "size"), ints(a[3], "stride"), a[1]->i);
            return v;
        }
        if ((q == "torch._utils._rebuild_parameter" ||
             q == "torch._utils._rebuild_parameter_with_state") &&
            !a.empty() && a[0]->k == pk_val::TENSOR)
            return a[0];
        if (q == "torch.jit._pickle.restore_type_tag" && !a.empty()) return a[0];
        pk_fail("data.pkl: unsupported object " + q);
    }

    pk_ref run()
    {
        for (;;) {
            uint8_t op = *take(1);
            switch (op) {
            case 0x80:
                take(1);
                break; /* PROTO */
            case 0x95:
                take(8);
                break; /* FRAME */
            case '.':
                return pop(); /* STOP */
            case '(':
                marks.push_back(stack.size());
                break; /* MARK */
            case 'N':
                stack.push_back(pk_new(pk_val::NONE));
                break;
            case 0x88:
            case 0x89: { /* NEWTRUE/FALSE */
                pk_ref v = pk_new(pk_val::BOOL);
                v->i = op == 0x88;
                stack.push_back(v);
                break;
            }
            case 'J':
            case 'K':
            case 'M': { /* BININT, 1, 2 */
                pk_ref v = pk_new(pk_val::INT);
                v->i = op == 'J' ? (int64_t)(int32_t)le(4) : (int64_t)le(op == 'K' ? 1 : 2);
                stack.push_back(v);
                break;
            }
            case 0x8a: /* LONG1 */
            case 0x8b: /* LONG4: only what fits in 64 bits */
                push_long((size_t)le(op == 0x8a ? 1 : 4));
                break;
            case 'U':
            case 'T':
            case 'C':
            case 'B':
            case 0x8e: { /* SHORT_BINSTRING, BINSTRING, SHORT_BINBYTES, BINBYTES, BINBYTES8 */
                size_t k = (size_t)le(op == 'U' || op == 'C' ? 1 : op == 0x8e ? 8 : 4);
                pk_ref v = pk_new(pk_val::STR);
                const uint8_t *b = take(k);
                v->s.assign((const char *)b, k);
                stack.push_back(v);
                break;
            }
            case 'G': { /* BINFLOAT */
                const uint8_t *b = take(8);
                uint64_t u = 0;
                for (int j = 0; j < 8; j++)
                    u = (u << 8) | b[j];
                pk_ref v = pk_new(pk_val::FLOAT);
                memcpy(&v->f, &u, sizeof u);
                stack.push_back(v);
                break;
            }
            case 'X':
            case 0x8c:
            case 0x8d: { /* BINUNICODE* */
                size_t k = (size_t)le(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
                pk_ref v = pk_new(pk_val::STR);
                const uint8_t *b = take(k);
                v->s.assign((const char *)b, k);
                stack.push_back(v);
                break;
            }
            case 'c': { /* GLOBAL */
                pk_ref v = pk_new(pk_val::GLOBAL);
                v->s = line();
                v->s2 = line();
                check_global(v);
                stack.push_back(v);
                break;
            }
            case 0x93: { /* STACK_GLOBAL */
                pk_ref name = pop(), mod = pop();
                if (name->k != pk_val::STR || mod->k != pk_val::STR)
                    pk_fail("data.pkl: bad STACK_GLOBAL");
                pk_ref v = pk_new(pk_val::GLOBAL);
                v->s = mod->s;
                v->s2 = name->s;
                check_global(v);
                stack.push_back(v);
                break;
            }
            case 'q':
                memo_put((uint32_t)le(1));
                break; /* BINPUT */
            case 'r':
                memo_put((uint32_t)le(4));
                break; /* LONG_BINPUT */
            case 0x94:
                memo_put((uint32_t)memo.size());
                break; /* MEMOIZE */
            case 'h':
                stack.push_back(memo_get((uint32_t)le(1)));
                break;
            case 'j':
                stack.push_back(memo_get((uint32_t)le(4)));
                break;
            case '}':
                stack.push_back(make(pk_val::DICT));
                break;
            case ']':
                stack.push_back(make(pk_val::LIST));
                break;
            case ')':
                stack.push_back(make(pk_val::TUPLE));
                break;
            case 't':
            case 'l':
            case 'd': { /* TUPLE, LIST, DICT */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref v = make(op == 't'   ? pk_val::TUPLE
                                : op == 'l' ? pk_val::LIST
                                            : pk_val::DICT);
                if (op == 'd') {
                    if (xs.size() % 2) pk_fail("data.pkl: odd DICT");
                    for (size_t j = 0; j < xs.size(); j += 2)
                        v->dict.emplace_back(xs[j], xs[j + 1]);
                } else {
                    v->items = std::move(xs);
                }
                stack.push_back(v);
                break;
            }
            case 0x85:
            case 0x86:
            case 0x87: { /* TUPLE1..3 */
                size_t k = (size_t)(op - 0x84);
                pk_ref v = make(pk_val::TUPLE);
                v->items.resize(k);
                for (size_t j = k; j-- > 0;)
                    v->items[j] = pop();
                stack.push_back(v);
                break;
            }
            case 's': { /* SETITEM */
                pk_ref val = pop(), key = pop();
                pk_ref &d = top();
                if (d->k != pk_val::DICT) pk_fail("data.pkl: SETITEM on a non-dict");
                d->dict.emplace_back(key, val);
                break;
            }
            case 'u': { /* SETITEMS */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref &d = top();
                if (d->k != pk_val::DICT || xs.size() % 2) pk_fail("data.pkl: bad SETITEMS");
                for (size_t j = 0; j < xs.size(); j += 2)
                    d->dict.emplace_back(xs[j], xs[j + 1]);
                break;
            }
            case 'a': { /* APPEND */
                pk_ref val = pop();
                pk_ref &l = top();
                if (l->k != pk_val::LIST) pk_fail("data.pkl: APPEND on a non-list");
                l->items.push_back(val);
                break;
            }
            case 'e': { /* APPENDS */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref &l = top();
                if (l->k != pk_val::LIST) pk_fail("data.pkl: APPENDS on a non-list");
                l->items.insert(l->items.end(), xs.begin(), xs.end());
                break;
            }
            case 'Q': { /* BINPERSID */
                pk_ref pid = pop();
                stack.push_back(persistent_load(pid));
                break;
            }
            case 'R': { /* REDUCE */
                pk_ref args = pop(), fn = pop();
                stack.push_back(reduce(fn, args));
                break;
            }
            case 'b': /* BUILD */
                /* state of an OrderedDict (_metadata) or a Parameter: unused */
                pop();
                top();
                break;
            case '0':
                pop();
                break; /* POP */
            case '1':
                pop_mark();
                break; /* POP_MARK */
            case '2':
                stack.push_back(top());
                break; /* DUP */
            default: {
                char hex[8];
                snprintf(hex, sizeof hex, "0x%02x", op);
                pk_fail(std::string("data.pkl: unsupported pickle opcode ") + hex);
            }
            }
        }
    }
};

} /* namespace */

namespace
{
/* Opens path as a torch.save / TorchScript zip (into zip); ERR_FORMAT with
 * the reason when it is no such zip, ERR_IO / ERR_NOTFOUND for the file. */
int open_zip(const char *path, std::unique_ptr<caffe2::serialize::PyTorchStreamReader> &zip,
             char *err, size_t errlen)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        int e = errno;
        return err_set(err, errlen, io_code(e), "%s: %s", path, strerror(e));
    }
    fclose(probe);
    if (!zip_first_record_in_folder(path))
        return err_set(err, errlen, ERR_FORMAT,
                       "%s: a zip that is not a torch.save file (no archive/data.pkl)", path);
    try {
        zip.reset(new caffe2::serialize::PyTorchStreamReader(std::string(path)));
    } catch (const c10::Error &e) {
        return err_set(err, errlen, ERR_FORMAT,
                       "%s: a zip that is not a torch.save file (no data.pkl): %s", path,
                       one_line(e.what_without_backtrace()).c_str());
    }
    return 0;
}
} /* namespace */

namespace ts
{

int torch_save_read(const char *path, std::vector<named_tensor> &out, char *err, size_t errlen)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        int e = errno;
        return err_set(err, errlen, io_code(e), "%s: %s", path, strerror(e));
    }
    unsigned char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, probe);
    fclose(probe);
    if (got == 2 && magic[0] == 0x80 && magic[1] >= 2 && magic[1] <= 5)
        return err_set(err, errlen, ERR_FORMAT,
                       "%s: a legacy torch.save file (a pickle, not a zip: PyTorch before 1.6 "
                       "or _use_new_zipfile_serialization=False); load it with torch and re-save "
                       "it with torch.save on PyTorch 1.6 or later",
                       path);
    out.clear();
    return ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
        int zrc = open_zip(path, zip, err, errlen);
        if (zrc) return zrc;
        return torch_save_read_zip(*zip, path, out, err, errlen);
    });
}

int torch_save_read_zip(caffe2::serialize::PyTorchStreamReader &zip_, const char *path,
                        std::vector<named_tensor> &out, char *err, size_t errlen)
{
    out.clear();
    return ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        caffe2::serialize::PyTorchStreamReader *zip = &zip_;
        if (zip->hasRecord("constants.pkl"))
            return err_set(err, errlen, ERR_FORMAT,
                           "%s: a TorchScript archive, not a torch.save dict of tensors", path);
        if (!zip->hasRecord("data.pkl"))
            return err_set(err, errlen, ERR_FORMAT, "%s: no data.pkl (not a torch.save file)",
                           path);
        if (zip->hasRecord("byteorder")) {
            auto bo = zip->getRecord("byteorder");
            std::string order((const char *)std::get<0>(bo).get(), std::get<1>(bo));
            if (order != "little")
                return err_set(err, errlen, ERR_UNSUPPORTED, "%s: byte order '%s'", path,
                               order.c_str());
        }
        auto pkl = zip->getRecord("data.pkl");
        pk_reader rd(*zip, (const uint8_t *)std::get<0>(pkl).get(), std::get<1>(pkl));
        pk_ref root;
        try {
            root = rd.run();
        } catch (const ts_format_error &e) {
            return err_set(err, errlen, ERR_FORMAT, "%s: not a dict of name -> tensor: %s", path,
                           e.what());
        }
        if (root->k != pk_val::DICT)
            return err_set(err, errlen, ERR_FORMAT, "%s: holds no dict of name -> tensor", path);
        /* A key set twice keeps its first place and takes the last value, as
         * Python's dict does when it unpickles one.  out is set only once
         * every entry has passed. */
        std::vector<named_tensor> items;
        std::unordered_map<std::string, size_t> seen;
        for (const auto &kv : root->dict) {
            if (kv.first->k != pk_val::STR || kv.second->k != pk_val::TENSOR)
                return err_set(err, errlen, ERR_FORMAT,
                               "%s: holds a dict whose entries are not name -> tensor", path);
            const std::string &name = kv.first->s;
            if (name.find('\0') != std::string::npos)
                return err_set(err, errlen, ERR_FORMAT, "%s: a tensor name holds a NUL byte", path);
            auto at = seen.emplace(name, items.size());
            if (at.second)
                items.push_back(named_tensor{name, kv.second->t});
            else
                items[at.first->second].t = kv.second->t;
        }
        out = std::move(items);
        return 0;
    });
}

} /* namespace ts */

extern "C" {

int ts_dict_open(const char *path, struct ts_dict **out, char *err, size_t errlen)
{
    if (!path || !out)
        return err_set(err, errlen, ERR_INVALID, "dict path and output are required");
    *out = nullptr;
    std::vector<named_tensor> items;
    int rc = torch_save_read(path, items, err, errlen);
    if (rc) return rc;
    struct ts_dict *d = nullptr;
    rc = ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        std::unique_ptr<ts_dict> dd(new ts_dict);
        for (named_tensor &x : items) {
            dd->names.push_back(x.name);
            dd->tensors.push_back(x.t);
        }
        d = dd.release();
        return 0;
    });
    if (rc != 0) return rc;
    *out = d;
    return 0;
}

int ts_zip_kind(const char *path, int *torchscript, char *err, size_t errlen)
{
    *torchscript = 0;
    return ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
        int zrc = open_zip(path, zip, err, errlen);
        if (zrc) return zrc;
        if (zip->hasRecord("constants.pkl"))
            *torchscript = 1;
        else if (!zip->hasRecord("data.pkl"))
            return err_set(err, errlen, ERR_FORMAT,
                           "%s: a zip that is neither a torch.save file nor TorchScript (no "
                           "data.pkl)",
                           path);
        return 0;
    });
}

void ts_dict_destroy(struct ts_dict *d)
{
    try {
        delete d;
    } catch (...) {
    }
}

size_t ts_dict_count(const struct ts_dict *d)
{
    return d ? d->names.size() : 0;
}

int ts_dict_info(const struct ts_dict *d, size_t i, struct ts_tensor_info *out)
{
    if (!d || i >= d->names.size()) return ERR_INVALID;
    try {
        return fill_info(d->names[i], d->tensors[i], 1, out);
    } catch (...) {
        return ERR_TORCH;
    }
}

long ts_dict_find(const struct ts_dict *d, const char *name)
{
    if (!d || !name) return -1;
    for (size_t i = 0; i < d->names.size(); i++)
        if (d->names[i] == name) return (long)i;
    return -1;
}

int ts_dict_read_u8(const struct ts_dict *d, size_t i, uint8_t *out, size_t n, char *err,
                    size_t errlen)
{
    if (!d || !out || i >= d->names.size())
        return err_set(err, errlen, ERR_INVALID, "read_u8: bad dict, index or output");
    const at::Tensor &t = d->tensors[i];
    const std::string &name = d->names[i];
    return ts_catch(err, errlen, ERR_TORCH, name.c_str(), [&]() -> int {
        if ((uint64_t)t.numel() > (uint64_t)n)
            return err_set(err, errlen, ERR_INVALID, "%s: %lld elements do not fit in %zu bytes",
                           name.c_str(), (long long)t.numel(), n);
        c10::InferenceMode guard;
        at::Tensor nz = t.ne(0).to(at::kByte).contiguous();
        if (nz.numel()) memcpy(out, nz.data_ptr<uint8_t>(), (size_t)nz.numel());
        return 0;
    });
}

} /* extern "C" */

/* ---- writing ---- */

extern "C" {

/* A CPU tensor with t's dtype and shape but no memory: it stands for a tensor
 * whose bytes are written later, one at a time, so the pickle can say "cpu"
 * without the whole model being copied first. */
static at::Tensor placeholder_like(const at::Tensor &t, at::ScalarType dtype)
{
    std::vector<int64_t> strides((size_t)t.dim());
    int64_t s = 1;
    for (int64_t d = t.dim() - 1; d >= 0; d--) {
        strides[(size_t)d] = s;
        s *= std::max<int64_t>(t.size(d), 1);
    }
    size_t nbytes = (size_t)t.numel() * c10::elementSize(dtype);
    c10::Storage st(c10::Storage::use_byte_size_t(), nbytes,
                    c10::DataPtr(nullptr, c10::Device(c10::kCPU)), nullptr, false);
    return at::empty({0}, at::TensorOptions().dtype(dtype)).set_(st, 0, t.sizes(), strides);
}

/* Whether t is a CPU tensor that covers its whole storage densely, so the
 * storage can be written as it is. */
static bool whole_cpu_storage(const at::Tensor &t)
{
    return t.device().is_cpu() && t.layout() == at::kStrided && t.is_contiguous() &&
           t.storage_offset() == 0 && !t.is_conj() && !t.is_neg() &&
           t.storage().nbytes() == (size_t)t.numel() * t.element_size();
}

int ts_model_save_state_dict(struct ts_model *m, const char *path, char *err, size_t errlen)
{
    if (!m || !path) return err_set(err, errlen, ERR_INVALID, "save: bad model or path");
    ts_sink sink;
    if (sink.open(path) != 0)
        return err_set(err, errlen, io_code(sink.error), "%s: %s", path, strerror(sink.error));
    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        torch::NoGradGuard no_grad;
        c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
        /* storage of a placeholder -> the tensor it stands for */
        std::unordered_map<const void *, at::Tensor> deferred;
        for (size_t i : m->sd_order) {
            const ts_entry &e = m->ents[i];
            at::Tensor t = e.t.detach();
            if (!whole_cpu_storage(t) || t.scalar_type() != e.file_dtype) {
                at::Tensor ph = placeholder_like(t, e.file_dtype);
                deferred.emplace(ph.storage().unsafeGetStorageImpl(), t);
                t = ph;
            }
            dict.insert(e.name, t);
        }

        std::string pkl;
        torch::jit::Pickler pickler([&](const char *b, size_t n) { pkl.append(b, n); }, nullptr,
                                    nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
        pickler.protocol();
        pickler.pushIValue(dict);
        pickler.stop();

        caffe2::serialize::PyTorchStreamWriter zip([&](const void *b, size_t n) -> size_t {
            sink.write(b, n);
            return n;
        });
        zip.writeRecord("data.pkl", pkl.data(), pkl.size());
        const std::vector<at::Tensor> &storages = pickler.tensorData();
        for (size_t i = 0; i < storages.size(); i++) {
            std::string rec = "data/" + std::to_string(i);
            auto it = deferred.find(storages[i].storage().unsafeGetStorageImpl());
            if (it == deferred.end()) {
                const at::Tensor &s = storages[i];
                zip.writeRecord(rec, s.storage().data(), s.storage().nbytes());
            } else {
                at::Tensor c = it->second.to(at::kCPU).to(storages[i].scalar_type()).contiguous();
                if (!c.is_contiguous() || c.is_conj() || c.is_neg())
                    c = c.resolve_conj().resolve_neg().contiguous();
                zip.writeRecord(rec, c.data_ptr(), (size_t)c.numel() * c.element_size());
            }
        }
        zip.writeEndOfFile();
        return 0;
    });
    int e = sink.close();
    if (rc == 0 && e) rc = err_set(err, errlen, io_code(e), "%s: write: %s", path, strerror(e));
    return rc;
}

} /* extern "C" */
