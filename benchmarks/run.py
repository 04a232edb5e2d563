"""Benchmark `detect` end to end and by stage, against a plain MONAI sliding window and a peer detector.

    python benchmarks/run.py [--device cpu|cuda] [--quick] [--big] [--out FILE.json] [--only TEXT ...]

Every measured configuration runs in a fresh process (benchmarks/worker.py), so peak memory (VmHWM) is its own;
configurations are interleaved and repeated, and each number is the median over the repeats (the machine may
be shared). Prints tables and writes everything as JSON (default benchmarks/out/results.json).

Inputs: a synthetic CT-like 512×512×300 volume at 0.7×0.7×1.25 mm (``--quick``: 256×256×120; ``--big`` adds
512×512×600 for the memory bound) and, when ``../shared/data`` exists, a real BraTS FLAIR and a real whole-torso
CT. Networks and the peer: see benchmarks/nets.py. The peer (MONAI RetinaNet) needs torchvision; give an
interpreter that has it with ``--peer-python`` (default: this one), otherwise it is reported as not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from cases import Case, real_cases, synthetic_ct_case
from nets import NETWORKS

HERE = Path(__file__).resolve().parent

OUT = HERE / "out"
STAGES = ("read", "resample", "network", "stitching", "resample back", "post-processing", "writing", "end to end")
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}  # what LesionDetectLib.infer sets before torch loads
DEFAULT_OMP: dict[str, str | None] = {"OMP_WAIT_POLICY": None}  # OpenMP's own default (spinning waits)


@dataclass
class Config:
    """One measured configuration (a worker's JSON input plus how to run it)."""

    label: str
    kind: str
    device: str
    repeats: int = 1
    network: str | None = None
    case: str | None = None
    path: str | None = None
    modality: str | None = None
    variant: str | None = None
    env: dict[str, str | None] = field(default_factory=lambda: dict(PASSIVE))
    python: str = sys.executable
    extra: dict = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)

    def worker_input(self, repeat: int) -> dict:
        out_dir = OUT / "runs" / self.label.replace(" ", "_").replace("/", "-") / str(repeat)
        return {"kind": self.kind, "device": self.device, "network": self.network, "path": self.path,
                "modality": self.modality, "variant": self.variant, "out_dir": str(out_dir),
                "keep_probability": repeat == 0, **self.extra}


def has_torchvision(python: str) -> bool:
    done = subprocess.run([python, "-c", "import torchvision"], capture_output=True)
    return done.returncode == 0


def plan(args: argparse.Namespace) -> list[Config]:
    """The configurations of this run (see the module docstring)."""
    device, quick = args.device, args.quick
    ct = synthetic_ct_case((120, 256, 256) if quick else (300, 512, 512))
    configs = [Config("peak", "peak", device, repeats=1 if quick else 2)]
    configs += [Config(f"window {name}", "window", device, network=name, path=str(ct.path),
                       extra={"repeats": 5 if name == "unet-recipe" else 1 if quick else 3})
                for name in ("unet-recipe", "basicunet")]
    if not quick:
        configs += [Config(f"window {name} bf16", "window", device, network=name, extra={"repeats": 3, "bf16": True})
                    for name in ("unet-recipe", "basicunet")]
    if not quick and has_torchvision(args.peer_python):
        configs.append(Config("window retinanet-peer", "window", device, network="retinanet-peer",
                              python=args.peer_python, path=str(ct.path),
                              extra={"repeats": 1, "warmup": 0, "flop_patch_divisor": 2}))
        if Path(args.peer_python).absolute() != Path(sys.executable).absolute():  # (a venv's python is a link)
            configs.append(Config("window basicunet (peer python)", "window", device, network="basicunet",
                                  python=args.peer_python, path=str(ct.path), extra={"repeats": 3}))
    repeats = 1 if quick else args.repeats
    if quick:
        return configs + pipelines(ct, "unet-recipe", ("lesiondetect", "no-skip", "monai-plain"), 1, device)
    configs += pipelines(ct, "unet-recipe", ("lesiondetect", "monai-plain", "monai-plain passive"), repeats, device)
    configs += pipelines(ct, "basicunet", ("lesiondetect", "monai-plain passive"), 1, device)
    for case in real_cases():
        configs += pipelines(case, "unet-recipe", ("lesiondetect", "monai-plain passive"), repeats, device)
    if args.big:
        configs += pipelines(synthetic_ct_case((600, 512, 512)), "unet-recipe", ("lesiondetect",), 1, device)
    return configs


