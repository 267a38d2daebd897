"""The ``ganbench`` command. Subcommands are thin: parse, call one function of ``ganbench.api`` (or the
pipeline), print.

Exit codes: 0 success, 1 a run failed or diverged, 2 usage errors (bad arguments, unknown names,
invalid files, missing data), printed without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
import sys

from ganbench import api
from ganbench.core import track
from ganbench.core.errors import GanbenchError
from ganbench.data import check_data_root
from ganbench.diagnosis import format_report
from ganbench.pipeline.cards import format_results, update_cards
from ganbench.pipeline.evaluate import eval_protocol
from ganbench.pipeline.run import run_protocol
from ganbench.pipeline.stylemix import style_mix
from ganbench.pipeline.sweep import sweep, to_json
from ganbench.pipeline.use import interpolate, sample
from ganbench.reporting.gate import check, migrate_baseline, save_baseline
from ganbench.reporting.render import comparison_rows
from ganbench.spec.protocol import parse_overrides

DATA_NAMES = api.DATA_NAMES
RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}  # `eval --range`: float pixel encodings
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
RUN_BOOKKEEPING = ("last_step_", "images_seen", "epochs_done", "eval_time_s", "replayed_steps")  # not shown by `run`

# --------------------------------------------------------------------------- options shared by subcommands

DEVICE_AUTO = "auto (CUDA when available), cpu, cuda, cuda:N"
COMMON = {  # option -> (flags, argparse keywords): each defined once, added by ``common``
    "tracking_uri": (("--tracking-uri",), dict(
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the embedded SQLite store)")),
    "data_root": (("--data-root",), dict(help="folder with dataset files (default: GANBENCH_DATA, then the cache)")),
    "json": (("--json",), dict(action="store_true", help="machine-readable output")),
    "device": (("--device",), dict(default="auto", help=DEVICE_AUTO)),
    "device_cpu": (("--device",), dict(default="cpu", help="cpu, cuda, cuda:N (default cpu)")),
    "ema": (("--ema",), dict(action="store_true", help="use the EMA generator (models trained with tricks.ema > 0)")),
    "run": (("run",), dict(metavar="RUN", help="MLflow run id or run folder")),
    "runs": (("runs",), dict(nargs="+", metavar="RUN_OR_EXPERIMENT",
                             help="run ids, experiment names or protocol names")),
}


def common(p: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the shared options ``names`` to ``p``; ``helps`` gives an option a help text of its own."""
    for name in names:
        flags, kw = COMMON[name]
        p.add_argument(*flags, **{**kw, **({"help": helps[name]} if name in helps else {})})


# --------------------------------------------------------------------------- the parser, one builder per group


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganbench", description="Train reference GANs under fixed protocols and measure them.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_sweep, _add_reproduce, _add_reevaluate, _add_data, _add_lookup, _add_eval, _add_report, _add_gate,
                _add_use, _add_card):
        add(sub)
    return p


def _add_run(sub) -> None:
    r = sub.add_parser("run", help="train and evaluate a protocol's models and seeds")
    r.add_argument("--protocol", required=True, help="protocol name (see `ganbench list`) or path to a .toml file")
    r.add_argument("--models", nargs="+", help="only these models of the protocol")
    r.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: the protocol's)")
    common(r, "device")
    r.add_argument("--resume", action="store_true", help="continue each run from its last checkpoint")
    common(r, "tracking_uri", "data_root")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="override a model-card value for this run, e.g. tricks.ema=0.999, optim_d.lr=4e-4, n_critic=5 "
                        "(repeatable; the protocol hash follows)")
    r.add_argument("--stop-on", choices=("failure", "warning"),
                   help="end a run early (status stopped, artifacts kept) when a health finding of this severity starts")
    r.add_argument("--plain", action="store_true",
                   help="train on the plain path instead of the fast one (same losses up to float rounding; slower)")
    r.add_argument("--concurrent-seeds", action="store_true",
                   help="train each model's seeds together in one process, batched (fills a GPU that one small "
                        "GAN leaves idle); each seed stays its own MLflow run, with the losses it has alone up to "
                        "float rounding")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per run (default: GANBENCH_THREADS, else the cores shared evenly among the "
                        "ganbench runs alive on this machine, so that concurrent runs do not oversubscribe them)")


