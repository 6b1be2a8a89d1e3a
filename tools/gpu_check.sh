#!/usr/bin/env bash
# gpu_check.sh - the tutorial's job on a lent GPU machine, checked against the
# same job on its CPU.  Builds prunerd against that machine's torch, runs the
# job (global L1 30% of the query weights of the shared TorchScript model,
# eval on 2000 THUCNews dev titles, torchscript + state_dict outputs) once on
# cuda and once on cpu, and checks:
#   1. it ran on the GPU: result.json provenance.device and `prunerd eval
#      --report` say cuda:0, and `prunerd version` shows >= 1 CUDA device;
#   2. the zeros: the two state_dicts' query weights have the same zero masks;
#   3. the predictions: `prunerd eval --device cuda` and `--device cpu` of the
#      pruned model give the same argmax and logits within 1e-3;
#   4. training (recover): the shared model's weights as a state_dict with a
#      dropout-0 config.json, global L1 70% of the encoder Linear weights, 30
#      steps in file order on the device and on cpu: it trained on the device
#      (recovery.device, time per step recorded), the held zeros are the same
#      and still zero, and the losses agree within 1e-3 relative.
# One PASS/FAIL line per check, then "N passed, M failed"; exit 1 on a failure.
#
# The GPU machine has no network, no -dev packages and no ../shared, so first,
# HERE (Debian 12 with apt and ../shared):
#     tools/gpu_check.sh prepare
# which fills gpu/ (ignored by git, about 54 MiB): gpu/prefix/ is the Debian
# packages the build needs (headers, .pc files, libraries, meson, ninja,
# pkgconf) unpacked with dpkg -x, gpu/shared/ the model and the dev data.
# Then, with the device tool:
#     run  command: bash tools/gpu_check.sh   carry: ["gpu"]   timeout_s: 420
# Logs, result.json and eval reports land in $OUT (so they come back); the
# pruned models stay in the build folder.  To rerun on the still-warm machine
# without building again: GPU_CHECK_REUSE=1 bash tools/gpu_check.sh
#
# Settings (environment): GPU_CHECK_PYTHON (default /opt/torch/.venv/bin/python,
# the torch to build on and to compare with), GPU_CHECK_DEVICE (default cuda;
# cpu runs the whole comparison cpu against cpu, for a machine without a GPU),
# GPU_CHECK_BUILD (default build-gpu, made afresh), GPU_CHECK_REUSE=1 (reuse
# that build folder as it is, for a quick rerun on a warm machine),
# GPU_CHECK_LIMIT (default 2000 titles), GPU_CHECK_MESON_PYTHON (the Python
# that runs meson; default GPU_CHECK_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
prefix=$root/gpu/prefix
shared=$root/gpu/shared
multiarch=x86_64-linux-gnu
model=models/thucnews-bert-l4-h256.pt
data=data/thucnews/dev.txt
classes=data/thucnews/class.txt
vocab=data/vocab/bert-base-chinese-vocab.txt

