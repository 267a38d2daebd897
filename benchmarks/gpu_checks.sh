#!/usr/bin/env bash
# Every GPU figure of the speed work in one prepared run (about 10 minutes on one H100), each printed
# side by side with its baseline. Run on a machine with a CUDA GPU after `bash scripts/setup.sh`:
#   bash benchmarks/gpu_checks.sh 2>&1 | tee gpu_checks.log
# 1-2. training: the usual-way DCGAN loop vs ganbench's plain and fast paths, then 4 seeds trained
#      together vs one seed (goals: >= 4x the usual way for DCGAN, >= 2x for WGAN-GP; 4 seeds in
#      <= 2.5x one seed's wall time), 60k images per loop = one fashion-50ep epoch;
# 3.   Inception features in fp32 / TF32 / bf16 and the FID each gives on 10k images (adopt a faster
#      precision only if FID moves by < 0.1);
# 4.   the whole evaluation of one fashion-50ep run: 10k samples of a DCGAN, every metric of the protocol
#      (goal: < 30 s), the reference statistics cached first as after any earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY benchmarks/bench_train.py --device cuda --images 60000 --model dcgan --seeds 4
$PY benchmarks/bench_train.py --device cuda --images 60000 --model wgan-gp --seeds 4
$PY benchmarks/bench_fid_precision.py --device cuda --n 10000 --batch 500
$PY - <<'PY'
import time, torch
from ganbench.metrics import evaluate
from ganbench.protocol import load_protocol, resolve
from ganbench.train import build_models, fixed_z, generate

proto = load_protocol("fashion-50ep")
(spec,) = resolve(proto, "0" * 64, models=["dcgan"], seeds=[0])
dev = torch.device("cuda")
G, _ = build_models(spec, dev, torch.Generator().manual_seed(0))
z = fixed_z(proto.eval.num_samples, spec.model.z_dim, proto.eval.z_seed)
evaluate(generate(G, z), proto, dev)  # reference statistics into the cache, kernels warm
for run in range(2):
    torch.cuda.synchronize(); t0 = time.perf_counter()
    samples = generate(G, z)
    results = evaluate(samples, proto, dev)
    torch.cuda.synchronize()
    print(f"  evaluation of one fashion-50ep run ({len(samples)} samples, {', '.join(results)}): "
          f"{time.perf_counter() - t0:.1f} s (goal < 30 s)")
PY