def _add_sweep(sub) -> None:
    sw = sub.add_parser("sweep", help="run a grid of protocols x models x seeds here or on a Ray cluster; finished "
                                      "cells are skipped, killed ones continued")
    sw.add_argument("--protocol", required=True, nargs="+", dest="protocols", metavar="PROTOCOL",
                    help="protocol names (see `ganbench list`) or paths to .toml files")
    sw.add_argument("--models", nargs="+", help="only these models (default: each protocol's)")
    sw.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: each protocol's)")
    sw.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="local: one cell after another in this process (default); ray: one Ray task per cell "
                         "(per model and protocol with --concurrent-seeds)")
    sw.add_argument("--address", help="Ray cluster: ray://HOST:PORT (Ray Client, port 10001) or HOST:PORT (GCS, from "
                                      "a cluster node; default: RAY_ADDRESS, a cluster started here, else a new local one)")
    common(sw, "tracking_uri", "device",
           tracking_uri="MLflow tracking URI every cell logs to (a server, http://HOST:PORT, for a cluster of several "
                        "machines)",
           device="auto (a GPU per cell when there are GPUs), cpu, cuda (local executor: also cuda:N)")
    sw.add_argument("--max-retries", type=int, default=3, help="Ray: times a cell is retried when its worker dies (default 3)")
    sw.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs reserved by each cell (default 1)")
    common(sw, "data_root")
    sw.add_argument("--concurrent-seeds", action="store_true",
                    help="train the unfinished seeds of each model together, one task (one GPU) per model and "
                         "protocol; each seed stays its own cell and MLflow run (models that cannot batch their "
                         "seeds train them one after another)")
    common(sw, "json", json="machine-readable summary")


def _add_reproduce(sub) -> None:
    rp = sub.add_parser("reproduce", help="run every cell of the published reports not done yet (finished cells are "
                                          "skipped, killed ones continued), then render the reports")
    rp.add_argument("--tier", required=True, help="the set of cells: cpu (2 CPU cores) or gpu (one device), as "
                                                  "the tiers file names them")
    rp.add_argument("--plan", action="store_true",
                    help="print each cell's state (finished, diverged, interrupted, todo) and estimated time, run nothing")
    rp.add_argument("--out", default="reports", help="where the reports go (default: reports)")
    rp.add_argument("--no-render", action="store_true", help="run the cells, render nothing")
    rp.add_argument("--tiers", metavar="FILE", help="the tiers file (default: the repository's reports/tiers.toml)")
    common(rp, "tracking_uri", "device", "data_root")
    rp.add_argument("--concurrent-seeds", action=argparse.BooleanOptionalAction, default=None,
                    help="train each model's seeds together in one process (default: as each entry of the tiers "
                         "file says; the gpu tier does)")


def _add_reevaluate(sub) -> None:
    re_ = sub.add_parser("reevaluate", help="measure finished runs again under their protocol's current evaluation "
                                            "(a metric added, other weights): the final weights, nothing trained")
    re_.add_argument("--protocol", required=True, help="protocol name or .toml path")
    re_.add_argument("--models", nargs="+", help="only these models (default: the protocol's)")
    re_.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: the protocol's)")
    common(re_, "tracking_uri", "device", "data_root")


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="fetch or verify datasets and weights")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download/extract what is missing into the cache (pinned by SHA-256)")
    f.add_argument("names", nargs="*", help=f"what to fetch (default: all): {', '.join(DATA_NAMES)}")
    v = dsub.add_parser("verify", help="re-check cached files against their pinned hashes")
    v.add_argument("names", nargs="*", help=f"what to verify (default: all): {', '.join(DATA_NAMES)}")
    common(v, "data_root")
    t = dsub.add_parser("train-domain", help="train a domain classifier anew into a folder (use it with "
                                             "GANBENCH_DOMAIN_WEIGHTS=FOLDER: a new identity); ganbench ships them")
    t.add_argument("dataset", help="mnist or fashion-mnist")
    t.add_argument("--out", required=True, metavar="FOLDER", help="where domain-<dataset>.pt is written")
    common(t, "data_root")


