"""The ``ganbench`` command. Subcommands are thin: parse the arguments, call one function of ``ganbench.api``,
print what it returns. Errors of the library name its parameters (``executor='ray'``); the command says them in
its own options (``--executor ray``).

Exit codes: 0 success, 1 a run failed or diverged, 2 usage errors (bad arguments, unknown names,
invalid files, missing data), printed without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import signal
import sys
from collections.abc import Mapping

from ganbench import api

DATA_NAMES = api.DATA_NAMES
RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}  # `eval --range`: float pixel encodings
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
RUN_BOOKKEEPING = ("last_step_", "images_seen", "epochs_done", "eval_time_s", "replayed_steps")  # not shown by `run`

# --------------------------------------------------------------------------- options shared by subcommands

DEVICE_AUTO = "auto (CUDA when available), cpu, cuda, cuda:N"
DEVICE_CPU = dict(default="cpu", help="cpu, cuda, cuda:N (default cpu)")  # pictures of a run: `sample`, `style-mix`, ...
OPTIONS = {  # option -> (flags, argparse keywords): every option of several subcommands, defined here once
    "protocol": (("--protocol",), dict(required=True, help="protocol name (see `ganbench list`) or path to a .toml file")),
    "models": (("--models",), dict(nargs="+", help="only these models (default: the protocol's)")),
    "seeds": (("--seeds",), dict(nargs="+", type=int, help="only these seeds (default: the protocol's)")),
    "seed": (("--seed",), dict(type=int, help="seed of z")),
    "label": (("--label",), dict(type=int, help="class of every sample (conditional models; default: classes in turn)")),
    "truncation": (("--truncation",), dict(type=float, metavar="PSI", help="truncation trick psi (1 = off)")),
    "out": (("--out",), dict(default="reports", help="output folder (default: reports)")),
    "concurrent_seeds": (("--concurrent-seeds",), dict(action=argparse.BooleanOptionalAction, default=False, help=(
        "train each model's seeds together in one process, batched (fills a GPU that one small GAN leaves idle); "
        "each seed stays its own MLflow run, with the losses it has alone up to float rounding"))),
    "confidence": (("--confidence",), dict(type=float, help="one-sided confidence of the gate")),
    "tracking_uri": (("--tracking-uri",), dict(
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the embedded SQLite store)")),
    "data_root": (("--data-root",), dict(help="folder with dataset files (default: GANBENCH_DATA, then the cache)")),
    "json": (("--json",), dict(action="store_true", help="machine-readable output")),
    "device": (("--device",), dict(default="auto", help=DEVICE_AUTO)),
    "ema": (("--ema",), dict(action="store_true", help="use the EMA generator (models trained with tricks.ema > 0)")),
    "run": (("run",), dict(metavar="RUN", help="MLflow run id or run folder")),
    "runs": (("runs",), dict(nargs="+", metavar="RUN_OR_EXPERIMENT",
                             help="run ids, experiment names or protocol names")),
}


def common(p: argparse.ArgumentParser, *names: str, **changes: str | dict) -> None:
    """Add the options ``names`` to ``p`` as OPTIONS defines them. ``changes`` gives an option what differs in
    this subcommand: a help text (a string) or argparse keywords (a dict; a None there drops the shared one)."""
    assert set(changes) <= set(names), f"changes to options not added: {set(changes) - set(names)}"
    for name in names:
        flags, kw = OPTIONS[name]
        change = changes.get(name, {})
        kw = {**kw, **({"help": change} if isinstance(change, str) else change)}
        p.add_argument(*flags, **{k: v for k, v in kw.items() if v is not None})


def option_words(p: argparse.ArgumentParser) -> dict[str, str]:
    """The options of ``p`` that take a value, by the parameter they fill: ``{"max_retries": "--max-retries"}``
    (per command: ``sample``'s ``n=0`` is its ``--n 0``)."""
    return {a.dest: a.option_strings[-1] for a in p._actions  # argparse's list of the parser's arguments
            if a.option_strings and a.nargs != 0}


def in_command_words(message: str, words: Mapping[str, str]) -> str:
    """An error of the library said in the command's options: ``executor='ray'`` -> ``--executor ray`` for every
    option ``words`` names (the library's errors name its parameters, which the options fill)."""
    if not words:
        return message
    names = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    pattern = rf"(?<![\w.-])({names})=('[^']*'|\"[^\"]*\"|[^\s,;:()]+)"

    def option(m: re.Match) -> str:
        value = m.group(2)
        value = value[1:-1] if value[0] in "'\"" else value
        return f"{words[m.group(1)]} {shlex.quote(value)}"

    return re.sub(pattern, option, message)


# --------------------------------------------------------------------------- the parser, one builder per group


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganbench", description="Train reference GANs under fixed protocols and measure them.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_sweep, _add_reproduce, _add_reevaluate, _add_data, _add_lookup, _add_eval, _add_report, _add_gate,
                _add_use, _add_card):
        add(sub)
    for command in sub.choices.values():  # what an error of the library is said in (see ``in_command_words``)
        command.set_defaults(words=option_words(command))
    return p