def pipelines(case: Case, network: str, variants, repeats: int, device: str) -> list[Config]:
    """Pipeline configurations of ``case`` × ``network`` × ``variants`` ("… passive": with passive OpenMP)."""
    configs = []
    for variant in variants:
        name, _, passive = variant.partition(" ")
        env = PASSIVE if passive or name != "monai-plain" else DEFAULT_OMP
        configs.append(Config(f"{case.name} / {network} / {variant}", "pipeline", device, repeats, network, case.name,
                              str(case.path), case.modality, name, dict(env)))
    return configs


def run_worker(config: Config, repeat: int, timeout: float) -> dict:
    """One run of ``config`` in a fresh process; its JSON result, or ``{"error": …}``."""
    env = {**os.environ}
    for key, value in config.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    command = [config.python, str(HERE / "worker.py"), json.dumps(config.worker_input(repeat))]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_all(configs: list[Config], timeout: float) -> None:
    """Run every configuration ``repeats`` times, interleaved (so that load changes hit all alike)."""
    for repeat in range(max(config.repeats for config in configs)):
        for config in configs:
            if repeat < config.repeats:
                start = time.perf_counter()
                config.results.append(run_worker(config, repeat, timeout))
                print(f"  [{time.perf_counter() - start:6.1f} s] {config.label} (run {repeat + 1}/{config.repeats})",
                      file=sys.stderr, flush=True)


def median_of(results: list[dict], *keys: str) -> float | None:
    values = []
    for result in results:
        value = result
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def summarise_pipeline(config: Config) -> dict:
    ok = [r for r in config.results if "error" not in r]
    summary = {"label": config.label, "case": config.case, "network": config.network, "variant": config.variant,
               "omp_wait_policy": config.env.get("OMP_WAIT_POLICY") or "default", "repeats": len(ok),
               "errors": [r["error"] for r in config.results if "error" in r]}
    if not ok:
        return summary
    seconds = {stage: median_of(ok, "seconds", stage) for stage in STAGES}
    first = ok[0]
    summary.update(
        seconds=seconds, all_end_to_end=[r["seconds"]["end to end"] for r in ok], import_seconds=median_of(ok, "seconds", "import"),
        input_voxels=first["input_voxels"], model_grid=first["model_grid"], model_voxels=first["model_voxels"],
        input_voxels_per_second=first["input_voxels"] / seconds["end to end"],
        model_voxels_per_network_second=first["model_voxels"] / seconds["network"] if seconds["network"] else None,
        patches_run=first["patches_run"], lesions=first["lesions"], threads=first["threads"],
        peak_rss_bytes=max(r["peak_rss_bytes"] for r in ok),
        peak_gpu_bytes=max((r["peak_gpu_bytes"] or 0) for r in ok) if first["peak_gpu_bytes"] is not None else None,
        run_dir=config.worker_input(0)["out_dir"],
    )
    return summary


def summarise_window(config: Config, peak_flops: float | None) -> dict:
    ok = [r for r in config.results if "error" not in r]
    summary = {"label": config.label, "network": config.network, "description": NETWORKS[config.network].description,
               "errors": [r["error"] for r in config.results if "error" in r]}
    if not ok:
        return summary
    result = ok[0]
    flop_rate = result["flops_per_voxel"] * float(np.prod(result["patch_size"])) / result["seconds_per_window"]
    summary.update(result, flops_per_second=flop_rate,
                   fraction_of_peak=flop_rate / peak_flops if peak_flops else None)
    if "ct_windows" in result:
        summary["ct_network_seconds_estimate"] = result["seconds_per_window"] * result["ct_windows"]
    return summary