def _add_lookup(sub) -> None:
    """``list``, ``show`` and ``diagnose``: what exists, and what a run holds."""
    ls = sub.add_parser("list", help="list protocols and zoo models")
    ls.add_argument("--protocols", action="store_true", help="protocols only")
    ls.add_argument("--models", action="store_true", help="models only (with their cards)")
    s = sub.add_parser("show", help="show one MLflow run: status, parameters, metrics, artifacts")
    s.add_argument("run_id")
    common(s, "tracking_uri", "json")
    dg = sub.add_parser("diagnose", help="training-health findings of a run, or of a training loop's own logs: what "
                                         "went wrong, when, and what to try")
    dg.add_argument("run_id", metavar="RUN_OR_LOG",
                    help="an MLflow run id (a ganbench run, or any run that logged D and G losses), a run folder, "
                         "or a .csv / .parquet file of per-step values")
    dg.add_argument("--map", dest="mapping", action="append",
                    help="the log's name of a signal: d_loss=lossD,g_loss=lossG,d_real=D_x,... (the usual names, "
                         "e.g. the PyTorch tutorial's errD/errG/D_x/D_G_z1/D_G_z2, are found without it)")
    common(dg, "json", "tracking_uri")


def _add_eval(sub) -> None:
    ev = sub.add_parser("eval", help="measure samples or a generator checkpoint under a protocol's evaluation")
    ev.add_argument("--protocol", required=True, help="protocol name or path to a .toml file")
    ev.add_argument("--samples", help="an .npz or .npy (uint8 [0, 255], or float with --range; NCHW/NHWC) or a folder "
                                      "of .png images")
    ev.add_argument("--range", choices=tuple(RANGES), dest="value_range",
                    help="the value range of float pixels: 0,1 | -1,1 | 0,255 (needed unless a negative value shows "
                         "the floats are in [-1, 1]; uint8 pixels are always [0, 255])")
    ev.add_argument("--generator", help="module:function returning the generator (a torch.nn.Module)")
    ev.add_argument("--checkpoint", help="generator weights: torch state_dict (loaded weights_only) or .safetensors")
    ev.add_argument("--z-dim", type=int, default=100, help="latent size of the generator (default 100)")
    ev.add_argument("--name", help="label of the MLflow run, the model's name on boards and baselines (default: external)")
    ev.add_argument("--seed", type=int, help="the training seed of the generator measured (tells a baseline's "
                                             "replicates apart)")
    common(ev, "device", "tracking_uri")
    ev.add_argument("--no-track", action="store_true", help="print the results without logging an MLflow run")
    common(ev, "json", "data_root")


def _add_report(sub) -> None:
    """``report`` and ``compare``: leaderboards of tracked runs."""
    rep = sub.add_parser("report", help="render the leaderboard of a protocol: reports/<protocol>/index.html + README.md")
    rep.add_argument("--protocol", required=True, help="protocol name or .toml file whose tracked runs to report")
    rep.add_argument("--out", default="reports", help="output folder (default: reports)")
    common(rep, "tracking_uri")
    pub = sub.add_parser("publish", help="render every listed protocol's report, the index reports/README.md and the "
                                         "DCGAN vs WGAN-GP stability page; protocols without runs are listed as skipped")
    pub.add_argument("protocols", nargs="*", help="protocol names or .toml files (default: every protocol of the catalogue)")
    pub.add_argument("--out", default="reports", help="output folder (default: reports; literature.toml is read from it)")
    common(pub, "tracking_uri")
    cmp_ = sub.add_parser("compare", help="two models side by side: metric deltas, Welch's t-test over seeds, stability, verdict")
    cmp_.add_argument("model_a")
    cmp_.add_argument("model_b")
    cmp_.add_argument("--protocol", required=True, help="protocol name whose runs to compare (the newest hash with both models)")
    common(cmp_, "tracking_uri")