# ---- prepare (here): the .debs and the shared files into gpu/ ----
prepare() {
  # What the build needs, and the runtime libraries of the -dev packages
  # (carried even where python3 would bring them: the GPU machine's python3
  # need not be Debian's).
  local roots=(libmicrohttpd-dev libjansson-dev libsqlite3-dev libutf8proc-dev libssl-dev
               meson ninja-build pkgconf)
  local runtime=(libmicrohttpd12 libjansson4 libsqlite3-0 libutf8proc2 libssl3)
  # libgnutls28-dev Depends on these only for its other libraries (DANE with
  # unbound and libevent, OpenSSL compatibility, C++, GMP's headers), which
  # nothing here links or includes.
  local unused=(libgnutls-dane0 libunbound8 libevent-2.1-7 libgnutls-openssl27 libgnutlsxx30
                libgmp-dev libgmpxx4ldbl)
  local dflags=(--recurse --no-recommends --no-suggests --no-conflicts --no-breaks
                --no-replaces --no-enhances)
  closure() { apt-cache depends "${dflags[@]}" "$@" | grep -v '^[ <]' | sort -u; }
  apt-cache show meson >/dev/null 2>&1 || apt-get update -q
  # Left out: what a box with gcc, g++ and python3 has (their Depends and the
  # Essential packages), and meson's python3-* Depends (only its python
  # module, unused here, imports them).
  local base pkgs
  local essential
  essential=$(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
  # shellcheck disable=SC2086 # one package a word
  base=$(closure gcc g++ python3 $essential)
  pkgs=$( { comm -23 <(closure "${roots[@]}") <(echo "$base") | grep -v '^python3' |
              grep -vxF -f <(printf '%s\n' "${unused[@]}")
            printf '%s\n' "${runtime[@]}"; } | sort -u)

  local debs
  debs=$(mktemp -d)
  trap 'rm -rf "$debs"' RETURN
  chmod 777 "$debs"   # apt's _apt user downloads into it
  # shellcheck disable=SC2086 # one package a word
  (cd "$debs" && apt-get download -q $pkgs >/dev/null)
  rm -rf "$prefix"
  mkdir -p "$prefix"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
  # Not needed to build or run: documentation, static libraries.
  rm -rf "$prefix"/usr/share/{doc,doc-base,man,info,locale,lintian,bash-completion,zsh,vim,emacs,polkit-1}
  find "$prefix" -name '*.a' -delete
  (cd "$debs" && ls -- *.deb) | sed 's/_[a-z0-9]*\.deb$//; s/_/ /; s/%3a/:/' > "$root/gpu/packages.txt"
  # The newest glibc symbol version they use: the GPU machine needs that glibc.
  { find "$prefix" -type f \( -name '*.so*' -o -path '*/bin/*' \) -exec objdump -T {} + 2>/dev/null || true; } |
    grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -n 1 | sed 's/GLIBC_//' > "$root/gpu/glibc.txt"

  rm -rf "$shared"
  for f in "$model" "$data" "$classes" "$vocab"; do
    mkdir -p "$shared/$(dirname "$f")"
    cp "$root/../shared/$f" "$shared/$f"
  done
  echo "gpu/: $(wc -l < "$root/gpu/packages.txt") packages (gpu/packages.txt) in gpu/prefix," \
       "$(du -sh "$prefix" | cut -f1), needing glibc $(cat "$root/gpu/glibc.txt");" \
       "gpu/shared $(du -sh "$shared" | cut -f1); in all $(du -sh "$root/gpu" | cut -f1)"
}

case ${1:-run} in
  prepare) prepare; exit 0 ;;
  run) ;;
  *) echo "usage: tools/gpu_check.sh [prepare|run]" >&2; exit 2 ;;
esac

# ---- run (on the GPU machine) ----
py=${GPU_CHECK_PYTHON:-/opt/torch/.venv/bin/python}
device=${GPU_CHECK_DEVICE:-cuda}
build=${GPU_CHECK_BUILD:-build-gpu}
limit=${GPU_CHECK_LIMIT:-2000}
meson_py=${GPU_CHECK_MESON_PYTHON:-$py}
out=${OUT:-$root/$build-out}   # logs and reports; $OUT under the device tool
work=$root/$build/check-work
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
tee_pid=$!
echo "gpu_check: device $device against cpu; torch of $py; build $build; $limit titles; out $out"

# step NAME CMD...: runs CMD with its output in $out/NAME.log; on failure
# shows the log's end.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" > "$out/$name.log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    echo "  $name: ok ($((SECONDS - t0)) s)"
  else
    echo "  $name: exit $rc ($((SECONDS - t0)) s); the end of $out/$name.log:"
    tail -n 20 "$out/$name.log" | sed 's/^/    /'
  fi
  return $rc
}
passed=0 failed=0
check() {   # check NAME OK DETAIL
  if [ "$2" = 1 ]; then echo "PASS: $1: $3"; passed=$((passed + 1))
  else echo "FAIL: $1: $3"; failed=$((failed + 1)); fi
}
finish() {   # the summary; waits for tee to write the log
  echo "$passed passed, $failed failed"
  exec >&- 2>&-
  wait "$tee_pid" || true
  exit $((failed > 0))
}
abort() {   # abort WHY: the three checks not run
  for c in "1 ran on $device" "2 same zeros" "3 same predictions"; do check "$c" 0 "not run: $1"; done
  finish
}

