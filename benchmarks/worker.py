"""One measured configuration, run in a fresh process by `run.py` (so that peak memory is per configuration).

``python benchmarks/worker.py CONFIG_JSON`` prints one JSON line with the result. Kinds of configuration:

- ``pipeline``: read → resample → sliding window (network + stitching) → resample back → post-processing →
  writing, on one case, by the same stage functions `LesionDetectLib.detect.detect` calls, in its order.
  ``variant`` picks the sliding window: ``lesiondetect`` (`infer.probabilities` with the body/brain mask, i.e.
  what `detect` runs), ``no-skip`` (the same without the mask) or ``monai-plain`` (MONAI's
  ``sliding_window_inference`` with MONAI's defaults — batch 1, overlap 0.25, no skipping — after MONAI's
  intensity transforms: a plain MONAI pipeline).
- ``window``: one network alone on full patches: seconds per window (median), FLOPs per voxel, FLOP/s.
- ``peak``: the device's float32 rate on large matrix products (`measure.peak_flops`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's LesionDetectLib

from measure import (  # noqa: E402
    Stages,
    flops_per_voxel,
    peak_flops,
    peak_gpu_bytes,
    peak_rss_bytes,
    synchronize,
    timed_network,
)
from nets import NETWORKS, build_cnn, retinanet_outputs, with_lesion_head  # noqa: E402

THRESHOLD, MIN_LESION_MM3 = 0.5, 10.0  # the training recipe's defaults


def run_pipeline(config: dict) -> dict:
    """Seconds per stage, window and lesion counts and peak memory of one case through one variant."""
    stages = Stages()
    with stages.time("import"):
        import numpy as np
        import torch
        from monai.inferers import sliding_window_inference  # noqa: F401  (imported before timing)

        from LesionDetectLib import infer, io, lesions, preprocess
        from LesionDetectLib.result import DetectionResult
    device, variant = config["device"], config["variant"]
    with stages.time("read"):
        volume = io.read_volume(config["path"])
    spec = NETWORKS[config["network"]].for_modality(config["modality"])
    network = timed_network(with_lesion_head(build_cnn(spec.name), spec.intensity).to(device), device)
    with stages.time("resample", device):
        image, grid, foreground = _prepare(volume, spec, variant)
    with stages.time("sliding window", device):
        if variant == "monai-plain":
            probability = _plain_monai(network, image, spec, device)
        else:
            batch = infer.default_batch_size(spec.batch_size, device)
            probability = infer.probabilities(network, image, spec.patch_size, spec.overlap, batch, device,
                                              foreground=foreground if variant == "lesiondetect" else None)
    _save_model_grid(config, probability, foreground)
    model_voxels = int(np.prod(grid.size))
    del image
    with stages.time("resample back"):
        probability = preprocess.to_input_grid(probability, grid, volume)
    with stages.time("post-processing"):
        found, label_map = lesions.from_probability(probability, volume, THRESHOLD, MIN_LESION_MM3)
    with stages.time("writing"):
        result = DetectionResult(volume=volume, lesions=found, label_map=label_map, probability=probability,
                                 threshold=THRESHOLD, model_name=spec.name)
        result.write(config["out_dir"], "case")
    seconds = dict(stages.seconds)
    seconds["network"] = network.seconds
    seconds["stitching"] = seconds["sliding window"] - network.seconds
    seconds["end to end"] = sum(v for k, v in stages.seconds.items() if k != "import")
    return {
        "seconds": seconds, "input_voxels": int(volume.array.size), "model_grid": list(grid.size),
        "model_voxels": model_voxels, "patches_run": network.patches, "network_calls": network.calls,
        "lesions": len(found), "threads": torch.get_num_threads(),
        "peak_rss_bytes": peak_rss_bytes(), "peak_gpu_bytes": peak_gpu_bytes(device),
    }


def _prepare(volume, spec, variant: str):
    """(image ``[1,x,y,z]``, grid, foreground mask) as `detect` makes them; MONAI's transforms for the baseline."""
    from LesionDetectLib import preprocess

    if variant != "monai-plain":
        model_input = preprocess.prepare_input(volume, spec)
        return model_input.image, model_input.grid, model_input.foreground
    resampled, grid = preprocess.to_model_grid(volume, spec.spacing)
    return _monai_intensity(resampled, spec.intensity)[None], grid, None