def _add_gate(sub) -> None:
    """``check`` and ``baseline``: the quality regression gate."""
    chk = sub.add_parser("check", help="quality regression gate: exit 1 when a metric is worse than the baseline's spread allows")
    common(chk, "runs")
    chk.add_argument("--baseline", required=True, help="baseline JSON (see `ganbench baseline save`)")
    chk.add_argument("--confidence", type=float, help="one-sided confidence of the gate (default: the baseline's)")
    chk.add_argument("--allow-protocol-change", action="store_true",
                     help="gate runs made under another identity than the baseline's (changed budget, model card or "
                          "weights); the result says what changed")
    common(chk, "tracking_uri")
    bl = sub.add_parser("baseline", help="quality baselines for `ganbench check`")
    blsub = bl.add_subparsers(dest="baseline_command", required=True)
    bls = blsub.add_parser("save", help="write a baseline from finished runs of one protocol hash")
    common(bls, "runs")
    bls.add_argument("--out", required=True, help="baseline JSON to write, e.g. baselines/<protocol>.json")
    bls.add_argument("--confidence", type=float, default=0.99, help="one-sided confidence stored with the baseline")
    bls.add_argument("--model", dest="models", action="append",
                     help="only this model's runs (repeatable), e.g. the --name of your `ganbench eval` runs")
    common(bls, "tracking_uri")
    blm = blsub.add_parser("migrate", help="rewrite a format-1 baseline (one protocol hash) with per-model identities, "
                                           "after checking its hash still holds")
    blm.add_argument("path", help="baseline JSON to rewrite in place")


def _add_use(sub) -> None:
    """``sample``, ``style-mix`` and ``interpolate``: pictures from a trained run's generator."""
    sm = sub.add_parser("sample", help="a PNG grid (and optionally .npz) of samples of a trained run's generator")
    common(sm, "run")
    sm.add_argument("--n", type=int, default=64, help="number of samples (default 64; grid of ceil(sqrt(n)) columns)")
    sm.add_argument("--label", type=int, help="class of every sample (conditional models; default: classes in turn)")
    sm.add_argument("--seed", type=int, help="seed of z (default: the protocol's fixed z, as in the run's grids)")
    common(sm, "ema")
    sm.add_argument("--npz", action="store_true", help="also write the uint8 images (and labels) beside the PNG")
    sm.add_argument("--out", help="PNG path (default: <run folder>/samples/sample_seed<S>[_label<L>].png)")
    common(sm, "device_cpu", "tracking_uri")
    sm.add_argument("--truncation", type=float, metavar="PSI",
                    help="truncation trick psi (style-based generators: w = w_avg + psi (w - w_avg); 1 = off)")
    smx = sub.add_parser("style-mix", help="style-mixing grid of a style-based generator: rows give coarse styles, "
                                           "columns fine ones")
    common(smx, "run")
    smx.add_argument("--rows", type=int, default=4, help="sources of the coarse styles (default 4)")
    smx.add_argument("--cols", type=int, default=6, help="sources of the fine styles (default 6)")
    smx.add_argument("--seed", type=int, default=0, help="seed of the rows' and columns' z (default 0)")
    smx.add_argument("--cutoff", type=int, help="style inputs taken from the row (default: the layers up to 8x8)")
    smx.add_argument("--truncation", type=float, metavar="PSI", help="truncate every w first (1 = off)")
    common(smx, "ema")
    smx.add_argument("--out", help="PNG path (default: <run folder>/samples/style_mix_seed<S>_cut<K>.png)")
    common(smx, "device_cpu", "tracking_uri")
    ip = sub.add_parser("interpolate", help="spherical interpolation between random latent pairs: one grid row per pair")
    common(ip, "run")
    ip.add_argument("--pairs", type=int, default=8, help="number of (z0, z1) pairs: grid rows (default 8)")
    ip.add_argument("--steps", type=int, default=10, help="interpolation steps from z0 to z1: grid columns (default 10)")
    ip.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    common(ip, "ema")
    ip.add_argument("--label", type=int, help="class of every row (conditional models; default: classes in turn)")
    ip.add_argument("--out", help="PNG path (default: <run folder>/samples/interpolate_seed<S>[_label<L>].png)")
    common(ip, "device_cpu", "tracking_uri")


def _add_card(sub) -> None:
    cd = sub.add_parser("card", help="write measured results into zoo cards: [results.<protocol>] from finished runs")
    cd.add_argument("models", nargs="+", metavar="MODEL", help="zoo model names")
    cd.add_argument("--protocol", required=True, help="protocol name whose finished runs to summarise (newest hash)")
    cd.add_argument("--zoo-dir", help="folder of the cards to update (default: where `ganbench list` finds them)")
    common(cd, "tracking_uri")