for need in "$prefix/usr/bin/meson" "$shared/$model" "$root/gpu/glibc.txt"; do
  [ -e "$need" ] || abort "no $need: run tools/gpu_check.sh prepare first, and carry gpu"
done
[ -x "$py" ] || abort "no Python at $py (set GPU_CHECK_PYTHON)"
[ "$(uname -m)" = x86_64 ] || abort "gpu/prefix is amd64, this machine $(uname -m)"
glibc=$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)
need=$(cat "$root/gpu/glibc.txt")
[ "$(printf '%s\n' "$need" "$glibc" | sort -V | sed -n 1p)" = "$need" ] ||
  abort "gpu/prefix needs glibc $need, this machine has $glibc"

# The C dependencies and the build tools from gpu/prefix only; Debian's .pc
# files say prefix=/usr, which the sysroot moves into gpu/prefix.
PATH="$prefix/usr/bin:$PATH:${py%/*}"   # at the end: a python3 for the build's generators
export PATH
export PYTHONPATH="$prefix/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export PKG_CONFIG="$prefix/usr/bin/pkgconf"
export PKG_CONFIG_LIBDIR="$prefix/usr/lib/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$prefix"
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
export LD_LIBRARY_PATH="$prefix/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
meson() { "$meson_py" "$prefix/usr/bin/meson" "$@"; }
pyc() { env -u LD_LIBRARY_PATH -u PYTHONPATH "$py" "$@"; }   # the comparisons: torch only

{ uname -a; ldd --version | sed -n 1p; nvidia-smi -L; } > "$out/machine.txt" 2>&1 || true

# (the .pc files leave the multiarch include folder, with openssl's
# configuration.h, to the compiler's defaults: give it)
opts=(-Dpython="$py" -Dshared_dir="$shared" -Dwerror=false -Dc_args="-I$prefix/usr/include/$multiarch")
[ "$device" = cpu ] || opts+=(-Dcuda=enabled)
built=1
if [ "${GPU_CHECK_REUSE:-0}" = 1 ] && [ -f "$build/build.ninja" ]; then
  echo "  setup: reusing $build"
else
  rm -rf "$build"
  step setup meson setup "$build" "${opts[@]}" || built=0
fi
[ $built = 1 ] && { step build meson compile -C "$build" prunerd || built=0; }
[ $built = 1 ] || abort "the build failed"
bin=$root/$build/server/prunerd
"$bin" version | tee "$out/version.txt"
ldd "$bin" > "$out/ldd.txt" 2>&1 || true   # which libraries it runs with

# The tutorial's job, on the device under test ("test") and on cpu ("ref").
rm -rf "$work"
mkdir -p "$work"
job() {
  cat > "$work/job-$1.json" <<JSON
{"model": "$shared/$model",
 "targets": ["bert.encoder.layer.*.attention.self.query"],
 "method": "l1_unstructured", "amount": 0.3, "amount_kind": "fraction", "scope": "global",
 "eval": {"data": "$shared/$data", "vocab": "$shared/$vocab", "classes": "$shared/$classes",
          "limit": $limit},
 "outputs": ["torchscript", "state_dict"], "device": "$2",
 "name": "gpu_check: global L1 30% on query, $2"}
JSON
  "$bin" run "$work/job-$1.json" --out-dir "$work/$1" && cp "$work/$1/result.json" "$out/result-$1.json"
}
eval_on() {   # the pruned model of the device's run, evaluated on $2
  "$bin" eval "$work/test/model.pt" --data "$shared/$data" --vocab "$shared/$vocab" \
    --classes "$shared/$classes" --limit "$limit" --device "$2" \
    --logits "$work/logits-$1.f32" --report "$out/eval-$1.json"
}
ran=1 evald=1
step "run-test-$device" job test "$device" || ran=0
[ $ran = 1 ] && { step run-ref-cpu job ref cpu || ran=0; }
if [ $ran = 1 ]; then
  step "eval-test-$device" eval_on test "$device" || evald=0
  step eval-ref-cpu eval_on ref cpu || evald=0
