#!/usr/bin/env bash
# Every GPU figure of the speed work in one prepared run (about 10 minutes on one H100), each printed
# side by side with its baseline. Run on a machine with a CUDA GPU after `bash scripts/setup.sh`:
#   bash benchmarks/gpu_checks.sh 2>&1 | tee gpu_checks.log
# 1-2. training: the usual-way DCGAN and WGAN-GP loops vs ganbench's plain and fast paths (the fast
#      one replays its step as a CUDA graph; the script prints how many steps it replayed and how far
#      the losses of the two paths are apart), then 4 seeds trained together vs one seed (goals: >= 4x
#      the usual way for DCGAN, >= 2x for WGAN-GP; 4 seeds in <= 2.5x one seed's wall time), 60k
#      images per loop = one fashion-50ep epoch;
# 3.   Inception features in fp32 / TF32 / bf16 and the FID each gives on 10k images (adopt a faster
#      precision only if FID moves by < 0.1);
# 4.   the whole evaluation of one fashion-50ep run: 10k samples of a DCGAN, every metric of the protocol
#      (goal: < 30 s), the reference statistics cached first as after any earlier run.
# 5.   the GPU tier of the reference results (reports/tiers.toml [[gpu]]): `ganbench reproduce --tier gpu --plan`
#      (the cells and their estimated time), then as many cells as fit in TIER_S seconds (default 300): the
#      command is ended there (SIGTERM: the cell in training keeps its checkpoint and the next call continues
#      it), so one call stays under the device's 10-minute limit. GANBENCH_HOME (default: the usual home)
#      holds the runs and the MLflow store: copy it back to render and commit reports/ from it.
# Each part runs even if an earlier one failed (a GPU hour is scarce); the exit status says whether all passed.
# A dry run of every part on the CPU, at small sizes: DEVICE=cpu IMAGES=1280 FID_N=200 EVAL_N=200 bash benchmarks/gpu_checks.sh
# PARTS picks parts (default all: PARTS="1 2 3 4 5"), e.g. to spread them over several short sessions on a device;
# IMAGES (training images per loop, default 60000) and FID_N (default 10000) shrink parts 1-3 to fit a budget.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEVICE=${DEVICE:-cuda}
PARTS=" ${PARTS:-1 2 3 4 5} "
failed=0
n=0
part() {
  n=$((n + 1))
  case "$PARTS" in *" $n "*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  echo "== part $n: $*"
  "$@" || { echo "== FAILED (exit $?): $*"; failed=1; }
  echo "== $((SECONDS - t0)) s"
}
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
part $PY benchmarks/bench_train.py --device "$DEVICE" --images "${IMAGES:-60000}" --model dcgan --seeds 4
part $PY benchmarks/bench_train.py --device "$DEVICE" --images "${IMAGES:-60000}" --model wgan-gp --seeds 4
part $PY benchmarks/bench_fid_precision.py --device "$DEVICE" --n "${FID_N:-10000}" --batch 500
part $PY - "$DEVICE" <<'PY'
import dataclasses, os, sys, time, torch
from ganbench.metrics import evaluate
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.nets.sampling import generate
from ganbench.spec.seeds import fixed_z
from ganbench.training import build_models

proto = load_protocol("fashion-50ep")
if os.environ.get("EVAL_N"):  # a smaller dry run (the goal is for the protocol's 10k)
    proto = dataclasses.replace(proto, eval=dataclasses.replace(proto.eval, num_samples=int(os.environ["EVAL_N"])))
(spec,) = resolve(proto, "0" * 64, models=["dcgan"], seeds=[0])
dev = torch.device(sys.argv[1])
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
G, _ = build_models(spec, dev, torch.Generator().manual_seed(0))
z = fixed_z(proto.eval.num_samples, spec.model.z_dim, proto.eval.z_seed)
evaluate(generate(G, z), proto, dev)  # reference statistics into the cache, kernels warm
for run in range(2):
    sync(); t0 = time.perf_counter()
    samples = generate(G, z)
    results = evaluate(samples, proto, dev)
    sync()
    print(f"  evaluation of one fashion-50ep run ({len(samples)} samples, {', '.join(results)}): "
          f"{time.perf_counter() - t0:.1f} s (goal < 30 s)")
PY
tier() {  # the plan, then as many cells as fit in TIER_S seconds (ended by SIGTERM: the cell in training keeps its checkpoint)
  $PY -m ganbench.cli reproduce --tier gpu --plan --device "$DEVICE" || return
  timeout --signal=TERM "${TIER_S:-300}" $PY -m ganbench.cli reproduce --tier gpu --device "$DEVICE" --no-render
  local rc=$?
  [ $rc -eq 124 ] && { echo "  (ended after TIER_S=${TIER_S:-300} s; the next call continues)"; return 0; }
  return $rc
}
part tier
exit $failed