# --------------------------------------------------------------------------- subcommands: parse -> call -> print


def cmd_eval(args) -> int:
    out = eval_protocol(args.protocol, args.samples, args.generator, args.checkpoint, args.z_dim, args.device,
                        args.tracking_uri, args.name, not args.no_track, args.data_root,
                        value_range=RANGES[args.value_range] if args.value_range else None, seed=args.seed)
    if args.json:
        print(json.dumps({"run_id": out.run_id, "eval_time_s": out.eval_time_s, "source": out.source,
                          "results": {k: dataclasses.asdict(r) for k, r in out.results.items()}}, indent=2))
        return 0
    for r in out.results.values():
        if r.value is None:
            print(f"{r.name:28s} unavailable: {r.unavailable}")
            continue
        std = f" ± {r.std:.4g}" if r.std is not None else ""
        floor = f"   (real-vs-real floor {r.floor:.4g})" if r.floor is not None else ""
        print(f"{r.name:28s} {r.value:.6g}{std}{floor}")
    print(f"evaluated {out.source} in {out.eval_time_s:.1f}s" + (f"; MLflow run {out.run_id}" if out.run_id else ""))
    return 0


def cmd_diagnose(args) -> int:
    diag = api.diagnose(args.run_id, map=",".join(args.mapping or []) or None, tracking_uri=args.tracking_uri).diagnosis
    print(json.dumps(diag.to_dict(), indent=2, sort_keys=True) if args.json else format_report(diag, f"run {args.run_id}  "))
    return 0


def cmd_run(args) -> int:
    outcomes = run_protocol(args.protocol, args.models, args.seeds, args.device, args.resume,
                            args.tracking_uri, args.data_root, progress=True, stop_on=args.stop_on,
                            overrides=parse_overrides(args.overrides), fast=not args.plain,
                            together=args.concurrent_seeds, threads=args.threads)
    for o in outcomes:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in o.metrics.items()
                          if not k.startswith(RUN_BOOKKEEPING) and not k.endswith(("_std", "_floor")))
        print(f"{o.model:10s} seed {o.seed}  {o.status:9s} run {o.run_id}  {shown}")
        if o.message:
            print(f"    {o.message}")
        print(f"    artifacts: {o.run_dir}")
    if outcomes:
        print(where_to_look(args.protocol, outcomes, args.tracking_uri))
    return 0 if all(o.status == "finished" for o in outcomes) else 1


def where_to_look(protocol: str, outcomes, tracking_uri: str | None) -> str:
    """Where a run's pictures and numbers are: the newest grid of each run, the report command, the MLflow UI."""
    lines = ["where to look:"]
    for o in outcomes:
        pictures = sorted(o.run_dir.glob("grids/*.png")) or sorted(o.run_dir.glob("scatter/*.png"))
        if pictures:
            lines.append(f"  {o.model} seed {o.seed}, last grid: {pictures[-1]}")
    lines.append(f"  leaderboard: ganbench report --protocol {protocol}  (writes reports/<protocol>/index.html)")
    uri = track.tracking_uri(tracking_uri)
    ui = f"mlflow ui --backend-store-uri {shlex.quote(uri)}  (then open http://127.0.0.1:5000)" \
        if track.sqlite_path(uri) is not None else uri
    lines.append(f"  MLflow UI: {ui}")
    return "\n".join(lines)


def _show_cell(args):
    """The sweep's ``on_cell``: one line per finished cell, unless the summary is JSON."""
    return None if args.json else lambda c: print(f"{c.cell}: {c.status} ({c.action}) run {c.run_id or '-'}", flush=True)


def cmd_sweep(args) -> int:
    result = sweep(args.protocols, args.models, args.seeds, args.executor, args.address, args.tracking_uri,
                   args.device, args.data_root, args.max_retries, args.cpus_per_task, progress=not args.json,
                   on_cell=_show_cell(args), concurrent_seeds=args.concurrent_seeds)
    print(to_json(result) if args.json else "\n" + result.table())
    return 0 if result.ok else 1