else
  evald=0
fi

# 1. Where it ran.
want=cpu
[ "$device" = cpu ] || want=cuda:0
ndev=$(sed -n 's/.*compiled in, \([0-9]*\) CUDA device.*/\1/p' "$out/version.txt")
ndev=${ndev:-0}
if [ $ran = 1 ]; then
  got=$(pyc -c 'import json, sys; print(json.load(open(sys.argv[1]))["provenance"]["device"])' \
        "$work/test/result.json" || echo unreadable)
  got_eval=none
  [ $evald = 0 ] || got_eval=$(pyc -c 'import json, sys; print(json.load(open(sys.argv[1]))["settings"]["device"])' \
                               "$out/eval-test.json" || echo unreadable)
  ok=0
  [ "$got" = "$want" ] && [ "$got_eval" = "$want" ] && { [ "$want" = cpu ] || [ "$ndev" -ge 1 ]; } && ok=1
  check "1 ran on $device" $ok "job provenance.device $got, eval device $got_eval (want $want); prunerd version: $ndev CUDA devices"
else
  check "1 ran on $device" 0 "the job failed (see run-*.log); prunerd version: $ndev CUDA devices"
fi

# 2. The zeros: the query weights of the two state_dicts.
if [ $ran = 1 ] && pyc - "$work/test/model.pth" "$work/ref/model.pth" > "$out/zeros.txt" 2>&1 <<'PY'
import re, sys, torch
a, b = (torch.load(p, map_location="cpu") for p in sys.argv[1:3])
keys = [k for k in a if re.fullmatch(r"bert\.encoder\.layer\.\d+\.attention\.self\.query\.weight", k)]
assert keys and set(keys) <= set(b), f"query weights: {keys} in the device's, not all in cpu's"
differ = sum(int(((a[k] == 0) != (b[k] == 0)).sum()) for k in keys)
zeros = sum(int((a[k] == 0).sum()) for k in keys)
numel = sum(a[k].numel() for k in keys)
delta = max(float((a[k] - b[k]).abs().max()) for k in keys)
print(f"{len(keys)} query weights, {zeros} of {numel} zero ({zeros / numel:.4f}), "
      f"{differ} positions differ, max |weight difference| {delta:.3g}")
sys.exit(0 if differ == 0 and zeros > 0 else 1)
PY
then check "2 same zeros" 1 "$(cat "$out/zeros.txt")"
else check "2 same zeros" 0 "$( [ $ran = 1 ] && tail -n 3 "$out/zeros.txt" || echo "the job failed")"
fi

# 3. The predictions: logits of the pruned model on the device and on cpu.
if [ $evald = 1 ] && pyc - "$work/logits-test.f32" "$work/logits-ref.f32" "$shared/$classes" > "$out/logits.txt" 2>&1 <<'PY'
import sys, torch
ncls = sum(1 for line in open(sys.argv[3], encoding="utf-8") if line.strip())
a, b = (torch.frombuffer(bytearray(open(p, "rb").read()), dtype=torch.float32).reshape(-1, ncls)
        for p in sys.argv[1:3])