def with_flop_rate(pipeline: dict, windows: list[dict], peak_flops: float | None) -> dict:
    """Add the network stage's FLOP/s (counted FLOPs of the patches run) and its share of the peak."""
    counted = next((w for w in windows if w.get("label") == f"window {pipeline['network']}" and "flops_per_voxel" in w),
                   None)
    if counted is None or "seconds" not in pipeline or not pipeline["seconds"]["network"]:
        return pipeline
    flops = counted["flops_per_voxel"] * float(np.prod(counted["patch_size"])) * pipeline["patches_run"]
    rate = flops / pipeline["seconds"]["network"]
    return {**pipeline, "network_flops": flops, "network_flops_per_second": rate,
            "network_flops_per_model_voxel": flops / pipeline["model_voxels"],
            "network_fraction_of_peak": rate / peak_flops if peak_flops else None}


def compare(pipelines: list[dict]) -> list[dict]:
    """Side-by-side ratios (baseline / LesionDetect) per case and network, and the outputs' agreement."""
    rows = []
    measured = [p for p in pipelines if "seconds" in p]
    for ours in measured:
        if ours["variant"] != "lesiondetect":
            continue
        case, network = ours["case"], ours["network"]
        for other in measured:
            if other["case"] != case or other["network"] != network or other is ours:
                continue
            rows.append({
                "case": case, "network": network, "baseline": f"{other['variant']} (OpenMP {other['omp_wait_policy']})",
                "end_to_end_ratio": other["seconds"]["end to end"] / ours["seconds"]["end to end"],
                "sliding_window_ratio": (other["seconds"]["network"] + other["seconds"]["stitching"])
                / (ours["seconds"]["network"] + ours["seconds"]["stitching"]),
                "patches": [ours["patches_run"], other["patches_run"]],
                **agreement(Path(ours["run_dir"]), Path(other["run_dir"])), "lesions": [ours["lesions"], other["lesions"]],
            })
    return rows


def agreement(ours: Path, other: Path) -> dict:
    """Largest probability difference on the model grid, inside the foreground and outside it."""
    try:
        a, b = np.load(ours / "model_probability.npy"), np.load(other / "model_probability.npy")
        mask = np.load(ours / "foreground.npy")
    except OSError:
        return {}
    difference = np.abs(a - b)
    outside = difference[~mask]
    return {"max_abs_diff_foreground": float(difference[mask].max(initial=0.0)),
            "max_abs_diff_background": float(outside.max(initial=0.0)),
            "foreground_fraction": float(mask.mean())}