def cmd_reproduce(args) -> int:
    out = api.reproduce(args.tier, plan_only=args.plan, out=args.out, render=not args.no_render, tiers=args.tiers,
                        tracking_uri=args.tracking_uri, device=args.device, concurrent_seeds=args.concurrent_seeds,
                        data_root=args.data_root, say=lambda line: print(line, flush=True))
    if out.result is None:
        print(out.plan.table())
        return 0
    print("\n" + out.result.sweep.table())
    for protocol, path in out.reports.items():
        print(f"report {protocol}: {path}")
    for protocol, why in out.unrendered.items():
        print(f"no report for {protocol}: {why}")
    return 0 if out.result.ok else 1


def cmd_reevaluate(args) -> int:
    done = api.reevaluate(args.protocol, models=args.models, seeds=args.seeds, device=args.device,
                          tracking_uri=args.tracking_uri, data_root=args.data_root,
                          say=lambda line: print(line, flush=True))
    again = sum(d.action == "re-evaluated" for d in done)
    print(f"{len(done)} finished runs: {again} re-evaluated, {len(done) - again} already current")
    return 0


def cmd_data(args) -> int:
    if args.data_command == "train-domain":
        path = api.train_domain_classifier(args.dataset, args.out, args.data_root)
        print(f"wrote {path}; use it with GANBENCH_DOMAIN_WEIGHTS={path.parent} (a new identity for what it measures)")
        return 0
    if args.data_command == "verify":
        for checks in api.verify_data(args.names, args.data_root):  # every file printed, then an error for bad ones
            print("\n".join(c.line() for c in checks), flush=True)
        return 0
    for line in api.fetch_data(args.names):
        print(line)
    return 0


def cmd_list(args) -> int:
    both = not (args.protocols or args.models)
    if args.protocols or both:
        print("protocols:")
        for p in api.protocols():
            print(f"  {p.name:20s} {p.data.dataset}, {p.train.epochs} epochs, batch {p.train.batch_size}, "
                  f"models {', '.join(p.models)}, seeds {list(p.seeds)}, eval {p.eval.num_samples} samples")
    if args.models or both:
        print("models:")
        for m in api.models():
            print(f"  {m.name:20s} loss {m.loss.name}, G {m.generator.arch}, D {m.discriminator.arch}, n_critic {m.n_critic}")
            if args.models:
                print(f"      paper: {m.paper}")
                lines = format_results(m.results) or ["(not measured yet)"]
                print(f"      results: {lines[0]}" + "".join(f"\n               {x}" for x in lines[1:]))
    return 0


def cmd_show(args) -> int:
    info = api.show(args.run_id, tracking_uri=args.tracking_uri)
    if args.json:
        print(json.dumps({f.name: getattr(info, f.name) for f in dataclasses.fields(info)}, indent=2, sort_keys=True))
        return 0
    print(f"run {info.run_id} ({info.name}): {info.status}")
    for k, v in sorted(info.tags.items()):
        print(f"  {k}: {v.splitlines()[0] if v else v}")
    print("metrics:")
    for k, v in sorted(info.metrics.items()):
        print(f"  {k:24s} {v:.6g}")
    print("artifacts:")
    for a in info.artifacts:
        print(f"  {a}")
    return 0


def cmd_report(args) -> int:
    board = api.report(args.protocol, out=args.out, tracking_uri=args.tracking_uri)
    print(f"{board.html}\n{board.markdown}")
    return 0


def cmd_publish(args) -> int:
    done = api.publish(args.protocols or None, out=args.out, tracking_uri=args.tracking_uri)
    for rep in done.reports:
        print(f"{rep.protocol}: {rep.markdown}")
    if done.skipped:
        print(f"skipped (no tracked runs): {', '.join(done.skipped)}")
    print(f"index: {done.index}\nstability: {done.stability}")
    return 0