assert a.shape == b.shape and a.shape[0] > 0, f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
same = int((a.argmax(1) == b.argmax(1)).sum())
delta = float((a - b).abs().max())
print(f"{a.shape[0]} titles x {ncls} classes: argmax equal on {same}, max |logit difference| {delta:.3g} (limit 1e-3)")
sys.exit(0 if same == a.shape[0] and delta <= 1e-3 else 1)
PY
then check "3 same predictions" 1 "$(cat "$out/logits.txt")"
else check "3 same predictions" 0 "$( [ $evald = 1 ] && tail -n 3 "$out/logits.txt" || echo "an eval or the job failed")"
fi
# 4. Training: the recover stage on the device and on cpu.
recover_job() {   # $1 name, $2 device
  cat > "$work/rec-$1.json" <<JSON
{"model": "$work/native/model.pt", "model_config": "$work/native/config.json",
 "targets": ["bert.encoder.layer.*.query", "bert.encoder.layer.*.key", "bert.encoder.layer.*.value",
             "bert.encoder.layer.*.dense"],
 "method": "l1_unstructured", "amount": 0.7, "scope": "global",
 "eval": {"data": "$shared/$data", "vocab": "$shared/$vocab", "classes": "$shared/$classes", "limit": 256},
 "recover": {"data": "$work/native/train.txt", "steps": 30, "shuffle": false, "checkpoint_every": 10},
 "outputs": ["state_dict"], "device": "$2", "options": {"seed": 1}, "name": "gpu_check: recover, $2"}
JSON
  "$bin" run "$work/rec-$1.json" --out-dir "$work/rec-$1" && cp "$work/rec-$1/result.json" "$out/result-rec-$1.json"
}
trained=1
mkdir -p "$work/native"
pyc - "$shared/$model" "$shared/${model%.pt}.config.json" "$shared/$data" "$work/native" > "$out/native.txt" 2>&1 <<'PY' || trained=0
import json, sys, torch
m, cfg, dev, dst = sys.argv[1:5]
torch.save({k: v.float() for k, v in torch.jit.load(m, map_location="cpu").state_dict().items()}, dst + "/model.pt")
c = json.load(open(cfg)); c.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
json.dump(c, open(dst + "/config.json", "w"))
lines = open(dev, encoding="utf-8").readlines()[-960:]   # not the eval rows (the first 256)
open(dst + "/train.txt", "w", encoding="utf-8").writelines(lines)
PY
[ $trained = 1 ] && { step "recover-test-$device" recover_job test "$device" || trained=0; }
[ $trained = 1 ] && { step recover-ref-cpu recover_job ref cpu || trained=0; }
if [ $trained = 1 ] && pyc - "$work/rec-test" "$work/rec-ref" "$want" > "$out/recover.txt" 2>&1 <<'PY'
import json, sys, torch
a, b, want = sys.argv[1:4]
ra, rb = (json.load(open(d + "/result.json")) for d in (a, b))
sa, sb = (torch.load(d + "/model.pth", map_location="cpu") for d in (a, b))
keys = [k for k in sa if ".encoder.layer." in k and k.endswith(".weight") and "LayerNorm" not in k]
differ = sum(int(((sa[k] == 0) != (sb[k] == 0)).sum()) for k in keys)
la = [p["loss"] for p in ra["recovery"]["curve"]]
lb = [p["loss"] for p in rb["recovery"]["curve"]]
rel = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(la, lb))
dev = ra["recovery"]["device"]
print(f"trained on {dev}: {ra['recovery']['time_per_step_s']:.4f} s a step (cpu {rb['recovery']['time_per_step_s']:.4f}); "
      f"sparsity {ra['sparsity']['targets']:.6f} vs {rb['sparsity']['targets']:.6f}, {differ} zero positions differ; "
      f"losses agree within {rel:.2g} relative; accuracy after recovery "
      f"{ra['metrics']['after_recovery']['accuracy']:.4f} vs {rb['metrics']['after_recovery']['accuracy']:.4f}")
sys.exit(0 if dev == want and differ == 0 and rel <= 1e-3 and len(la) == 30 else 1)
PY
then check "4 training on $device" 1 "$(cat "$out/recover.txt")"
else check "4 training on $device" 0 "$( [ $trained = 1 ] && tail -n 3 "$out/recover.txt" || echo "a recover job failed (see recover-*.log)")"
fi

finish