def _add_run(sub) -> None:
    r = sub.add_parser("run", help="train and evaluate a protocol's models and seeds")
    common(r, "protocol", "models", "seeds", "device", models="only these models of the protocol")
    r.add_argument("--resume", action="store_true", help="continue each run from its last checkpoint")
    common(r, "tracking_uri", "data_root")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="override a model-card value for this run, e.g. tricks.ema=0.999, optim_d.lr=4e-4, n_critic=5 "
                        "(repeatable; the protocol hash follows)")
    r.add_argument("--stop-on", choices=("failure", "warning"),
                   help="end a run early (status stopped, artifacts kept) when a health finding of this severity starts")
    r.add_argument("--plain", action="store_true",
                   help="train on the plain path instead of the fast one (same losses up to float rounding; slower)")
    common(r, "concurrent_seeds")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per run (default: GANBENCH_THREADS, else the cores shared evenly among the "
                        "ganbench runs alive on this machine, so that concurrent runs do not oversubscribe them)")


def _add_sweep(sub) -> None:
    sw = sub.add_parser("sweep", help="run a grid of protocols x models x seeds here or on a Ray cluster; finished "
                                      "cells are skipped, killed ones continued")
    common(sw, "protocol", "models", "seeds",
           protocol=dict(nargs="+", dest="protocols", metavar="PROTOCOL",
                         help="protocol names (see `ganbench list`) or paths to .toml files"),
           models="only these models (default: each protocol's)", seeds="only these seeds (default: each protocol's)")
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
    common(sw, "data_root", "concurrent_seeds", "json", json="machine-readable summary",
           concurrent_seeds="train the unfinished seeds of each model together, one task (one GPU) per model and "
                            "protocol; each seed stays its own cell and MLflow run (models that cannot batch their "
                            "seeds train them one after another)")


def _add_reproduce(sub) -> None:
    rp = sub.add_parser("reproduce", help="run every cell of the published reports not done yet (finished cells are "
                                          "skipped, killed ones continued), then render the reports")
    rp.add_argument("--tier", required=True, help="the set of cells: cpu (2 CPU cores) or gpu (one device), as "
                                                  "the tiers file names them")
    rp.add_argument("--plan", action="store_true",
                    help="print each cell's state (finished, diverged, interrupted, todo) and estimated time, run nothing")
    common(rp, "out", out="where the reports go (default: reports)")
    rp.add_argument("--no-render", action="store_true", help="run the cells, render nothing")
    rp.add_argument("--tiers", metavar="FILE", help="the tiers file (default: the repository's reports/tiers.toml)")
    common(rp, "tracking_uri", "device", "data_root", "concurrent_seeds",
           concurrent_seeds=dict(default=None, help="train each model's seeds together in one process (default: as "
                                                    "each entry of the tiers file says; the gpu tier does)"))


def _add_reevaluate(sub) -> None:
    re_ = sub.add_parser("reevaluate", help="measure finished runs again under their protocol's current evaluation "
                                            "(a metric added, other weights): the final weights, nothing trained")
    common(re_, "protocol", "models", "seeds", "tracking_uri", "device", "data_root",
           protocol="protocol name or .toml path")


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
    common(t, "out", "data_root",
           out=dict(required=True, default=None, metavar="FOLDER", help="where domain-<dataset>.pt is written"))