def cmd_compare(args) -> int:
    c = api.compare(args.protocol, args.model_a, args.model_b, tracking_uri=args.tracking_uri)
    head, rows = comparison_rows(c)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    print(f"{c.protocol} (hash {c.protocol_hash[:12]})")
    for row in [head, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    print()
    print(c.verdict)
    return 0


def cmd_check(args) -> int:
    result = check(args.runs, args.baseline, args.tracking_uri, args.confidence, args.allow_protocol_change)
    print(result.table())
    return 0 if result.ok else 1


def cmd_baseline(args) -> int:
    if args.baseline_command == "migrate":
        data = migrate_baseline(args.path)
        print(f"{args.path}: format {data['format']}, " + ", ".join(
            f"{m} identity {v['identity'][:12]}" for m, v in data["models"].items()))
        return 0
    data = save_baseline(args.runs, args.out, args.tracking_uri, args.confidence, args.models)
    seeds = ", ".join(f"{m} {len(v['seeds'])} seeds" for m, v in data["models"].items())
    print(f"wrote {args.out}: {data['protocol']} ({data['protocol_hash'][:12]}), {seeds}")
    return 0


def cmd_sample(args) -> int:
    out = sample(args.run, args.n, args.label, args.seed, args.ema, args.npz, args.out, args.tracking_uri, args.device,
                 truncation=args.truncation)
    print("\n".join(str(p) for p in (out.png, out.npz) if p is not None))
    return 0


def cmd_interpolate(args) -> int:
    out = interpolate(args.run, args.pairs, args.steps, args.seed, args.ema, args.label, args.out, args.tracking_uri,
                      args.device)
    print(out.png)
    return 0


def cmd_card(args) -> int:
    for u in update_cards(args.models, args.protocol, args.tracking_uri, args.zoo_dir):
        print(f"{u.path} [results.{u.protocol}]: {format_results({u.protocol: u.table})[0]}")
    return 0


def cmd_style_mix(args) -> int:
    out = style_mix(args.run, args.rows, args.cols, args.seed, args.cutoff, args.truncation, args.ema, args.out,
                    args.tracking_uri, args.device)
    print(out.png)
    return 0


HANDLERS = {"run": cmd_run, "sweep": cmd_sweep, "reproduce": cmd_reproduce, "reevaluate": cmd_reevaluate,
            "data": cmd_data, "list": cmd_list,
            "show": cmd_show, "diagnose": cmd_diagnose, "eval": cmd_eval, "report": cmd_report, "publish": cmd_publish,
            "compare": cmd_compare,
            "check": cmd_check, "baseline": cmd_baseline, "sample": cmd_sample, "interpolate": cmd_interpolate,
            "card": cmd_card, "style-mix": cmd_style_mix}


# --------------------------------------------------------------------------- interruption and the entry point


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a terminated run is marked "stopped" in MLflow, like Ctrl-C


def _range_values(argv: list[str]) -> list[str]:
    """``--range -1,1`` as ``--range=-1,1``: argparse takes a value that starts with '-' and is not a plain
    number for an option and would refuse the command."""
    out = []
    for i, a in enumerate(argv):
        if i > 0 and argv[i - 1] == "--range" and a in RANGES:
            out[-1] = f"--range={a}"
        else:
            out.append(a)
    return out


def command_line(argv: list[str]) -> str:
    return shlex.join(["ganbench", *argv])


def resume_command(argv: list[str]) -> str:
    """The command that continues an interrupted ``ganbench run``: the same arguments and --resume (finished
    runs are left as they are, the interrupted one continues from its checkpoint, the others start)."""
    return command_line([*argv, *([] if "--resume" in argv else ["--resume"])])


def interrupted(command: str, argv: list[str]) -> str:
    """What to say when Ctrl-C (or SIGTERM) stops a command: how to go on."""
    if command == "run":
        return ("interrupted; each run keeps its last checkpoint (MLflow status KILLED, ganbench.status stopped). "
                f"Resume with:\n  {resume_command(argv)}")
    if command in ("sweep", "reproduce"):
        return f"interrupted; run the same command again to continue the {command}:\n  {command_line(argv)}"
    return "interrupted"


def main(argv: list[str] | None = None) -> int:
    from_shell = argv is None
    argv = _range_values(list(sys.argv[1:] if from_shell else argv))
    args = build_parser().parse_args(argv)
    if from_shell:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        if getattr(args, "data_root", None):  # a mistyped folder is an error before any work starts
            check_data_root(args.data_root)
        return HANDLERS[args.command](args)
    except GanbenchError as err:
        print(f"ganbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nganbench: {interrupted(args.command, argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