def machine(device: str) -> dict:
    import monai
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    try:
        done = subprocess.run(["lscpu"], capture_output=True, text=True)
        for line in done.stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def print_tables(report: dict) -> None:
    print(f"\nMachine: {report['machine']}; load average (1, 5, 15 min) at start {report['load_average']['start']}, "
          f"at end {report['load_average']['end']}\nMeasured float32 peak: {report['peak_flops'] / 1e9:.1f} GFLOP/s "
          "(best of torch.mm 4096² and a 128-channel 3x3x3 convolution; per run: "
          + ", ".join(f"mm {r['matmul_best'] / 1e9:.0f} / conv {r['conv_best'] / 1e9:.0f}" for r in report["peak_runs"]
                      if "best" in r) + ")")
    print("\nNetworks alone (full patches; median s/window; CT est. = s/window x windows for the CT on its grid):")
    print(f"{'network':<32}{'torch':>14}{'patch':>12}{'s/window':>10}{'FLOP/voxel':>12}{'GFLOP/s':>9}"
          f"{'% peak':>8}{'CT est. s':>10}{'bf16 |dp|':>10}")
    for row in report["windows"]:
        if "seconds_per_window" not in row:
            print(f"{row['label']:<32} not measured: {row['errors']}")
            continue
        print(f"{row['label'][7:]:<32}{row['torch']:>14}{'x'.join(map(str, row['patch_size'])):>12}"
              f"{row['seconds_per_window']:>10.3f}{row['flops_per_voxel']:>12.0f}{row['flops_per_second'] / 1e9:>9.1f}"
              f"{100 * row['fraction_of_peak']:>8.1f}{row.get('ct_network_seconds_estimate', float('nan')):>10.1f}"
              f"{row.get('bf16_max_abs_probability_diff', float('nan')):>10.1e}")
    print("\nPipelines (median seconds per stage):")
    header = "".join(f"{s[:9]:>10}" for s in STAGES)
    print(f"{'configuration':<58}{header}{'Mvox/s':>8}{'patches':>8}{'net%pk':>7}{'peakGiB':>8}{'lesions':>8}")
    for row in report["pipelines"]:
        if "seconds" not in row:
            print(f"{row['label']:<58} failed: {row['errors']}")
            continue
        cells = "".join(f"{row['seconds'][s]:>10.2f}" for s in STAGES)
        fraction = row.get("network_fraction_of_peak")
        print(f"{row['label'][:57]:<58}{cells}{row['input_voxels_per_second'] / 1e6:>8.2f}{row['patches_run']:>8}"
              f"{100 * fraction if fraction else float('nan'):>7.1f}{row['peak_rss_bytes'] / 2**30:>8.2f}{row['lesions']:>8}")
    print("\nRatios (baseline time / LesionDetect time, same run):")
    for row in report["comparisons"]:
        print(f"  {row['case']} / {row['network']} vs {row['baseline']}: end to end {row['end_to_end_ratio']:.2f}x, "
              f"sliding window {row['sliding_window_ratio']:.2f}x; patches {row['patches'][0]} vs {row['patches'][1]}; "
              f"max |dp| foreground {row.get('max_abs_diff_foreground', float('nan')):.2e}, "
              f"background {row.get('max_abs_diff_background', float('nan')):.2e}; lesions {row['lesions']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--quick", action="store_true", help="a 256×256×120 CT, one repeat, no peer (< 2 minutes)")
    parser.add_argument("--big", action="store_true", help="also a 512×512×600 CT (peak memory)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the fast pipelines (median)")
    parser.add_argument("--peer-python", default=sys.executable, help="interpreter with torchvision for the peer")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="run only configurations whose label contains TEXT")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per worker")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    configs = [c for c in plan(args) if c.kind == "peak" or not args.only or any(t in c.label for t in args.only)]
    run_all(configs, args.timeout)
    peak = next(c for c in configs if c.kind == "peak")
    peak_flops = max((r["best"] for r in peak.results if "best" in r), default=None)
    windows = [summarise_window(c, peak_flops) for c in configs if c.kind == "window"]
    pipelines = [with_flop_rate(summarise_pipeline(c), windows, peak_flops) for c in configs if c.kind == "pipeline"]
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(args.device),
        "load_average": {"start": load_at_start, "end": os.getloadavg()},
        "peak_flops": peak_flops, "peak_runs": peak.results,
        "windows": windows,
        "pipelines": pipelines, "comparisons": compare(pipelines),
        "configs": [{k: v for k, v in asdict(c).items() if k != "results"} for c in configs],
        "benchmark_seconds": time.perf_counter() - started,
    }
    if not any(c.network == "retinanet-peer" for c in configs):
        report["windows"].append({"label": "window retinanet-peer", "network": "retinanet-peer",
                                  "errors": ["not run: --quick, or no torchvision in --peer-python"]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print_tables(report)
    print(f"\n{report['benchmark_seconds']:.0f} s in all; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