def _add_lookup(sub) -> None:
    """``list``, ``show`` and ``diagnose``: what exists, and what a run holds."""
    ls = sub.add_parser("list", help="list protocols and zoo models")
    ls.add_argument("--protocols", action="store_true", help="protocols only")
    common(ls, "models", models=dict(action="store_true", nargs=None, help="models only (with their cards)"))
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
    common(ev, "protocol", protocol="protocol name or path to a .toml file")
    ev.add_argument("--samples", help="an .npz or .npy (uint8 [0, 255], or float with --range; NCHW/NHWC) or a folder "
                                      "of .png images")
    ev.add_argument("--range", choices=tuple(RANGES), dest="value_range",
                    help="the value range of float pixels: 0,1 | -1,1 | 0,255 (needed unless a negative value shows "
                         "the floats are in [-1, 1]; uint8 pixels are always [0, 255])")
    ev.add_argument("--generator", help="module:function returning the generator (a torch.nn.Module)")
    ev.add_argument("--checkpoint", help="generator weights: torch state_dict (loaded weights_only) or .safetensors")
    ev.add_argument("--z-dim", type=int, default=100, help="latent size of the generator (default 100)")
    ev.add_argument("--name", help="label of the MLflow run, the model's name on boards and baselines (default: external)")
    common(ev, "seed", "device", "tracking_uri",
           seed="the training seed of the generator measured (tells a baseline's replicates apart)")
    ev.add_argument("--no-track", action="store_true", help="print the results without logging an MLflow run")
    common(ev, "json", "data_root")


def _add_report(sub) -> None:
    """``report`` and ``compare``: leaderboards of tracked runs."""
    rep = sub.add_parser("report", help="render the leaderboard of a protocol: reports/<protocol>/index.html + README.md")
    common(rep, "protocol", "out", "tracking_uri", protocol="protocol name or .toml file whose tracked runs to report")
    pub = sub.add_parser("publish", help="render every listed protocol's report, the index reports/README.md and the "
                                         "DCGAN vs WGAN-GP stability page; protocols without runs are listed as skipped")
    pub.add_argument("protocols", nargs="*", help="protocol names or .toml files (default: every protocol of the catalogue)")
    common(pub, "out", "tracking_uri", out="output folder (default: reports; literature.toml is read from it)")
    cmp_ = sub.add_parser("compare", help="two models side by side: metric deltas, Welch's t-test over seeds, stability, verdict")
    cmp_.add_argument("model_a")
    cmp_.add_argument("model_b")
    common(cmp_, "protocol", "tracking_uri",
           protocol="protocol name whose runs to compare (the newest hash with both models)")


def _add_gate(sub) -> None:
    """``check`` and ``baseline``: the quality regression gate."""
    chk = sub.add_parser("check", help="quality regression gate: exit 1 when a metric is worse than the baseline's spread allows")
    common(chk, "runs")
    chk.add_argument("--baseline", required=True, help="baseline JSON (see `ganbench baseline save`)")
    common(chk, "confidence", confidence="one-sided confidence of the gate (default: the baseline's)")
    chk.add_argument("--allow-protocol-change", action="store_true",
                     help="gate runs made under another identity than the baseline's (changed budget, model card or "
                          "weights); the result says what changed")
    common(chk, "tracking_uri")
    bl = sub.add_parser("baseline", help="quality baselines for `ganbench check`")
    blsub = bl.add_subparsers(dest="baseline_command", required=True)
    bls = blsub.add_parser("save", help="write a baseline from finished runs of one protocol hash")
    common(bls, "runs", "out", "confidence",
           out=dict(required=True, default=None, help="baseline JSON to write, e.g. baselines/<protocol>.json"),
           confidence=dict(default=0.99, help="one-sided confidence stored with the baseline"))
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
    common(sm, "label", "seed", "ema", seed="seed of z (default: the protocol's fixed z, as in the run's grids)")
    sm.add_argument("--npz", action="store_true", help="also write the uint8 images (and labels) beside the PNG")
    common(sm, "out", "device", "tracking_uri", "truncation", device=DEVICE_CPU,
           out=dict(default=None, help="PNG path (default: <run folder>/samples/sample_seed<S>[_label<L>].png)"),
           truncation="truncation trick psi (style-based generators: w = w_avg + psi (w - w_avg); 1 = off)")
    smx = sub.add_parser("style-mix", help="style-mixing grid of a style-based generator: rows give coarse styles, "
                                           "columns fine ones")
    common(smx, "run")
    smx.add_argument("--rows", type=int, default=4, help="sources of the coarse styles (default 4)")
    smx.add_argument("--cols", type=int, default=6, help="sources of the fine styles (default 6)")
    common(smx, "seed", seed=dict(default=0, help="seed of the rows' and columns' z (default 0)"))
    smx.add_argument("--cutoff", type=int, help="style inputs taken from the row (default: the layers up to 8x8)")
    common(smx, "truncation", "ema", "out", "device", "tracking_uri", device=DEVICE_CPU,
           truncation="truncate every w first (1 = off)",
           out=dict(default=None, help="PNG path (default: <run folder>/samples/style_mix_seed<S>_cut<K>.png)"))
    ip = sub.add_parser("interpolate", help="spherical interpolation between random latent pairs: one grid row per pair")
    common(ip, "run")
    ip.add_argument("--pairs", type=int, default=8, help="number of (z0, z1) pairs: grid rows (default 8)")
    ip.add_argument("--steps", type=int, default=10, help="interpolation steps from z0 to z1: grid columns (default 10)")
    common(ip, "seed", "ema", "label", "out", "device", "tracking_uri", device=DEVICE_CPU,
           seed=dict(default=0, help="seed of the pairs (default 0)"),
           label="class of every row (conditional models; default: classes in turn)",
           out=dict(default=None, help="PNG path (default: <run folder>/samples/interpolate_seed<S>[_label<L>].png)"))


