"""Peak memory of one sliding-window batch on the CPU, per window voxel: the basis of
`resources.BYTES_PER_WINDOW_VOXEL` (the memory estimate's term for a bundle's patch size × batch).

Each (network, patch, batch) runs in a fresh process; the process's peak resident memory with batch B minus
that with batch 1, divided by (B − 1) × patch voxels, is what one more window costs. Run:
``python benchmarks/window_memory.py`` (a few minutes on 2 cores); the results are in RESULTS.md.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

NETWORKS = {  # the shipped models' UNet, and the BasicUNet of benchmarks/nets.py
    "unet": ("UNet", {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [16, 32, 64, 128, 256],
                      "strides": [2, 2, 2, 2], "num_res_units": 1}),
    "basicunet": ("BasicUNet", {"spatial_dims": 3, "in_channels": 1, "out_channels": 1,
                                "features": [16, 32, 64, 128, 256, 16]}),
}


def peak_bytes(network: str, patch: int, batch: int) -> int:
    """Peak resident memory of a fresh process running ``network`` once on ``batch`` windows of ``patch``³."""
    code = f"""
import resource, torch
from LesionDetectLib.networks import build_network
name, kwargs = {NETWORKS[network]!r}
net = build_network(name, kwargs).eval()
with torch.inference_mode():
    net(torch.zeros({batch}, 1, {patch}, {patch}, {patch}))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def main() -> None:
    rows = []
    for network in NETWORKS:
        for patch, batch in ((64, 4), (96, 2)):
            base, more = peak_bytes(network, patch, 1), peak_bytes(network, patch, batch)
            per_voxel = (more - base) / ((batch - 1) * patch**3)
            rows.append({"network": network, "patch": patch, "batch": batch, "peak_batch1_gib": base / 2**30,
                         "peak_gib": more / 2**30, "bytes_per_window_voxel": round(per_voxel)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"largest: {max(row['bytes_per_window_voxel'] for row in rows)} bytes per window voxel")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