def _monai_intensity(array, intensity: dict):
    """The intensity normalisation by MONAI's transforms (as LesionDetect did before it moved to NumPy)."""
    import numpy as np
    from monai.transforms import NormalizeIntensity, ScaleIntensityRange

    from LesionDetectLib.preprocess import foreground_mask

    if intensity["kind"] == "ct":
        low, high = intensity["window"]
        scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        return np.asarray(scale(array), dtype=np.float32)
    mask = foreground_mask(array)
    low, high = np.percentile(array[mask], intensity["percentiles"])
    clipped = np.clip(array, low, high).astype(np.float32)
    normalise = NormalizeIntensity(subtrahend=float(clipped[mask].mean()), divisor=float(clipped[mask].std()))
    out = np.asarray(normalise(clipped), dtype=np.float32)
    out[~mask] = 0.0
    return out


def _plain_monai(network, image, spec, device: str):
    """MONAI's sliding window with its defaults (batch 1, overlap 0.25), Gaussian blending, fp32."""
    import torch
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        output = sliding_window_inference(
            torch.from_numpy(image)[None], roi_size=spec.patch_size, sw_batch_size=1,
            predictor=lambda patch: torch.sigmoid(network(patch)), overlap=0.25, mode="gaussian",
            sw_device=device, device="cpu",
        )
    return output[0, 0].numpy()


def _save_model_grid(config: dict, probability, foreground) -> None:
    """Keep the model-grid probability (and mask) so that `run.py` can compare variants voxel by voxel."""
    import numpy as np

    if config.get("keep_probability"):
        np.save(Path(config["out_dir"]) / "model_probability.npy", probability)
        if foreground is not None:
            np.save(Path(config["out_dir"]) / "foreground.npy", foreground)


def run_window(config: dict) -> dict:
    """Seconds per full patch of one network (median of ``repeats`` after a warm-up), FLOPs per voxel."""
    import torch

    device, spec, bf16 = config["device"], NETWORKS[config["network"]], bool(config.get("bf16"))
    network = build_cnn(spec.name).to(device)
    predict = retinanet_outputs(network) if spec.name == "retinanet-peer" else network
    patch = torch.randn((spec.batch_size, 1, *spec.patch_size), device=device)
    times = []
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        for index in range(config["repeats"] + config.get("warmup", 1)):
            synchronize(device)
            start = time.perf_counter()
            predict(patch)
            synchronize(device)
            if index >= config.get("warmup", 1):
                times.append((time.perf_counter() - start) / spec.batch_size)
    difference = {"bf16_max_abs_probability_diff": bf16_difference(network, patch)} if bf16 else {}
    flop_patch = tuple(p // config.get("flop_patch_divisor", 1) for p in spec.patch_size)
    counts = ct_windows(config["path"], spec) if config.get("path") else {}
    return {**counts, **difference, "bf16": bf16,
        "seconds_per_window": statistics.median(times), "all_seconds_per_window": times,
        "patch_size": list(spec.patch_size), "batch_size": spec.batch_size,
        "flops_per_voxel": flops_per_voxel(predict, flop_patch, device), "flop_patch": list(flop_patch),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "peak_rss_bytes": peak_rss_bytes(), "peak_gpu_bytes": peak_gpu_bytes(device),
    }


def bf16_difference(network, patch) -> float:
    """Largest difference of sigmoid probabilities between bf16 autocast and float32 on ``patch``."""
    import torch

    with torch.inference_mode():
        exact = torch.sigmoid(network(patch))
        with torch.autocast(patch.device.type, dtype=torch.bfloat16):
            fast = torch.sigmoid(network(patch).float())
    return float((fast - exact).abs().max())


def ct_windows(path: str, spec) -> dict:
    """How many windows the network's sliding window needs for the volume at ``path`` (on its own grid)."""
    from monai.data.utils import dense_patch_slices

    from LesionDetectLib import io, preprocess

    grid = preprocess.model_grid(io.read_volume(path), spec.spacing).size
    size = [max(s, p) for s, p in zip(grid, spec.patch_size)]
    interval = [p if s == p else max(1, int(p * (1 - spec.overlap))) for s, p in zip(size, spec.patch_size)]
    return {"ct_grid": list(grid), "ct_windows": len(dense_patch_slices(size, spec.patch_size, interval))}


def run_peak(config: dict) -> dict:
    """The device's measured float32 peak (see `measure.peak_flops`)."""
    import torch

    return {**peak_flops(config["device"]), "threads": torch.get_num_threads()}


def main() -> None:
    config = json.loads(sys.argv[1])
    if config.get("threads"):
        import torch

        torch.set_num_threads(int(config["threads"]))
    os.makedirs(config.get("out_dir", "."), exist_ok=True)
    result = {"pipeline": run_pipeline, "window": run_window, "peak": run_peak}[config["kind"]](config)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