def _add_card(sub) -> None:
    cd = sub.add_parser("card", help="write measured results into zoo cards: [results.<protocol>] from finished runs")
    cd.add_argument("models", nargs="+", metavar="MODEL", help="zoo model names")
    common(cd, "protocol", protocol="protocol name whose finished runs to summarise (newest hash)")
    cd.add_argument("--zoo-dir", help="folder of the cards to update (default: where `ganbench list` finds them)")
    common(cd, "tracking_uri")


# --------------------------------------------------------------------------- subcommands: parse -> call -> print


def cmd_eval(args) -> int:
    res = api.evaluate_files(args.protocol, samples=args.samples, generator=args.generator, checkpoint=args.checkpoint,
                             z_dim=args.z_dim, device=args.device, data_root=args.data_root,
                             value_range=RANGES[args.value_range] if args.value_range else None,
                             track=not args.no_track, tracking_uri=args.tracking_uri, name=args.name, seed=args.seed)
    if args.json:
        print(json.dumps({"run_id": res.run_id, "eval_time_s": res.eval_time_s, "source": res.source,
                          "results": {k: dataclasses.asdict(r) for k, r in res.metrics.items()}}, indent=2))
        return 0
    for r in res.metrics.values():
        if r.value is None:
            print(f"{r.name:28s} unavailable: {r.unavailable}")
            continue
        std = f" ± {r.std:.4g}" if r.std is not None else ""
        floor = f"   (real-vs-real floor {r.floor:.4g})" if r.floor is not None else ""
        print(f"{r.name:28s} {r.value:.6g}{std}{floor}")
    print(f"evaluated {res.source} in {res.eval_time_s:.1f}s" + (f"; MLflow run {res.run_id}" if res.run_id else ""))
    return 0


def cmd_diagnose(args) -> int:
    diag = api.diagnose(args.run_id, map=",".join(args.mapping or []) or None, tracking_uri=args.tracking_uri).diagnosis
    print(json.dumps(diag.to_dict(), indent=2, sort_keys=True) if args.json
          else api.format_report(diag, f"run {args.run_id}  "))
    return 0


def cmd_run(args) -> int:
    runs = api.run(args.protocol, args.models, args.seeds, device=args.device, resume=args.resume,
                   tracking_uri=args.tracking_uri, data_root=args.data_root, progress=True, stop_on=args.stop_on,
                   overrides=api.parse_overrides(args.overrides), fast=not args.plain,
                   concurrent_seeds=args.concurrent_seeds, threads=args.threads)
    for r in runs:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in r.metrics.items()
                          if not k.startswith(RUN_BOOKKEEPING) and not k.endswith(("_std", "_floor")))
        print(f"{r.model:10s} seed {r.seed}  {r.status:9s} run {r.run_id}  {shown}")
        if r.message:
            print(f"    {r.message}")
        print(f"    artifacts: {r.run_dir}")
    if runs:
        print(where_to_look(args.protocol, runs, args.tracking_uri))
    return 0 if all(r.ok for r in runs) else 1


def where_to_look(protocol: str, runs: list[api.Run], tracking_uri: str | None) -> str:
    """Where a run's pictures and numbers are: the newest grid of each run, the report command, the MLflow UI."""
    lines = ["where to look:"]
    for r in runs:
        pictures = sorted(r.run_dir.glob("grids/*.png")) or sorted(r.run_dir.glob("scatter/*.png"))
        if pictures:
            lines.append(f"  {r.model} seed {r.seed}, last grid: {pictures[-1]}")
    lines.append(f"  leaderboard: ganbench report --protocol {protocol}  (writes reports/<protocol>/index.html)")
    lines.append(f"  MLflow UI: {api.mlflow_ui(tracking_uri)}")
    return "\n".join(lines)


def _show_cell(args):
    """The sweep's ``on_cell``: one line per finished cell, unless the summary is JSON."""
    return None if args.json else lambda c: print(f"{c.cell}: {c.status} ({c.action}) run {c.run_id or '-'}", flush=True)


def cmd_sweep(args) -> int:
    result = api.sweep(args.protocols, args.models, args.seeds, executor=args.executor, address=args.address,
                       device=args.device, tracking_uri=args.tracking_uri, data_root=args.data_root,
                       max_retries=args.max_retries, cpus_per_task=args.cpus_per_task,
                       concurrent_seeds=args.concurrent_seeds, progress=not args.json, on_cell=_show_cell(args))
    print(api.sweep_json(result) if args.json else "\n" + result.table())
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
                lines = api.format_results(m.results) or ["(not measured yet)"]
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
    head, rows = api.comparison_rows(c)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    print(f"{c.protocol} (hash {c.protocol_hash[:12]})")
    for row in [head, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    print()
    print(c.verdict)
    return 0


def cmd_check(args) -> int:
    result = api.check(args.runs, args.baseline, confidence=args.confidence, tracking_uri=args.tracking_uri,
                       allow_protocol_change=args.allow_protocol_change)
    print(result.table())
    return 0 if result.ok else 1


def cmd_baseline(args) -> int:
    if args.baseline_command == "migrate":
        data = api.migrate_baseline(args.path)
        print(f"{args.path}: format {data['format']}, " + ", ".join(
            f"{m} identity {v['identity'][:12]}" for m, v in data["models"].items()))
        return 0
    data = api.save_baseline(args.runs, args.out, model=args.models, confidence=args.confidence,
                             tracking_uri=args.tracking_uri)
    seeds = ", ".join(f"{m} {len(v['seeds'])} seeds" for m, v in data["models"].items())
    print(f"wrote {args.out}: {data['protocol']} ({data['protocol_hash'][:12]}), {seeds}")
    return 0


def cmd_sample(args) -> int:
    out = api.sample(args.run, args.n, label=args.label, seed=args.seed, ema=args.ema, npz=args.npz, out=args.out,
                     truncation=args.truncation, device=args.device, tracking_uri=args.tracking_uri)
    print("\n".join(str(p) for p in (out.png, out.npz) if p is not None))
    return 0


def cmd_interpolate(args) -> int:
    out = api.interpolate(args.run, args.pairs, args.steps, seed=args.seed, ema=args.ema, label=args.label,
                          out=args.out, device=args.device, tracking_uri=args.tracking_uri)
    print(out.png)
    return 0


def cmd_card(args) -> int:
    for u in api.update_cards(args.models, args.protocol, zoo_dir=args.zoo_dir, tracking_uri=args.tracking_uri):
        print(f"{u.path} [results.{u.protocol}]: {api.format_results({u.protocol: u.table})[0]}")
    return 0


def cmd_style_mix(args) -> int:
    out = api.style_mix(args.run, args.rows, args.cols, seed=args.seed, cutoff=args.cutoff,
                        truncation=args.truncation, ema=args.ema, out=args.out, device=args.device,
                        tracking_uri=args.tracking_uri)
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
            api.check_data_root(args.data_root)
        return HANDLERS[args.command](args)
    except api.GanbenchError as err:
        print(f"ganbench: error: {in_command_words(str(err), args.words)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nganbench: {interrupted(args.command, argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
